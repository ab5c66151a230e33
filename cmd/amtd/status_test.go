package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"amtd/amt/setupbin"
	"amtd/amtsim"
	"amtd/daemon/config"
	"amtd/daemon/control"
	"amtd/store"
)

const provisionConf = `[Site]
Domain=corp.example.com
Address=127.0.0.1

[Control]
Socket=%s

[Provisioning]
Enable=yes
HelloListen=127.0.0.1:0
MaxConcurrentActivations=1
`

// gatedPort stands where the daemon connects back to a device (its
// address, port 16993) and holds every connection until open is closed,
// then relays it to the device's real TLS listener: an activation waits
// at its first step for as long as the test looks at it.
type gatedPort struct {
	ln   net.Listener
	open chan struct{}
	held chan struct{}
	wg   sync.WaitGroup
}

func newGatedPort(t *testing.T, addr, to string, open chan struct{}) *gatedPort {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedPort{ln: ln, open: open, held: make(chan struct{}, 16)}
	g.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			g.wg.Go(func() {
				defer c.Close()
				select {
				case g.held <- struct{}{}:
				default:
				}
				<-g.open
				d, err := net.Dial("tcp", to)
				if err != nil {
					return
				}
				defer d.Close()
				go func() { _, _ = io.Copy(d, c); d.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(c, d)
			})
		}
	})
	t.Cleanup(func() { ln.Close(); g.wg.Wait() })
	return g
}

// provisionSite is the real daemon (daemon.Run with the default service
// table) running [Provisioning] on loopback with a self-signed domain.
type provisionSite struct {
	t        *testing.T
	sock     string
	helloAt  netip.AddrPort
	rootHash []byte
	sigs     chan os.Signal

	mu   sync.Mutex
	conf string // what the daemon reads on SIGHUP
}

