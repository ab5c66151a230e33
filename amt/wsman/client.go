package wsman

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"amtd/amt/digest"
	"amtd/amt/httpwire"
	"amtd/secret"
)

// Dialer opens a fresh byte stream to AMT's WS-Man endpoint for one HTTP
// round trip: TLS to port 16993, a CIRA APF channel, or the rpc-go
// WebSocket tunnel are all Dialers. The connection is closed after the
// response (Connection: close, as RPS sends; spec/wsman.md §1), unless the
// Dialer hands out a KeepAliveConn.
type Dialer func(ctx context.Context) (net.Conn, error)

// KeepAliveConn is a connection its Dialer is willing to hand out again:
// the Client then asks AMT to keep it open (Connection: keep-alive, as RPS
// does inside its TLS tunnel, spec/wsman.md §1) and, after a clean and
// complete response that did not say Connection: close, calls Keep instead
// of Close. Any error, a response framed only by the end of the stream, or
// bytes left over after the response close it instead.
//
// A request that fails on a reused connection is sent once more on a fresh
// one only when it is safe to repeat (see repeatable), or when not one of
// its bytes was written: AMT may have acted on it before the connection
// broke, and Setup, AdminSetup or CommitChanges must not run twice. As in
// net/http's transport, that is the price of reuse; the Dialer bounds it
// by handing out only connections idle for a short time.
type KeepAliveConn interface {
	net.Conn
	// Reused reports whether the connection already carried a response.
	Reused() bool
	// Keep hands the connection back to its Dialer for the next request.
	Keep()
}

// Credentials authenticate to AMT.
type Credentials struct {
	// Host is the Host header, "<device-uuid>:<port>" as RPS and MPS send
	// it; it also names the device in errors.
	Host     string
	Username string // "admin" once activated (spec/wsman.md §2)
	Password secret.Value
}

// ErrWrongPassword is wrapped when AMT refuses the credentials three times
// in a row (RPS isMaxRetries).
var ErrWrongPassword = errors.New("wrong AMT password")

// maxAuthAttempts is the number of consecutive 401s accepted before giving
// up (spec/wsman.md §2).
const maxAuthAttempts = 3

// Client sends WS-Man requests with digest authentication. It is safe for
// concurrent use; calls are serialised, because Enumerate/Pull pairs must
// not interleave over CIRA (mps#664) and the digest nonce count is shared.
type Client struct {
	dial    Dialer
	creds   Credentials
	chunked bool
	maxResp int64

	B Builder

	mu   sync.Mutex
	auth digest.Client
}

// Option changes a Client.
type Option func(*Client)

// WithChunked frames request bodies with Transfer-Encoding: chunked, as RPS
// does, instead of Content-Length.
func WithChunked() Option { return func(c *Client) { c.chunked = true } }

// WithMaxResponse caps a response body (default 4 MiB, the parser's limit).
func WithMaxResponse(n int64) Option { return func(c *Client) { c.maxResp = n } }

