package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"amtd/amt/hello"
	"amtd/amt/setupbin"
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

// TestFleetSetupBin: two devices boot with a two-record USB key; each takes
// its own record, sends a hello straight to the address the record names,
// and the key is left with both records consumed. A third device finds none.
func TestFleetSetupBin(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	hellos := make(chan []byte, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			b, _ := io.ReadAll(io.LimitReader(c, hello.MaxLen))
			c.Close()
			hellos <- b
		}
	}()
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	f := &setupbin.File{}
	for _, pw := range []string{"Rec0rd-One!", "Rec0rd-Two!"} {
		vs, err := setupbin.Settings{CurrentMEBxPassword: "admin", NewMEBxPassword: pw, PKIDNSSuffix: "site.example.com",
			ServerAddr: netip.MustParseAddr("127.0.0.1"), ServerPort: port, Start: true}.Vars()
		if err != nil {
			t.Fatal(err)
		}
		f.Records = append(f.Records, setupbin.Record{Flags: setupbin.RecordValid, Vars: vs})
	}
	b, _ := setupbin.Encode(f)
	key := filepath.Join(t.TempDir(), "setup.bin")
	if err := os.WriteFile(key, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	o := options{count: 2, versions: "16", seed: "usb", noListen: true, keyPool: 1, setupBin: key,
		helloPort: 9971, helloInterval: time.Hour, helloAttempts: 1}
	go func() { done <- runFleet(ctx, o, slog.New(slog.DiscardHandler)) }()
	seen := map[string]bool{}
	for range 2 {
		select {
		case b := <-hellos:
			h, err := hello.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			seen[h.UUID.String()] = true
		case err := <-done:
			t.Fatalf("amtsim stopped: %v", err)
		case <-time.After(20 * time.Second):
			t.Fatal("hellos did not arrive")
		}
	}
	cancel()
	<-done
	if !seen[deviceUUID("usb", 0).String()] || !seen[deviceUUID("usb", 1).String()] {
		t.Fatalf("hellos from %v", seen)
	}
	after, _ := os.ReadFile(key)
	g, err := setupbin.Decode(after)
	if err != nil || g.Consumed != 2 || g.Next() != -1 {
		t.Fatalf("key after two boots: %v, %v", g, err)
	}

	o.count, o.seed = 1, "usb-third"
	if err := runFleet(context.Background(), o, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "every record is consumed") {
		t.Fatalf("third device: %v", err)
	}
}
