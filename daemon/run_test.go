package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"amtd/daemon/config"
	"amtd/daemon/control"
	"amtd/metrics"
	"amtd/netsvc"
)

// harness runs Run in-process with fake services, a recorded sd_notify and
// injected signals.
type harness struct {
	t       *testing.T
	cfg     *config.Config
	events  *eventLog
	notes   chan string
	sigs    chan os.Signal
	done    chan error
	metrics *metrics.Registry
	load    func(string) (*config.Config, error)
	gen     map[string]int
}

func testConfig(t *testing.T) *config.Config {
	dir := t.TempDir()
	return &config.Config{
		Path:    filepath.Join(dir, "amtd.conf"),
		Site:    config.Site{Domains: []string{"one.example"}},
		Store:   config.Store{Path: filepath.Join(dir, "amtd.db")},
		Control: config.Control{Socket: filepath.Join(dir, "control.sock")},
		DNS:     config.DNS{Enable: true},
		DHCP:    config.DHCP{Enable: true},
	}
}

func newHarness(t *testing.T, specs func(h *harness) []Spec) *harness {
	return newHarnessWith(t, specs, func(*Deps) {})
}

func newHarnessWith(t *testing.T, specs func(h *harness) []Spec, adjust func(*Deps)) *harness {
	h := &harness{
		t:       t,
		cfg:     testConfig(t),
		events:  &eventLog{},
		notes:   make(chan string, 100),
		sigs:    make(chan os.Signal, 1),
		done:    make(chan error, 1),
		metrics: metrics.NewRegistry(),
		gen:     map[string]int{},
	}
	deps := Deps{
		Deps:        netsvc.Deps{Log: slog.New(slog.NewTextHandler(testWriter{t}, nil)), Metrics: h.metrics},
		StoreView:   &fakeStore{devices: 42},
		Load:        func(p string) (*config.Config, error) { return h.load(p) },
		Services:    specs(h),
		Notify:      func(s string) error { h.notes <- s; return nil },
		Signals:     h.sigs,
		Watchdog:    -1,
		StatusEvery: time.Hour,
	}
	adjust(&deps)
	go func() { h.done <- Run(t.Context(), h.cfg, deps) }()
	return h
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// next returns the next sd_notify message, or fails after a few seconds.
func (h *harness) next() string {
	h.t.Helper()
	select {
	case s := <-h.notes:
		return s
	case err := <-h.done:
		// Run may return right after its last notification (STOPPING=1),
		// and select picks among ready cases at random: a queued
		// notification wins, and Run's result is put back for the caller.
		select {
		case s := <-h.notes:
			h.done <- err
			return s
		default:
		}
		h.t.Fatalf("Run returned %v while a notification was expected", err)
	case <-time.After(5 * time.Second):
		h.t.Fatal("no sd_notify message within 5 s")
	}
	return ""
}

func (h *harness) spec(name string, enabled func(*config.Config) bool) Spec {
	return Spec{Name: name, Enabled: enabled, New: func(cfg *config.Config, deps netsvc.Deps) (netsvc.Service, error) {
		h.gen[name]++
		return &fakeService{name: name, gen: h.gen[name], events: h.events, status: fmt.Sprintf("%s gen %d", name, h.gen[name])}, nil
	}}
}

func (h *harness) status() control.StatusReport {
	h.t.Helper()
	c, err := control.Dial(h.t.Context(), h.cfg.Control.Socket)
	if err != nil {
		h.t.Fatal(err)
	}
	defer c.Close()
	var rep control.StatusReport
	if err := c.Call(h.t.Context(), "status", nil, &rep); err != nil {
		h.t.Fatal(err)
	}
	return rep
}

func TestRunReadyReloadStop(t *testing.T) {
	var dns *reloadingService
	h := newHarness(t, func(h *harness) []Spec {
		return []Spec{
			{Name: "dns", Enabled: func(c *config.Config) bool { return c.DNS.Enable }, New: func(cfg *config.Config, deps netsvc.Deps) (netsvc.Service, error) {
				dns = &reloadingService{fakeService: fakeService{name: "dns", gen: 1, events: h.events}, domains: cfg.Site.Domains}
				return dns, nil
			}},
			h.spec("dhcp", func(c *config.Config) bool { return c.DHCP.Enable }),
		}
	})

	ready := h.next()
	// READY=1 comes only after every service started and the control socket listens.
	if !strings.HasPrefix(ready, "READY=1\n") {
		t.Fatalf("first notification %q, want READY=1", ready)
	}
	for _, e := range []event{{"start", "dns", 1}, {"start", "dhcp", 1}} {
		if h.events.index(e) < 0 {
			t.Fatalf("READY=1 sent before %v; events %v", e, h.events.list())
		}
	}
	if _, err := os.Stat(h.cfg.Control.Socket); err != nil {
		t.Fatalf("READY=1 sent before the control socket exists: %v", err)
	}
	wantStatus := "STATUS=3/3 services up (control, dns, dhcp); 42 devices known, 0 connected; 0 activations running"
	if !strings.Contains(ready, wantStatus) {
		t.Fatalf("READY message %q lacks %q", ready, wantStatus)
	}

	rep := h.status()
	if rep.Config != h.cfg.Path || rep.Store != h.cfg.Store.Path || rep.Devices.Known != 42 || len(rep.Services) != 3 {
		t.Fatalf("status report %+v", rep)
	}
	if rep.Services[2].Name != "dhcp" || rep.Services[2].Summary != "dhcp gen 1" || rep.Services[2].Health != "ok" {
		t.Fatalf("dhcp status %+v", rep.Services[2])
	}

	// A valid reload: dns reloads in place, dhcp is rebuilt (new started
	// before old closed).
	h.load = func(p string) (*config.Config, error) {
		c := *h.cfg
		c.Site.Domains = []string{"two.example"}
		return &c, nil
	}
	h.sigs <- syscall.SIGHUP
	reloading := h.next()
	if !regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=[1-9][0-9]*\n`).MatchString(reloading) {
		t.Fatalf("reload notification %q, want RELOADING=1 and MONOTONIC_USEC", reloading)
	}
	if r := h.next(); !strings.HasPrefix(r, "READY=1\n") || strings.Contains(r, "reload failed") {
		t.Fatalf("after reload %q, want READY=1 without failure", r)
	}
	if dns.domains[0] != "two.example" {
		t.Fatalf("dns was not reloaded in place: %v", dns.domains)
	}
	iNew, iOld := h.events.index(event{"start", "dhcp", 2}), h.events.index(event{"close", "dhcp", 1})
	if iNew < 0 || iOld < 0 || iNew > iOld {
		t.Fatalf("dhcp rebuild order: new start at %d, old close at %d (events %v)", iNew, iOld, h.events.list())
	}
	if h.events.index(event{"close", "dns", 1}) >= 0 {
		t.Fatal("a Reloader service was closed by a reload")
	}

	// An invalid file: everything keeps running, STATUS says why with FILE:LINE.
	h.load = func(p string) (*config.Config, error) {
		return nil, errors.Join(fmt.Errorf("%s:12: [DNS] Listen=: port 99999 out of range", p), fmt.Errorf("%s:14: unknown key Foo=", p))
	}
	h.sigs <- syscall.SIGHUP
	if r := h.next(); !strings.HasPrefix(r, "RELOADING=1\n") {
		t.Fatalf("got %q, want RELOADING=1", r)
	}
	r := h.next()
	if !strings.HasPrefix(r, "READY=1\n") || !strings.Contains(r, "reload failed: "+h.cfg.Path+":12: [DNS] Listen=: port 99999 out of range (and 1 more)") {
		t.Fatalf("after an invalid reload %q, want READY=1 and the first FILE:LINE in STATUS=", r)
	}
	if v := h.metrics.Counter("amtd_reload_failures_total", "").Value(); v != 1 {
		t.Fatalf("amtd_reload_failures_total = %v, want 1", v)
	}
	rep = h.status()
	if rep.LastReload == nil || rep.LastReload.OK || len(rep.LastReload.Errors) != 2 || dns.domains[0] != "two.example" {
		t.Fatalf("after invalid reload: last reload %+v, dns domains %v", rep.LastReload, dns.domains)
	}
	if rep.Services[2].Summary != "dhcp gen 2" || h.gen["dhcp"] != 2 {
		t.Fatalf("an invalid reload rebuilt dhcp: %+v", rep.Services[2])
	}

	// Disable dhcp by reload: it is closed, dns stays.
	h.load = func(p string) (*config.Config, error) {
		c := *h.cfg
		c.DHCP.Enable = false
		return &c, nil
	}
	h.sigs <- syscall.SIGHUP
	h.next()
	if r := h.next(); !strings.Contains(r, "2/2 services up (control, dns)") {
		t.Fatalf("after disabling dhcp: %q", r)
	}

	h.sigs <- syscall.SIGTERM
	if s := h.next(); !strings.HasPrefix(s, "STOPPING=1\n") {
		t.Fatalf("on SIGTERM %q, want STOPPING=1", s)
	}
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatalf("Run after SIGTERM: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5 s of SIGTERM")
	}
	if h.events.index(event{"close", "dns", 1}) < 0 || h.events.index(event{"close", "dhcp", 2}) < 0 {
		t.Fatalf("services not closed on stop: %v", h.events.list())
	}
	if _, err := os.Stat(h.cfg.Control.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("control socket left behind after stop: %v", err)
	}
}

func TestRunStartFailureClosesWhatStarted(t *testing.T) {
	h := newHarness(t, func(h *harness) []Spec {
		return []Spec{
			h.spec("dns", func(*config.Config) bool { return true }),
			{Name: "dhcp", Enabled: func(*config.Config) bool { return true }, New: func(*config.Config, netsvc.Deps) (netsvc.Service, error) {
				return &fakeService{name: "dhcp", events: h.events, startErr: errors.New("listen dhcp on 0.0.0.0:67: address in use")}, nil
			}},
		}
	})
	if s := h.next(); !strings.HasPrefix(s, "STATUS=failed to start: start dhcp: listen dhcp") {
		t.Fatalf("notification %q, want a failure STATUS=", s)
	}
	err := <-h.done
	if err == nil || !strings.Contains(err.Error(), "address in use") {
		t.Fatalf("Run = %v, want the start error", err)
	}
	if h.events.index(event{"close", "dns", 1}) < 0 {
		t.Fatalf("dns left running after dhcp failed: %v", h.events.list())
	}
	if _, err := os.Stat(h.cfg.Control.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("control socket left behind: %v", err)
	}
}

func TestReloadMovesControlSocket(t *testing.T) {
	h := newHarness(t, func(h *harness) []Spec { return []Spec{} })
	h.next()
	moved := filepath.Join(t.TempDir(), "moved.sock")
	h.load = func(string) (*config.Config, error) {
		c := *h.cfg
		c.Control.Socket = moved
		return &c, nil
	}
	old := h.cfg.Control.Socket
	h.sigs <- syscall.SIGHUP
	h.next()
	h.next()
	h.cfg.Control.Socket = moved
	if rep := h.status(); rep.LastReload == nil || !rep.LastReload.OK {
		t.Fatalf("status over the moved socket: %+v", rep.LastReload)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("old control socket still there: %v", err)
	}
	h.sigs <- syscall.SIGTERM
	h.next()
	if err := <-h.done; err != nil {
		t.Fatal(err)
	}
}

// stuckService ignores its drain deadline.
type stuckService struct{ fakeService }

func (s *stuckService) Close(ctx context.Context) error { select {} }

func TestStopAbandonsAServiceThatIgnoresTheDeadline(t *testing.T) {
	h := newHarnessWith(t, func(h *harness) []Spec {
		return []Spec{{Name: "stuck", Enabled: func(*config.Config) bool { return true }, New: func(*config.Config, netsvc.Deps) (netsvc.Service, error) {
			return &stuckService{fakeService{name: "stuck", events: h.events}}, nil
		}}}
	}, func(d *Deps) { d.StopTimeout = 200 * time.Millisecond })
	h.next()
	start := time.Now()
	h.sigs <- syscall.SIGTERM
	h.next()
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run hung on a service that ignores its drain deadline")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("stop took %s with a 200 ms drain deadline", took)
	}
}

func TestStatusRefreshed(t *testing.T) {
	st := &fakeStore{devices: 1}
	h := newHarnessWith(t, func(h *harness) []Spec { return []Spec{} }, func(d *Deps) {
		d.StatusEvery = 20 * time.Millisecond
		d.StoreView = st
	})
	if r := h.next(); !strings.Contains(r, "1 devices known") {
		t.Fatalf("ready: %q", r)
	}
	st.mu.Lock()
	st.devices = 2
	st.mu.Unlock()
	for {
		r := h.next()
		if !strings.HasPrefix(r, "STATUS=") {
			t.Fatalf("unexpected %q", r)
		}
		if strings.Contains(r, "2 devices known") {
			break
		}
	}
	h.sigs <- syscall.SIGTERM
	for !strings.HasPrefix(h.next(), "STOPPING=1") {
	}
	if err := <-h.done; err != nil {
		t.Fatal(err)
	}
}
