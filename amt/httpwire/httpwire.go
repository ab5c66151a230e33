// Package httpwire reads and writes single HTTP/1.1 requests and responses
// over a raw byte stream, with hard limits on header and body size.
//
// WS-Management travels as HTTP over things that are not TCP sockets owned by
// net/http: APF channels inside a CIRA connection, the rpc-go WebSocket
// tunnel, a simulator's end of a pipe (spec/wsman.md §1, spec/apf.md). Those
// callers need one message at a time with Content-Length or chunked bodies,
// bounded so that a hostile peer cannot exhaust memory. The package is pure:
// it only touches the reader or writer it is given.
package httpwire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
)

// Limits bound what a reader accepts. Zero fields take the defaults.
type Limits struct {
	// MaxHeaderBytes bounds the start line plus all header lines (and
	// chunked trailers). Default 16 KiB; AMT's headers are a few hundred bytes.
	MaxHeaderBytes int
	// MaxBodyBytes bounds the decoded body. Default 4 MiB, the same bound
	// wsman puts on an envelope.
	MaxBodyBytes int64
}

const (
	defaultMaxHeader = 16 << 10
	defaultMaxBody   = 4 << 20
	maxChunkLine     = 1024
)

func (l Limits) norm() Limits {
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = defaultMaxHeader
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = defaultMaxBody
	}
	return l
}

// ErrTooLarge is wrapped by errors for a header or body over the limits.
var ErrTooLarge = errors.New("httpwire: message exceeds size limit")

// Request is one HTTP/1.1 request with its whole body.
type Request struct {
	Method string
	Target string // request target, e.g. "/wsman"
	Proto  string // "HTTP/1.1"
	Header http.Header
	Body   []byte
}

// Response is one HTTP/1.1 response with its whole (de-chunked) body.
type Response struct {
	Proto      string
	StatusCode int
	Reason     string
	Header     http.Header
	Body       []byte
}

// Status returns the status line without the protocol, e.g. "401 Unauthorized".
func (r *Response) Status() string {
	return strconv.Itoa(r.StatusCode) + " " + r.Reason
}

