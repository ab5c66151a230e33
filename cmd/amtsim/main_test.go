package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "-versions") {
		t.Fatalf("-help: exit %d, stdout %q", code, out.String())
	}
	if code := run([]string{"-count", "x"}, &out, &errb); code != 2 {
		t.Fatalf("bad flag: exit %d", code)
	}
	if code := run([]string{"stray"}, &out, &errb); code != 2 {
		t.Fatalf("stray argument: exit %d", code)
	}
}

// TestFleetListens starts two devices on distinct ports of one address
// and completes a TLS handshake with each; the 16.1 device keeps 16992
// closed.
func TestFleetListens(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	base := ln.Addr().(*net.TCPAddr).Port + 100
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	o := options{count: 2, versions: "16,16.1", seed: "t", addr: "127.0.0.1", portBase: base, keyPool: 1,
		helloPort: 9971, helloInterval: time.Second, helloAttempts: 1}
	go func() { done <- runFleet(ctx, o, slog.New(slog.DiscardHandler)) }()
	defer func() { cancel(); <-done }()
	dial := func(port int) error {
		var err error
		for range 100 {
			var c *tls.Conn
			c, err = tls.Dial("tcp", net.JoinHostPort("127.0.0.1", itoa(port)), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // self-signed AMT certificate
			if err == nil {
				c.Close()
				return nil
			}
			time.Sleep(20 * time.Millisecond)
		}
		return err
	}
	if err := dial(base); err != nil {
		t.Fatal(err)
	}
	if err := dial(base + 4); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", itoa(base+4+1))); err == nil {
		c.Close()
		t.Fatal("the 16.1 device listens on its 16992 port")
	}
	if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", itoa(base+1))); err != nil {
		t.Fatalf("the 16.0 device does not listen on 16992: %v", err)
	} else {
		c.Close()
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
