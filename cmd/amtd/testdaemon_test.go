package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amtd/daemon"
	"amtd/daemon/config"
	"amtd/metrics"
	"amtd/netsvc"
	"amtd/store"
)

// runTestDaemon runs daemon.Run with cfg and st, its log in dir/daemon.log
// (shown when the test fails), until the test ends; it returns once the
// daemon said READY=1. sigs and load may be nil (no reloads).
func runTestDaemon(t testing.TB, dir string, st *store.Store, cfg *config.Config, sigs chan os.Signal,
	load func(string) (*config.Config, error)) *netsvc.Listeners {
	t.Helper()
	lns := netsvc.NewListeners(nil)
	t.Cleanup(func() { lns.Close() })
	logf, err := os.Create(filepath.Join(dir, "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	if sigs == nil {
		sigs = make(chan os.Signal)
	}
	ready := make(chan struct{}, 1)
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	deps := daemon.Deps{
		Deps: netsvc.Deps{Log: slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Store: st, Metrics: metrics.NewRegistry(), Listeners: lns},
		Notify: func(m string) error {
			if strings.HasPrefix(m, "READY=1") {
				select {
				case ready <- struct{}{}:
				default:
				}
			}
			return nil
		},
		Signals:     sigs,
		Load:        load,
		Watchdog:    -1,
		StatusEvery: time.Hour,
	}
	go func() { done <- daemon.Run(rctx, cfg, deps) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("daemon log:\n%s", b)
		}
		logf.Close()
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("daemon did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon not ready in 30 s")
	}
	return lns
}

// listenerAddr is the address of the daemon's socket called name.
func listenerAddr(t testing.TB, lns *netsvc.Listeners, name string) string {
	t.Helper()
	f, err := lns.File(name)
	if err != nil || f == nil {
		t.Fatalf("%s socket: %v", name, err)
	}
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