func startProvisionSite(t *testing.T) *provisionSite {
	t.Helper()
	dir := t.TempDir()
	db, key := filepath.Join(dir, "amtd.db"), filepath.Join(dir, "master.key")
	if code, _, errs := runCLI(t, "store", "init", "--db", db, "--key-file", key, "--generate-key"); code != exitOK {
		t.Fatalf("store init: %d %s", code, errs)
	}
	code, out, errs := runCLI(t, "domain", "add", "corp.example.com", "--self-signed", "--db", db, "--key-file", key)
	if code != exitOK {
		t.Fatalf("domain add: %d %s", code, errs)
	}
	m := regexp.MustCompile(`(?m)^\s+([0-9a-f]{64})\s*$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no root hash in:\n%s", out)
	}
	s := &provisionSite{t: t, sock: filepath.Join(dir, "control.sock"), sigs: make(chan os.Signal, 1)}
	s.conf = fmt.Sprintf(provisionConf, s.sock)
	s.rootHash, _ = hex.DecodeString(m[1])

	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Path: db, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	load := func(path string) (*config.Config, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return config.Parse(path, strings.NewReader(s.conf))
	}
	cfg, err := load("amtd.conf")
	if err != nil {
		t.Fatal(err)
	}
	lns := runTestDaemon(t, dir, st, cfg, s.sigs, load)
	s.helloAt = netip.MustParseAddrPort(listenerAddr(t, lns, "hello"))
	return s
}

// device is an amtsim device in Setup Mode on ip, set up by USB to trust
// the site's root and send its hellos to the daemon; its TLS listener is
// on ip:tlsPort.
func (s *provisionSite) device(ip string, tlsPort int, faults *amtsim.Faults) (*amtsim.Device, string) {
	t := s.t
	t.Helper()
	d, err := amtsim.New(amtsim.Config{Net: amtsim.NetIdentity{Suffix: "corp.example.com", IP: netip.MustParseAddr(ip)},
		Faults: faults, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := d.Listen(amtsim.ListenAddrs{TLS: fmt.Sprintf("%s:%d", ip, tlsPort), Plain: ip + ":0", Redir: ip + ":0", RedirTLS: ip + ":0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	vs, err := setupbin.Settings{CurrentMEBxPassword: "admin", NewMEBxPassword: "Usb!Mebx-pass1", PKIDNSSuffix: "corp.example.com",
		RootHash:   &setupbin.RootHash{Algorithm: 2, Hash: s.rootHash, Name: "site root"},
		ServerAddr: s.helloAt.Addr(), ServerPort: s.helloAt.Port(), Start: true}.Vars()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ApplySetupBin(&setupbin.File{Records: []setupbin.Record{{Flags: setupbin.RecordValid, Vars: vs}}}); err != nil {
		t.Fatal(err)
	}
	return d, l.TLS.String()
}

// reload gives the daemon conf and sends it SIGHUP.
func (s *provisionSite) reload(conf string) {
	s.mu.Lock()
	s.conf = conf
	s.mu.Unlock()
	s.sigs <- syscall.SIGHUP
}

func (s *provisionSite) hello(d *amtsim.Device) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := d.SendHello(ctx, 9971, 0); err != nil {
		s.t.Fatal(err)
	}
}

// status runs `amtd status` against the daemon's control socket.
func (s *provisionSite) status(args ...string) string {
	s.t.Helper()
	code, out, errs := runCLI(s.t, append([]string{"status", "--socket", s.sock}, args...)...)
	if code != exitOK {
		s.t.Fatalf("amtd status: %d %s", code, errs)
	}
	return out
}

func (s *provisionSite) progress() control.ProvisioningStatus {
	s.t.Helper()
	var rep control.StatusReport
	if err := json.Unmarshal([]byte(s.status("--json")), &rep); err != nil {
		s.t.Fatal(err)
	}
	if rep.Provisioning == nil {
		s.t.Fatal("the status has no provisioning section")
	}
	return *rep.Provisioning
}

func (s *provisionSite) waitProgress(what string, cond func(control.ProvisioningStatus) bool) control.ProvisioningStatus {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		p := s.progress()
		if cond(p) {
			return p
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting for %s; last progress %+v", what, p)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStatusShowsProvisioningProgress runs the real daemon with one
// activation at a time and asks `amtd status` over its control socket, as
// an administrator would during long work: the device being activated and
// the step it waits at, the device queued behind it, then both done, then
// a failure in plain words with its step, in text and in JSON.
func TestStatusShowsProvisioningProgress(t *testing.T) {
	s := startProvisionSite(t)
	open := make(chan struct{})
	var opened sync.Once
	t.Cleanup(func() { opened.Do(func() { close(open) }) })
	a, aTLS := s.device("127.0.77.1", 0, nil)
	ga := newGatedPort(t, "127.0.77.1:16993", aTLS, open)
	b, bTLS := s.device("127.0.77.2", 0, nil)
	newGatedPort(t, "127.0.77.2:16993", bTLS, open)

	s.hello(a)
	select {
	case <-ga.held:
	case <-time.After(60 * time.Second):
		t.Fatal("the daemon did not connect back to the first device")
	}
	s.hello(b)
	p := s.waitProgress("b queued", func(p control.ProvisioningStatus) bool { return len(p.Queued) == 1 })
	if p.MaxConcurrent != 1 || p.MaxQueued != 8 || len(p.Running) != 1 {
		t.Fatalf("progress %+v", p)
	}
	if r := p.Running[0]; r.UUID != a.UUID.String() || r.Path != "hello" || r.Address != "127.0.77.1" || r.Step != "connect" {
		t.Fatalf("running %+v", r)
	}
	if q := p.Queued[0]; q.UUID != b.UUID.String() || q.Address != "127.0.77.2" {
		t.Fatalf("queued %+v", q)
	}
	text := s.status()
	t.Logf("amtd status while one waits at its first step:\n%s", text)
	for _, want := range []string{
		"provisioning: 1 running (at most 1), 1 queued (at most 8)", "0 done, 0 failed",
		"ACTIVATING", a.UUID.String() + "  hello  127.0.77.1  connect (127.0.77.1:16993)",
		"QUEUED", b.UUID.String() + "  127.0.77.2",
	} {
		if !strings.Contains(text, want) {
			t.Fatalf("amtd status lacks %q:\n%s", want, text)
		}
	}

	opened.Do(func() { close(open) })
	s.waitProgress("both done", func(p control.ProvisioningStatus) bool { return p.Succeeded == 2 && len(p.Running) == 0 })
	for _, d := range []*amtsim.Device{a, b} {
		if d.ControlMode() != amtsim.ModeACM {
			t.Fatalf("device %s in mode %d", d.UUID, d.ControlMode())
		}
	}

	c, _ := s.device("127.0.77.3", 16993, &amtsim.Faults{FailMethod: "CommitChanges", FailCode: 1})
	s.hello(c)
	p = s.waitProgress("c failed", func(p control.ProvisioningStatus) bool { return p.Failed == 1 && len(p.Running) == 0 })
	if p.Succeeded != 2 || len(p.RecentFailures) != 1 {
		t.Fatalf("progress %+v", p)
	}
	if f := p.RecentFailures[0]; f.UUID != c.UUID.String() || f.Step != "commit" || f.Kind != "device-refused" || !strings.Contains(f.Reason, "CommitChanges returned 1") {
		t.Fatalf("failure %+v", f)
	}
	text = s.status()
	t.Logf("amtd status:\n%s", text)
	for _, want := range []string{"2 done, 1 failed", "last failures", c.UUID.String() + " at step commit (device-refused): commit: wsman: AMT_SetupAndConfigurationService.CommitChanges returned 1"} {
		if !strings.Contains(text, want) {
			t.Fatalf("amtd status lacks %q:\n%s", want, text)
		}
	}

	// A reload with another limit: the rebuilt service takes it for new
	// work, and its counts start again.
	s.reload(strings.Replace(s.conf, "MaxConcurrentActivations=1", "MaxConcurrentActivations=4", 1))
	p = s.waitProgress("the new limit", func(p control.ProvisioningStatus) bool { return p.MaxConcurrent == 4 })
	if p.MaxQueued != 32 || p.Succeeded != 0 || p.Failed != 0 {
		t.Fatalf("after reload %+v", p)
	}
}