// ReadRequest reads one request. At a clean end of stream before any byte it
// returns io.EOF.
func ReadRequest(br *bufio.Reader, lim Limits) (*Request, error) {
	lim = lim.norm()
	start, hdr, err := readHead(br, lim)
	if err != nil {
		return nil, err
	}
	method, rest, ok1 := strings.Cut(start, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || method == "" || target == "" || !validToken(method) || strings.ContainsAny(target, " \t") {
		return nil, fmt.Errorf("httpwire: malformed request line %q", clip(start))
	}
	if err := checkProto(proto); err != nil {
		return nil, err
	}
	req := &Request{Method: method, Target: target, Proto: proto, Header: hdr}
	req.Body, err = readBody(br, hdr, lim, false)
	if err != nil {
		return nil, fmt.Errorf("httpwire: %s %s body: %w", method, clip(target), err)
	}
	return req, nil
}

// ReadResponse reads one response. A response with neither Content-Length
// nor chunked encoding runs to the end of the stream (Connection: close), as
// AMT's 401 HTML pages may (spec/wsman.md §1).
func ReadResponse(br *bufio.Reader, lim Limits) (*Response, error) {
	lim = lim.norm()
	start, hdr, err := readHead(br, lim)
	if err != nil {
		return nil, err
	}
	proto, rest, ok := strings.Cut(start, " ")
	if !ok {
		return nil, fmt.Errorf("httpwire: malformed status line %q", clip(start))
	}
	if err := checkProto(proto); err != nil {
		return nil, err
	}
	codeStr, reason, _ := strings.Cut(rest, " ")
	code, err := strconv.Atoi(codeStr)
	if err != nil || len(codeStr) != 3 || code < 100 {
		return nil, fmt.Errorf("httpwire: malformed status code in %q", clip(start))
	}
	resp := &Response{Proto: proto, StatusCode: code, Reason: reason, Header: hdr}
	if code/100 == 1 || code == http.StatusNoContent || code == http.StatusNotModified {
		return resp, nil
	}
	resp.Body, err = readBody(br, hdr, lim, true)
	if err != nil {
		return nil, fmt.Errorf("httpwire: response %d body: %w", code, err)
	}
	return resp, nil
}

func checkProto(p string) error {
	if p != "HTTP/1.1" && p != "HTTP/1.0" {
		return fmt.Errorf("httpwire: protocol %q is not HTTP/1.x", clip(p))
	}
	return nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// readLine reads one CRLF- or LF-terminated line, counting against *budget.
func readLine(br *bufio.Reader, budget *int) (string, error) {
	var buf []byte
	for {
		frag, err := br.ReadSlice('\n')
		*budget -= len(frag)
		if *budget < 0 {
			return "", fmt.Errorf("header: %w", ErrTooLarge)
		}
		buf = append(buf, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && len(buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		break
	}
	buf = bytes.TrimSuffix(buf, []byte("\n"))
	buf = bytes.TrimSuffix(buf, []byte("\r"))
	return string(buf), nil
}

func readHead(br *bufio.Reader, lim Limits) (string, http.Header, error) {
	budget := lim.MaxHeaderBytes
	start, err := readLine(br, &budget)
	if err != nil {
		if err == io.EOF {
			return "", nil, io.EOF
		}
		return "", nil, fmt.Errorf("httpwire: start line: %w", err)
	}
	hdr, err := readFields(br, &budget)
	if err != nil {
		return "", nil, err
	}
	return start, hdr, nil
}

// readFields reads header (or trailer) fields up to the empty line.
func readFields(br *bufio.Reader, budget *int) (http.Header, error) {
	hdr := make(http.Header)
	for {
		line, err := readLine(br, budget)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("httpwire: header: %w", err)
		}
		if line == "" {
			return hdr, nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, fmt.Errorf("httpwire: obsolete folded header line %q", clip(line))
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !validToken(name) {
			return nil, fmt.Errorf("httpwire: malformed header line %q", clip(line))
		}
		hdr.Add(textproto.CanonicalMIMEHeaderKey(name), strings.Trim(value, " \t"))
	}
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func readBody(br *bufio.Reader, hdr http.Header, lim Limits, toEOF bool) ([]byte, error) {
	if te := hdr.Values("Transfer-Encoding"); len(te) > 0 {
		codings := strings.Split(strings.Join(te, ","), ",")
		last := strings.TrimSpace(codings[len(codings)-1])
		if len(codings) != 1 || !strings.EqualFold(last, "chunked") {
			return nil, fmt.Errorf("transfer-encoding %q is not supported (only chunked)", clip(strings.Join(te, ",")))
		}
		if hdr.Get("Content-Length") != "" {
			return nil, errors.New("both Content-Length and chunked encoding (request smuggling shape)")
		}
		return readChunked(br, lim)
	}
	if cls := hdr.Values("Content-Length"); len(cls) > 0 {
		if slices.ContainsFunc(cls, func(v string) bool { return v != cls[0] }) {
			return nil, errors.New("conflicting Content-Length headers")
		}
		n, err := strconv.ParseInt(cls[0], 10, 64)
		if err != nil || n < 0 || cls[0][0] == '+' {
			return nil, fmt.Errorf("malformed Content-Length %q", clip(cls[0]))
		}
		if n > lim.MaxBodyBytes {
			return nil, fmt.Errorf("Content-Length %d over %d: %w", n, lim.MaxBodyBytes, ErrTooLarge)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		return body, nil
	}
	if !toEOF {
		return nil, nil
	}
	body, err := io.ReadAll(io.LimitReader(br, lim.MaxBodyBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > lim.MaxBodyBytes {
		return nil, fmt.Errorf("body runs past %d bytes: %w", lim.MaxBodyBytes, ErrTooLarge)
	}
	return body, nil
}

// readChunked de-chunks a body; the total is bounded by MaxBodyBytes before
// any chunk is allocated.
func readChunked(br *bufio.Reader, lim Limits) ([]byte, error) {
	var body []byte
	for {
		budget := maxChunkLine
		line, err := readLine(br, &budget)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("chunk size line: %w", err)
		}
		sizeStr, _, _ := strings.Cut(line, ";") // chunk extensions are ignored
		sizeStr = strings.TrimSpace(sizeStr)
		size, err := strconv.ParseUint(sizeStr, 16, 63)
		if err != nil || sizeStr == "" {
			return nil, fmt.Errorf("malformed chunk size %q", clip(line))
		}
		if size == 0 {
			tb := lim.MaxHeaderBytes
			if _, err := readFields(br, &tb); err != nil {
				return nil, fmt.Errorf("trailer: %w", err)
			}
			if body == nil {
				body = []byte{}
			}
			return body, nil
		}
		if size > uint64(lim.MaxBodyBytes-int64(len(body))) {
			return nil, fmt.Errorf("chunked body over %d bytes: %w", lim.MaxBodyBytes, ErrTooLarge)
		}
		n := len(body)
		body = slices.Grow(body, int(size))[:n+int(size)]
		if _, err := io.ReadFull(br, body[n:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("chunk data: %w", err)
		}
		var crlf [2]byte
		if _, err := io.ReadFull(br, crlf[:1]); err != nil {
			return nil, fmt.Errorf("chunk end: %w", io.ErrUnexpectedEOF)
		}
		if crlf[0] == '\r' {
			if _, err := io.ReadFull(br, crlf[1:]); err != nil {
				return nil, fmt.Errorf("chunk end: %w", io.ErrUnexpectedEOF)
			}
			if crlf[1] != '\n' {
				return nil, errors.New("chunk data not followed by CRLF")
			}
		} else if crlf[0] != '\n' {
			return nil, errors.New("chunk data not followed by CRLF")
		}
	}
}

// Write writes the request. With chunked, the body goes as one chunk with an
// upper-case hex size, the shape RPS sends; its size is the body's UTF-8 byte
// length, not a character count (spec/wsman.md §1). Otherwise Content-Length
// is set. Header fields are written Host first, then sorted, so the bytes are
// reproducible.
func (r *Request) Write(w io.Writer, chunked bool) error {
	proto := r.Proto
	if proto == "" {
		proto = "HTTP/1.1"
	}
	if !validToken(r.Method) || r.Target == "" || strings.ContainsAny(r.Target, " \r\n") {
		return fmt.Errorf("httpwire: write request: bad method %q or target %q", clip(r.Method), clip(r.Target))
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s %s\r\n", r.Method, r.Target, proto)
	return finish(w, &b, r.Header, r.Body, chunked, true)
}

// Write writes the response, framed like Request.Write.
func (r *Response) Write(w io.Writer, chunked bool) error {
	proto := r.Proto
	if proto == "" {
		proto = "HTTP/1.1"
	}
	reason := r.Reason
	if reason == "" {
		reason = http.StatusText(r.StatusCode)
	}
	if r.StatusCode < 100 || r.StatusCode > 999 || strings.ContainsAny(reason, "\r\n") {
		return fmt.Errorf("httpwire: write response: bad status %d %q", r.StatusCode, clip(reason))
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %03d %s\r\n", proto, r.StatusCode, reason)
	bodyless := r.StatusCode/100 == 1 || r.StatusCode == http.StatusNoContent || r.StatusCode == http.StatusNotModified
	if bodyless {
		if len(r.Body) > 0 {
			return fmt.Errorf("httpwire: write response: status %d cannot carry a body", r.StatusCode)
		}
		if err := writeHeader(&b, r.Header, nil); err != nil {
			return err
		}
		b.WriteString("\r\n")
		_, err := w.Write(b.Bytes())
		return err
	}
	return finish(w, &b, r.Header, r.Body, chunked, false)
}

func finish(w io.Writer, b *bytes.Buffer, h http.Header, body []byte, chunked, isRequest bool) error {
	framing := map[string]string{}
	if chunked {
		framing["Transfer-Encoding"] = "chunked"
	} else if len(body) > 0 || !isRequest {
		framing["Content-Length"] = strconv.Itoa(len(body))
	}
	if err := writeHeader(b, h, framing); err != nil {
		return err
	}
	b.WriteString("\r\n")
	if chunked {
		if len(body) > 0 {
			fmt.Fprintf(b, "%X\r\n", len(body))
			b.Write(body)
			b.WriteString("\r\n")
		}
		b.WriteString("0\r\n\r\n")
	} else {
		b.Write(body)
	}
	_, err := w.Write(b.Bytes())
	return err
}

func writeHeader(b *bytes.Buffer, h http.Header, framing map[string]string) error {
	keys := make([]string, 0, len(h)+len(framing))
	for k := range h {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		if ck == "Content-Length" || ck == "Transfer-Encoding" {
			continue // framing is ours to decide
		}
		keys = append(keys, k)
	}
	for k := range framing {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, c string) int {
		switch {
		case a == c:
			return 0
		case strings.EqualFold(a, "Host"):
			return -1
		case strings.EqualFold(c, "Host"):
			return 1
		}
		return strings.Compare(a, c)
	})
	for _, k := range keys {
		if !validToken(k) {
			return fmt.Errorf("httpwire: bad header name %q", clip(k))
		}
		vals := h[k]
		if v, ok := framing[k]; ok {
			vals = []string{v}
		}
		for _, v := range vals {
			if strings.ContainsAny(v, "\r\n") {
				return fmt.Errorf("httpwire: header %s value contains a line break", k)
			}
			fmt.Fprintf(b, "%s: %s\r\n", k, v)
		}
	}
	return nil
}
