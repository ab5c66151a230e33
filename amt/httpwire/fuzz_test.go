package httpwire

import (
	"bufio"
	"bytes"
	"testing"
)

var fuzzLimits = Limits{MaxHeaderBytes: 4096, MaxBodyBytes: 1 << 16}

func FuzzReadRequest(f *testing.F) {
	f.Add([]byte("POST /wsman HTTP/1.1\r\nHost: u:16992\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\n<a/>\r\n0\r\n\r\n"))
	f.Add([]byte("POST /wsman HTTP/1.1\r\nHost: u:16992\r\nContent-Length: 4\r\n\r\n<a/>"))
	f.Fuzz(func(t *testing.T, in []byte) {
		req, err := ReadRequest(bufio.NewReader(bytes.NewReader(in)), fuzzLimits)
		if err != nil {
			return
		}
		if int64(len(req.Body)) > fuzzLimits.MaxBodyBytes {
			t.Fatalf("body %d bytes over the limit", len(req.Body))
		}
		for _, chunked := range []bool{false, true} {
			var b bytes.Buffer
			if err := req.Write(&b, chunked); err != nil {
				continue // e.g. a header value that cannot be written back
			}
			again, err := ReadRequest(bufio.NewReader(&b), Limits{MaxHeaderBytes: 1 << 20, MaxBodyBytes: 1 << 20})
			if err != nil {
				t.Fatalf("re-read (chunked=%v) of %q: %v", chunked, b.String(), err)
			}
			if !bytes.Equal(again.Body, req.Body) || again.Method != req.Method || again.Target != req.Target {
				t.Fatalf("round trip changed the request")
			}
		}
	})
}

func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n<a/>\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\"\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 400 Bad Request\r\n\r\n<html></html>"))
	f.Fuzz(func(t *testing.T, in []byte) {
		resp, err := ReadResponse(bufio.NewReader(bytes.NewReader(in)), fuzzLimits)
		if err != nil {
			return
		}
		if int64(len(resp.Body)) > fuzzLimits.MaxBodyBytes {
			t.Fatalf("body %d bytes over the limit", len(resp.Body))
		}
		var b bytes.Buffer
		if err := resp.Write(&b, true); err != nil {
			return
		}
		again, err := ReadResponse(bufio.NewReader(&b), Limits{MaxHeaderBytes: 1 << 20, MaxBodyBytes: 1 << 20})
		if err != nil {
			t.Fatalf("re-read of %q: %v", b.String(), err)
		}
		if !bytes.Equal(again.Body, resp.Body) || again.StatusCode != resp.StatusCode {
			t.Fatal("round trip changed the response")
		}
	})
}
