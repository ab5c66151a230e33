package control

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func serve(t *testing.T, mux *Mux) (string, *Server) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "control.sock")
	ln, err := Listen(path, -1)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(slog.New(slog.DiscardHandler), mux)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close(context.Background())
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path, srv
}

func TestCallStatusAndErrors(t *testing.T) {
	mux := NewMux()
	mux.Handle("status", func(ctx context.Context, args json.RawMessage) (any, error) {
		return StatusReport{Version: "test", Devices: DeviceCounts{Known: 7}}, nil
	})
	mux.Handle("fail", func(ctx context.Context, args json.RawMessage) (any, error) {
		return nil, errors.New("store is locked; retry")
	})
	path, _ := serve(t, mux)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v, %v; want 0660", fi.Mode(), err)
	}
	c, err := Dial(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var rep StatusReport
	if err := c.Call(t.Context(), "status", nil, &rep); err != nil || rep.Devices.Known != 7 || rep.Version != "test" {
		t.Fatalf("status = %+v, %v", rep, err)
	}
	if err := c.Call(t.Context(), "fail", nil, nil); err == nil || err.Error() != "amtd: store is locked; retry" {
		t.Fatalf("fail = %v", err)
	}
	if err := c.Call(t.Context(), "devices", nil, nil); err == nil || !strings.Contains(err.Error(), `unknown command "devices": known commands: fail, status`) {
		t.Fatalf("unknown = %v", err)
	}
	// Same connection still works after errors.
	if err := c.Call(t.Context(), "status", nil, &rep); err != nil {
		t.Fatal(err)
	}
}

func TestServerRejectsBadLines(t *testing.T) {
	mux := NewMux()
	path, _ := serve(t, mux)
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	var resp Response
	dec := json.NewDecoder(conn)
	for _, line := range []string{`not json`, `{"cmd":"status","x":1}`, `{"cmd":"STATUS"}`, `{}`} {
		conn.Write([]byte(line + "\n"))
		if err := dec.Decode(&resp); err != nil || resp.OK || resp.Error == "" {
			t.Fatalf("%q: %+v, %v", line, resp, err)
		}
	}
	// An over-long line is refused and the connection closed, without
	// reading it all into memory.
	big := make([]byte, MaxLine+8192)
	for i := range big {
		big[i] = 'a'
	}
	conn.Write(big)
	if err := dec.Decode(&resp); err != nil || !strings.Contains(resp.Error, "longer than") {
		t.Fatalf("long line: %+v, %v", resp, err)
	}
}

func TestListenRefusesALiveSocket(t *testing.T) {
	path, _ := serve(t, NewMux())
	if _, err := Listen(path, -1); err == nil || !strings.Contains(err.Error(), "another daemon is answering") {
		t.Fatalf("second Listen = %v", err)
	}
	// A stale socket file (no one listening) is replaced.
	stale := filepath.Join(t.TempDir(), "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	ln2, err := Listen(stale, -1)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	ln2.Close()
	// A regular file is not removed.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("x"), 0o600)
	if _, err := Listen(file, -1); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("regular file: %v", err)
	}
}

func TestAdmitted(t *testing.T) {
	s := NewServer(slog.New(slog.DiscardHandler), NewMux())
	self := os.Getpid()
	tests := []struct {
		name  string
		group int
		peer  Peer
		want  bool
	}{
		{"root", -1, Peer{PID: self, UID: 0, GID: 0}, true},
		{"daemon's own user", -1, Peer{PID: self, UID: s.uid, GID: 1234}, true},
		{"stranger, no group configured", -1, Peer{PID: 1 << 30, UID: 65534, GID: 65534}, false},
		{"primary group member", 4321, Peer{PID: 1 << 30, UID: 65534, GID: 4321}, true},
		{"not a member", 4321, Peer{PID: 1 << 30, UID: 65534, GID: 65534}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.AllowGroup(tt.group)
			if got := s.admitted(tt.peer); got != tt.want {
				t.Fatalf("admitted(%+v) with group %d = %v, want %v", tt.peer, tt.group, got, tt.want)
			}
		})
	}
}

func TestCloseWaitsForRequestInProgress(t *testing.T) {
	mux := NewMux()
	entered := make(chan struct{})
	release := make(chan struct{})
	mux.Handle("slow", func(ctx context.Context, args json.RawMessage) (any, error) {
		close(entered)
		<-release
		return "done", nil
	})
	path, srv := serve(t, mux)
	c, err := Dial(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan error, 1)
	var res string
	go func() { got <- c.Call(t.Context(), "slow", nil, &res) }()
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- srv.Close(context.Background()) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a request was in progress")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-got; err != nil || res != "done" {
		t.Fatalf("in-flight request: %q, %v", res, err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}
