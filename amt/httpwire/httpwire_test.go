package httpwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func rd(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

// RPS's exact chunked request shape (spec/wsman.md §1).
func TestReadRPSChunkedRequest(t *testing.T) {
	env := `<?xml version="1.0" encoding="utf-8"?><Envelope>é</Envelope>`
	raw := "POST /wsman HTTP/1.1\r\n" +
		"Authorization: Digest username=\"admin\"\r\n" +
		"Host: 4c4c4544-0000:16992\r\n" +
		"Transfer-Encoding: chunked\r\n" +
		"Connection: close\r\n\r\n" +
		strings.ToUpper(strings.TrimLeft(hex(len(env)), "0")) + "\r\n" + env + "\r\n0\r\n\r\n"
	req, err := ReadRequest(rd(raw), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != "POST" || req.Target != "/wsman" || string(req.Body) != env || req.Header.Get("Host") != "4c4c4544-0000:16992" {
		t.Fatalf("got %+v", req)
	}
}

func hex(n int) string {
	const d = "0123456789abcdef"
	s := ""
	for ; n > 0; n /= 16 {
		s = string(d[n%16]) + s
	}
	return s
}

func TestWriteChunkedUsesUTF8ByteLength(t *testing.T) {
	body := []byte("<a>Grüße ✓</a>") // 14 characters, 18 (0x12) bytes
	req := &Request{Method: "POST", Target: "/wsman", Header: http.Header{"Host": {"u:16992"}, "Connection": {"close"}}, Body: body}
	var b bytes.Buffer
	if err := req.Write(&b, true); err != nil {
		t.Fatal(err)
	}
	want := "POST /wsman HTTP/1.1\r\nHost: u:16992\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n12\r\n<a>Grüße ✓</a>\r\n0\r\n\r\n"
	if b.String() != want {
		t.Fatalf("wrote\n%q\nwant\n%q", b.String(), want)
	}
	// net/http agrees on the framing.
	hr, err := http.ReadRequest(bufio.NewReader(&b))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(hr.Body)
	if !bytes.Equal(got, body) {
		t.Fatalf("net/http read body %q", got)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		resp := &Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/soap+xml; charset=UTF-8"}}, Body: []byte("<x/>")}
		var b bytes.Buffer
		if err := resp.Write(&b, chunked); err != nil {
			t.Fatal(err)
		}
		got, err := ReadResponse(bufio.NewReader(&b), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if got.StatusCode != 200 || got.Reason != "OK" || string(got.Body) != "<x/>" || got.Header.Get("Content-Type") == "" {
			t.Fatalf("chunked=%v: got %+v", chunked, got)
		}
		if _, err := ReadResponse(bufio.NewReader(&b), Limits{}); err != io.EOF {
			t.Fatalf("after the message: %v, want io.EOF", err)
		}
	}
}

// A response produced by net/http's server (chunked, as AMT answers) reads back.
func TestReadNetHTTPChunkedResponse(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/soap+xml")
		io.WriteString(w, "<part1/>")
		w.(http.Flusher).Flush()
		io.WriteString(w, "<part2/>")
	}))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := &Request{Method: "POST", Target: "/wsman", Header: http.Header{"Host": {"x:16992"}, "Connection": {"close"}}, Body: []byte("<e/>")}
	if err := req.Write(conn, false); err != nil {
		t.Fatal(err)
	}
	resp, err := ReadResponse(bufio.NewReader(conn), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || string(resp.Body) != "<part1/><part2/>" || resp.Header.Get("Transfer-Encoding") != "chunked" {
		t.Fatalf("got %d %q te=%q", resp.StatusCode, resp.Body, resp.Header.Get("Transfer-Encoding"))
	}
}

func TestReadResponseToEOF(t *testing.T) {
	raw := "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\"\r\nConnection: close\r\n\r\n<html>no</html>"
	resp, err := ReadResponse(rd(raw), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status() != "401 Unauthorized" || string(resp.Body) != "<html>no</html>" {
		t.Fatalf("got %q %q", resp.Status(), resp.Body)
	}
}

func TestReadErrors(t *testing.T) {
	lim := Limits{MaxHeaderBytes: 256, MaxBodyBytes: 64}
	tests := []struct {
		name, raw string
		tooLarge  bool
		contains  string
	}{
		{"header too big", "POST /wsman HTTP/1.1\r\nX: " + strings.Repeat("a", 300) + "\r\n\r\n", true, ""},
		{"content-length too big", "POST /wsman HTTP/1.1\r\nContent-Length: 65\r\n\r\n", true, ""},
		{"chunk too big", "POST /wsman HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n", true, ""},
		{"chunks sum too big", "POST /wsman HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n" + strings.Repeat("a", 32) + "\r\n21\r\n", true, ""},
		{"huge chunk size", "POST /wsman HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\n", false, "chunk size"},
		{"bad chunk size", "POST /wsman HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, "chunk size"},
		{"missing crlf", "POST /wsman HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n0\r\n\r\n", false, "CRLF"},
		{"truncated body", "POST /wsman HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", false, "unexpected EOF"},
		{"truncated header", "POST /wsman HTTP/1.1\r\nHost: x\r\n", false, "unexpected EOF"},
		{"smuggling", "POST /wsman HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", false, "both"},
		{"conflicting length", "POST /wsman HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", false, "conflicting"},
		{"negative length", "POST /wsman HTTP/1.1\r\nContent-Length: -1\r\n\r\n", false, "malformed"},
		{"gzip", "POST /wsman HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, "not supported"},
		{"folded", "POST /wsman HTTP/1.1\r\nX: a\r\n b\r\n\r\n", false, "folded"},
		{"bad line", "POST /wsman\r\n\r\n", false, "request line"},
		{"bad proto", "POST /wsman SPDY/3\r\n\r\n", false, "protocol"},
		{"bad header", "POST /wsman HTTP/1.1\r\nNo colon\r\n\r\n", false, "header line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadRequest(rd(tt.raw), lim)
			if err == nil {
				t.Fatal("accepted")
			}
			if tt.tooLarge != errors.Is(err, ErrTooLarge) {
				t.Fatalf("err = %v, ErrTooLarge expected %v", err, tt.tooLarge)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Fatalf("err = %v, want containing %q", err, tt.contains)
			}
		})
	}
	if _, err := ReadResponse(rd("HTTP/1.1 200 OK\r\n\r\n"+strings.Repeat("a", 65)), lim); !errors.Is(err, ErrTooLarge) {
		t.Errorf("body to EOF over limit: %v", err)
	}
	if _, err := ReadResponse(rd("HTTP/1.1 2000 OK\r\n\r\n"), lim); err == nil {
		t.Error("4-digit status accepted")
	}
}

func TestWriteRejectsInjection(t *testing.T) {
	var b bytes.Buffer
	if err := (&Request{Method: "POST", Target: "/wsman", Header: http.Header{"X": {"a\r\nEvil: 1"}}}).Write(&b, false); err == nil {
		t.Error("header value with CRLF written")
	}
	if err := (&Request{Method: "PO ST", Target: "/wsman"}).Write(&b, false); err == nil {
		t.Error("bad method written")
	}
	if err := (&Response{StatusCode: 204, Body: []byte("x")}).Write(&b, false); err == nil {
		t.Error("204 with a body written")
	}
}