// NewClient returns a client that reaches AMT through dial.
func NewClient(dial Dialer, creds Credentials, opts ...Option) *Client {
	c := &Client{dial: dial, creds: creds, maxResp: MaxEnvelopeBytes}
	c.auth = digest.Client{Username: creds.Username, Password: creds.Password, RequireAMTRealm: true}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Do sends one built request and parses the response. A SOAP fault comes
// back as *Fault naming the request's class and operation.
func (c *Client) Do(ctx context.Context, req *Request) (*Message, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.do(ctx, req)
}

func (c *Client) do(ctx context.Context, req *Request) (*Message, error) {
	what := fmt.Sprintf("%s %s on %s", req.Operation, req.Class, c.creds.Host)
	for attempt := 1; ; attempt++ {
		resp, err := c.roundTrip(ctx, req.Body, repeatable(req))
		if err != nil {
			return nil, fmt.Errorf("wsman: %s: %w", what, err)
		}
		switch resp.StatusCode {
		case http.StatusOK:
			m, err := ParseResponse(resp.Body)
			if err != nil {
				return nil, c.named(req, what, err)
			}
			return m, nil
		case http.StatusUnauthorized:
			if attempt >= maxAuthAttempts {
				return nil, fmt.Errorf("wsman: %s: %w for %s (AMT refused it %d times; check the stored AMT admin password)",
					what, ErrWrongPassword, c.creds.Host, attempt)
			}
			ch, err := digest.ParseChallenge(resp.Header.Get("WWW-Authenticate"))
			if err != nil {
				return nil, fmt.Errorf("wsman: %s: 401 without a usable challenge: %w", what, err)
			}
			if err := c.auth.Accept(ch); err != nil {
				return nil, fmt.Errorf("wsman: %s: %w", what, err)
			}
		case http.StatusBadRequest:
			_, err := ParseResponse(resp.Body)
			if err == nil {
				err = fmt.Errorf("HTTP 400 without a SOAP fault: %q", clip(string(resp.Body)))
			}
			return nil, c.named(req, what, err)
		default:
			return nil, fmt.Errorf("wsman: %s: HTTP %s: %s", what, resp.Status(), clip(strings.TrimSpace(string(resp.Body))))
		}
	}
}

// named fills the request's class and operation into a fault.
func (c *Client) named(req *Request, what string, err error) error {
	var f *Fault
	if errors.As(err, &f) {
		f.Class, f.Action = req.Class, req.Operation
		return f
	}
	return fmt.Errorf("wsman: %s: %w", what, err)
}

// repeatable reports whether req may be sent again after a connection broke
// with no answer: reads (Get, Enumerate, Pull: a Pull repeated on a context
// AMT already released faults, it changes nothing) and Put, which replaces
// an instance with the same values. Invoke (Setup, AdminSetup,
// CommitChanges, ...), Create and Delete are not.
func repeatable(req *Request) bool {
	switch req.Operation {
	case "Get", "Enumerate", "Pull", "Put":
		return true
	}
	return false
}

// roundTrip sends body and reads the response. repeat says whether the
// request may be sent again if a kept connection breaks under it.
func (c *Client) roundTrip(ctx context.Context, body []byte, repeat bool) (*httpwire.Response, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	ka, _ := conn.(KeepAliveConn)
	resp, written, err := c.exchange(ctx, conn, ka, body)
	if err != nil && ka != nil && ka.Reused() && (repeat || !written) && ctx.Err() == nil {
		// The kept connection was dead (AMT or the agent closed it while
		// idle): once more on a fresh one.
		if conn, err = c.dial(ctx); err != nil {
			return nil, fmt.Errorf("dial: %w", err)
		}
		ka, _ = conn.(KeepAliveConn)
		if ka != nil && ka.Reused() {
			conn.Close()
			return nil, errors.New("dial: the dialer handed out a kept connection for a retry")
		}
		resp, _, err = c.exchange(ctx, conn, ka, body)
	}
	return resp, err
}

// exchange writes one request on conn and reads its response; conn is
// closed, or kept when ka is set and the exchange left it clean. written
// says whether any byte of the request reached conn.
func (c *Client) exchange(ctx context.Context, conn net.Conn, ka KeepAliveConn, body []byte) (resp *httpwire.Response, written bool, err error) {
	keep := false
	defer func() {
		if keep {
			_ = conn.SetDeadline(time.Time{})
			ka.Keep()
		} else {
			conn.Close()
		}
	}()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer func() {
		if !stop() {
			keep = false // the context ended: conn is closed
		}
	}()

	connection := "close"
	if ka != nil {
		connection = "keep-alive"
	}
	h := http.Header{
		"Host":         {c.creds.Host},
		"Connection":   {connection},
		"Content-Type": {"application/soap+xml; charset=utf-8"},
	}
	if c.auth.HasChallenge() {
		a, err := c.auth.Authorize("POST", digest.WSManURI)
		if err != nil {
			return nil, false, err
		}
		h.Set("Authorization", a)
	}
	req := &httpwire.Request{Method: "POST", Target: digest.WSManURI, Header: h, Body: body}
	cw := &countWriter{w: conn}
	if err := req.Write(cw, c.chunked); err != nil {
		return nil, cw.n > 0, c.ctxErr(ctx, fmt.Errorf("write: %w", err))
	}
	br := bufio.NewReader(conn)
	resp, err = httpwire.ReadResponse(br, httpwire.Limits{MaxBodyBytes: c.maxResp})
	if err != nil {
		return nil, true, c.ctxErr(ctx, fmt.Errorf("read response: %w", err))
	}
	keep = ka != nil && framed(resp) && br.Buffered() == 0 && !hasToken(resp.Header, "Connection", "close")
	return resp, true, nil
}

// countWriter counts the bytes that reached w.
type countWriter struct {
	w io.Writer
	n int
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += n
	return n, err
}

// framed reports whether resp's end was known from its framing (chunked or
// Content-Length) rather than from the end of the stream.
func framed(resp *httpwire.Response) bool {
	if resp.StatusCode/100 == 1 || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
		return true
	}
	return resp.Header.Get("Transfer-Encoding") != "" || resp.Header.Get("Content-Length") != ""
}

// hasToken reports whether a comma-separated header holds tok.
func hasToken(h http.Header, key, tok string) bool {
	for _, v := range h.Values(key) {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), tok) {
				return true
			}
		}
	}
	return false
}

// ctxErr reports a failure caused by the call's context as the context's
// error. The connection deadline is the context's, and it can fire an
// instant before ctx.Err() is set.
func (c *Client) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	if _, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return err
}

