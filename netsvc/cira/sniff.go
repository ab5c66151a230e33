package cira

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
)

// kind is what the first bytes of a connection say it is.
type kind int

const (
	kindGarbage  kind = iota
	kindTLS           // a TLS record: handshake content type 0x16, version major 3
	kindHTTPGet       // "GET "
	kindHTTPHead      // "HEAD"
)

// sniffLen is how many bytes classify needs.
const sniffLen = 4

// classify looks at the first sniffLen bytes of a connection. A port scanner
// or a person with a browser is told what the port is (spec/apf.md §4 step 1);
// anything else that is not TLS is dropped before a handshake is attempted.
func classify(b []byte) kind {
	switch {
	case len(b) >= 3 && b[0] == 0x16 && b[1] == 3 && b[2] <= 4:
		return kindTLS
	case bytes.HasPrefix(b, []byte("GET ")):
		return kindHTTPGet
	case bytes.HasPrefix(b, []byte("HEAD")):
		return kindHTTPHead
	}
	return kindGarbage
}

// maxHTTPHeader bounds what is read of a plain HTTP request before the page
// is sent.
const maxHTTPHeader = 4096

// endOfHeader reads from r until the blank line ending an HTTP request
// header, at most maxHTTPHeader bytes. It reports whether the end was seen;
// the page is sent either way.
func endOfHeader(r *bufio.Reader) bool {
	var last [4]byte
	for i := 0; i < maxHTTPHeader; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return false
		}
		last[0], last[1], last[2], last[3] = last[1], last[2], last[3], c
		if last == [4]byte{'\r', '\n', '\r', '\n'} || (last[2] == '\n' && last[3] == '\n') {
			return true
		}
	}
	return false
}

const page = `<!DOCTYPE html>
<html><head><title>amtd CIRA</title></head>
<body><p>This is an Intel AMT CIRA endpoint (APF over TLS, served by amtd).
Intel AMT devices connect here; there is nothing to see with a browser.</p></body></html>
`

// answerHTTP writes the short page for a plain HTTP request and returns.
func answerHTTP(w io.Writer, head bool) {
	hdr := "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\nConnection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(page)) + "\r\n\r\n"
	if head {
		_, _ = io.WriteString(w, hdr)
		return
	}
	_, _ = io.WriteString(w, hdr+page)
}

// peekedConn is a net.Conn whose first bytes were read into a bufio.Reader
// for classify; reads drain that buffer first.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
