package control

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// echoMux has "pipe", which streams to an echo server, "refuse", which
// fails as a device that is not connected does, and "status".
func echoMux(t *testing.T) *Mux {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	mux := NewMux()
	mux.Handle("pipe", func(ctx context.Context, args json.RawMessage) (any, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
		if err != nil {
			return nil, err
		}
		return &Stream{Conn: c, Result: map[string]string{"to": "echo"}}, nil
	})
	mux.Handle("refuse", func(ctx context.Context, args json.RawMessage) (any, error) {
		return nil, errors.New("device 4c4c4544-0042-3510-8052-b4c04f4e3232 is not connected over CIRA")
	})
	mux.Handle("status", func(ctx context.Context, args json.RawMessage) (any, error) {
		return StatusReport{Version: "test"}, nil
	})
	return mux
}

func openStream(t *testing.T, path string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := Dial(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]string
	c, err := cl.Stream(ctx, "pipe", nil, &res)
	if err != nil {
		cl.Close()
		t.Fatal(err)
	}
	if res["to"] != "echo" {
		t.Fatalf("stream result %v", res)
	}
	return c
}

// TestStreamBytesIntact: after "pipe" is accepted the control connection
// carries 4 MiB of random bytes to the echo server and back unchanged,
// whatever the write sizes; the client's half-close is passed on and ends
// the stream cleanly.
func TestStreamBytesIntact(t *testing.T) {
	path, _ := serve(t, echoMux(t))
	c := openStream(t, path)
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	data := make([]byte, 4<<20)
	rand.Read(data)
	want := sha256.Sum256(data)
	go func() {
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 1+len(rest)%70000)
			if _, err := c.Write(rest[:n]); err != nil {
				return
			}
			rest = rest[n:]
		}
		c.(interface{ CloseWrite() error }).CloseWrite()
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil {
		t.Fatalf("after %d bytes: %v", n, err)
	}
	if n != int64(len(data)) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("echoed %d bytes with another checksum; sent %d", n, len(data))
	}
}

// TestStreamErrorsAndLimits: a refusal is an ordinary error response on a
// connection that stays usable; streams do not hold the slots of ordinary
// requests (more than maxConns open, status still answers); beyond
// maxStreams a stream is refused with a sentence saying so.
func TestStreamErrorsAndLimits(t *testing.T) {
	path, _ := serve(t, echoMux(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := Dial(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Stream(ctx, "refuse", nil, nil); err == nil || err.Error() != "amtd: device 4c4c4544-0042-3510-8052-b4c04f4e3232 is not connected over CIRA" {
		t.Fatalf("refused stream: %v", err)
	}
	var rep StatusReport
	if err := cl.Call(ctx, "status", nil, &rep); err != nil || rep.Version != "test" {
		t.Fatalf("the connection after a refused stream: %+v %v", rep, err)
	}

	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for range maxStreams {
		open = append(open, openStream(t, path))
	}
	if err := cl.Call(ctx, "status", nil, &rep); err != nil {
		t.Fatalf("status with %d streams open: %v", maxStreams, err)
	}
	cl2, err := Dial(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	if _, err := cl2.Stream(ctx, "pipe", nil, nil); err == nil || !strings.Contains(err.Error(), "forwarded connections are open already") {
		t.Fatalf("stream %d: %v", maxStreams+1, err)
	}
	// Every open stream still works.
	for i, c := range open {
		c.SetDeadline(time.Now().Add(20 * time.Second))
		msg := []byte{byte(i), 'x'}
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 2)
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("stream %d: %q %v", i, got, err)
		}
	}
}

// TestStreamEndsOnServerClose: Close ends open streams (both ends closed)
// and returns.
func TestStreamEndsOnServerClose(t *testing.T) {
	path, srv := serve(t, echoMux(t))
	var cs []net.Conn
	for range 3 {
		cs = append(cs, openStream(t, path))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.Copy(io.Discard, c); err != nil {
				t.Errorf("stream after Close: %v, want end-of-file", err)
			}
		})
	}
	wg.Wait()
}

// TestStreamClientEOFWithoutHalfClose: a far end with no half-close (as a
// CIRA channel) still gets its last output to a client that sent
// end-of-file, and is closed once it goes quiet, so a finished client does
// not hold it.
func TestStreamClientEOFWithoutHalfClose(t *testing.T) {
	far := make(chan net.Conn, 1)
	mux := NewMux()
	mux.Handle("pipe", func(ctx context.Context, args json.RawMessage) (any, error) {
		a, b := net.Pipe()
		far <- b
		return &Stream{Conn: a}, nil
	})
	path, _ := serve(t, mux)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := Dial(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cl.Stream(ctx, "pipe", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dev := <-far
	defer dev.Close()
	dev.SetDeadline(time.Now().Add(20 * time.Second))
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 7)
	if _, err := io.ReadFull(dev, got); err != nil || string(got) != "request" {
		t.Fatalf("far end read %q %v", got, err)
	}
	c.(interface{ CloseWrite() error }).CloseWrite()
	if _, err := dev.Write([]byte("answer")); err != nil {
		t.Fatalf("far end after the client's end-of-file: %v", err)
	}
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "answer" {
		t.Fatalf("client read %q %v after its end-of-file, want the answer then end-of-file", b, err)
	}
	// The far end is closed once quiet.
	if n, err := dev.Read(got); err != io.EOF {
		t.Fatalf("far end: %d %v, want it closed", n, err)
	}
}

// TestPeerFrom: a handler knows who asked (SO_PEERCRED), for its audit
// trail.
func TestPeerFrom(t *testing.T) {
	mux := NewMux()
	mux.Handle("whoami", func(ctx context.Context, args json.RawMessage) (any, error) {
		p, ok := PeerFrom(ctx)
		if !ok {
			return nil, errors.New("no peer in the context")
		}
		return p, nil
	})
	path, _ := serve(t, mux)
	cl, err := Dial(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var p Peer
	if err := cl.Call(t.Context(), "whoami", nil, &p); err != nil || p.UID != os.Geteuid() || p.PID != os.Getpid() {
		t.Fatalf("peer %+v %v, want uid %d pid %d", p, err, os.Geteuid(), os.Getpid())
	}
	if _, ok := PeerFrom(context.Background()); ok {
		t.Fatal("a peer outside a request")
	}
}