// Get reads one instance of class into v (a pointer to its typed struct,
// or *Instance for the generic form).
func (c *Client) Get(ctx context.Context, class string, v any, sel ...Selector) error {
	req, err := c.B.Get(class, sel...)
	if err != nil {
		return err
	}
	m, err := c.Do(ctx, req)
	if err != nil {
		return err
	}
	if m.Kind != KindInstance || len(m.Instances) == 0 {
		return fmt.Errorf("wsman: Get %s on %s: response holds %v, not an instance", class, c.creds.Host, m.Kind)
	}
	return into(&m.Instances[0], v)
}

func into(in *Instance, v any) error {
	if p, ok := v.(*Instance); ok {
		*p = *in
		return nil
	}
	return Decode(in, v)
}

// maxPulls bounds an enumeration: go-wsman-messages and RPS do one Pull of
// 999 items; a device that keeps returning contexts is broken or hostile.
const maxPulls = 64

// Enumerate runs Enumerate and Pulls until EndOfSequence, returning every
// item. The pair runs under one lock so nothing interleaves (mps#664).
func (c *Client) Enumerate(ctx context.Context, class string) ([]Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	req, err := c.B.Enumerate(class)
	if err != nil {
		return nil, err
	}
	m, err := c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	if m.Kind != KindEnumerate || m.EnumerationContext == "" {
		return nil, fmt.Errorf("wsman: Enumerate %s on %s: no EnumerationContext in the response", class, c.creds.Host)
	}
	var items []Instance
	ectx := m.EnumerationContext
	for range maxPulls {
		req, err := c.B.Pull(class, ectx)
		if err != nil {
			return nil, err
		}
		m, err := c.do(ctx, req)
		if err != nil {
			return nil, err
		}
		if m.Kind != KindPull {
			return nil, fmt.Errorf("wsman: Pull %s on %s: response holds %v, not a PullResponse", class, c.creds.Host, m.Kind)
		}
		items = append(items, m.Instances...)
		if m.EndOfSequence {
			return items, nil
		}
		if m.EnumerationContext == "" {
			return nil, fmt.Errorf("wsman: Pull %s on %s: neither EndOfSequence nor a context to continue", class, c.creds.Host)
		}
		ectx = m.EnumerationContext
	}
	return nil, fmt.Errorf("wsman: Enumerate %s on %s: still not at EndOfSequence after %d pulls", class, c.creds.Host, maxPulls)
}

// Put writes body (EncodeWritable of a typed struct, or an Instance) and
// returns the instance AMT echoes, if any.
func (c *Client) Put(ctx context.Context, class string, body Instance, sel ...Selector) (*Message, error) {
	req, err := c.B.Put(class, body, sel...)
	if err != nil {
		return nil, err
	}
	return c.Do(ctx, req)
}

// RequestStateChange calls the CIM method of that name with one
// RequestedState; a non-zero ReturnValue is a *ReturnError.
func (c *Client) RequestStateChange(ctx context.Context, class string, state int) error {
	req, err := c.B.RequestStateChange(class, state)
	if err != nil {
		return err
	}
	m, err := c.Do(ctx, req)
	if err != nil {
		return err
	}
	if m.Method != nil {
		if code, ok, _ := m.Method.ReturnValue(); ok && code != 0 {
			return &ReturnError{Class: class, Method: "RequestStateChange", Code: code}
		}
	}
	return nil
}

// Delete removes the instance the key selectors name (WS-Transfer Delete).
func (c *Client) Delete(ctx context.Context, class string, sel ...Selector) error {
	req, err := c.B.Delete(class, sel...)
	if err != nil {
		return err
	}
	_, err = c.Do(ctx, req)
	return err
}

// Invoke calls a method and decodes its _OUTPUT into out (a typed output
// struct, *Instance, or nil). A non-zero ReturnValue is a *ReturnError
// (out is still filled, so callers can read other outputs).
func (c *Client) Invoke(ctx context.Context, class, method string, params []Property, out any, sel ...Selector) error {
	req, err := c.B.Invoke(class, method, params, sel...)
	if err != nil {
		return err
	}
	m, err := c.Do(ctx, req)
	if err != nil {
		return err
	}
	if m.Method == nil {
		return fmt.Errorf("wsman: %s.%s on %s: response holds %v, not %s_OUTPUT", class, method, c.creds.Host, m.Kind, method)
	}
	if out != nil {
		if err := into(m.Method, out); err != nil {
			return err
		}
	}
	code, ok, err := m.Method.ReturnValue()
	if err != nil {
		return err
	}
	if ok && code != 0 {
		return &ReturnError{Class: class, Method: method, Code: code}
	}
	return nil
}
