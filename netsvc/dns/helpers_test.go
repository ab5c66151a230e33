package dns

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"amtd/daemon/config"
	"amtd/netsvc"
	"amtd/secret"
	"amtd/store"
)

// logBuffer collects log lines from every goroutine of a test.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testStore creates a real SQLite store in a temporary directory.
func testStore(t testing.TB) (*store.Store, store.Options) {
	t.Helper()
	dir := t.TempDir()
	opts := store.Options{Path: filepath.Join(dir, "amtd.db"), KeyFile: filepath.Join(dir, "master.key")}
	if err := store.GenerateKeyFile(opts.KeyFile); err != nil {
		t.Fatal(err)
	}
	s, err := store.Init(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, opts
}

// putTSIG stores a TSIG key as `amtd dns tsig add` does.
func putTSIG(t testing.TB, s *store.Store, name string, raw []byte) {
	t.Helper()
	if err := s.Keys().Put(context.Background(), name, store.KeyTSIG, secret.New(raw), "test", "test key"); err != nil {
		t.Fatal(err)
	}
}

// freePort finds a port free for both UDP and TCP on ip, as a DNS server
// needs one port for both; it returns the two bound sockets as files, the
// way systemd would hand them over.
func boundPair(t testing.TB, ip string) (udp, tcp *os.File, port int) {
	t.Helper()
	for range 50 {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatal(err)
		}
		port = pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
		if err != nil {
			pc.Close()
			continue
		}
		uf, err1 := pc.(*net.UDPConn).File()
		tf, err2 := ln.(*net.TCPListener).File()
		pc.Close()
		ln.Close()
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		return uf, tf, port
	}
	t.Fatal("no port free for both UDP and TCP")
	return nil, nil, 0
}

// freePort returns a port that was just free for UDP and TCP on ip (for
// peers that bind themselves: named, dnsmasq).
func freePort(t testing.TB, ip string) int {
	u, tc, port := boundPair(t, ip)
	u.Close()
	tc.Close()
	return port
}

// harness is a running DNS service on 127.0.0.1 with the sockets handed
// over as systemd would.
type harness struct {
	svc   *Service
	cfg   *config.Config
	deps  netsvc.Deps
	port  int
	addr  string
	logs  *logBuffer
	hosts *netsvc.Hosts
}

func baseConfig() *config.Config {
	return &config.Config{
		Site: config.Site{
			Domains:   []string{"site.test", "corp.example"},
			Hostname:  "amtd.site.test",
			Addresses: []netip.Addr{netip.MustParseAddr("127.0.0.10"), netip.MustParseAddr("fd00::10")},
		},
		DHCPPools: []config.DHCPPool{{Subnet: netip.MustParsePrefix("10.20.30.0/24"), Domain: "pool.test"}},
		DNS: config.DNS{
			Enable: true, TTL: 5 * time.Minute, SingleLabel: true, CacheSize: 100,
		},
		DNSRecords: []config.DNSRecord{
			{Line: 10, Name: "www.site.test.", Type: "A", Value: "127.0.0.20"},
			{Line: 11, Name: "www.site.test.", Type: "TXT", Value: "hello world"},
			{Line: 12, Name: "alias.site.test.", Type: "CNAME", Value: "www.site.test."},
			{Line: 13, Name: "deep.sub.site.test.", Type: "A", Value: "127.0.0.21"},
		},
	}
}

// startService starts a DNS service for cfg with a store (may be nil).
func startService(t testing.TB, cfg *config.Config, st *store.Store) *harness {
	t.Helper()
	return startServiceAt(t, "127.0.0.1", cfg, st)
}

// startServiceAt is startService with the sockets bound to ip (a wildcard
// address included); the harness's dig still asks 127.0.0.1.
func startServiceAt(t testing.TB, ip string, cfg *config.Config, st *store.Store) *harness {
	t.Helper()
	uf, tf, port := boundPair(t, ip)
	cfg.DNS.Listen = net.JoinHostPort(ip, fmt.Sprint(port))
	logs := &logBuffer{}
	h := &harness{cfg: cfg, port: port, addr: cfg.DNS.Listen, logs: logs, hosts: netsvc.NewHosts()}
	h.deps = netsvc.Deps{
		Log:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Store:     st,
		Listeners: netsvc.NewListeners(map[string]*os.File{"dns": uf, "dns-tcp": tf}),
		Hosts:     h.hosts,
	}
	t.Cleanup(func() { h.deps.Listeners.Close() })
	h.start(t)
	return h
}

func (h *harness) start(t testing.TB) {
	t.Helper()
	svc, err := New(h.cfg, h.deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	t.Cleanup(func() { svc.Close(context.Background()) })
}

func (h *harness) stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// needTool skips nothing: a missing peer is a failure with the package to
// install, since CI installs them (scripts/deps.sh).
func needTool(t testing.TB, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if _, err := os.Stat(filepath.Join(dir, tool)); err == nil {
				return filepath.Join(dir, tool)
			}
		}
		t.Fatalf("%s not found: install the Debian package %s (scripts/deps.sh does)", tool, pkg)
	}
	return p
}

// dig runs the real dig against the harness and returns its output.
func (h *harness) dig(t testing.TB, args ...string) string {
	t.Helper()
	return digAt(t, "127.0.0.1", h.port, args...)
}

func digAt(t testing.TB, server string, port int, args ...string) string {
	t.Helper()
	bin := needTool(t, "dig", "bind9-dnsutils")
	all := append([]string{"-p", fmt.Sprint(port), "@" + server, "+time=2", "+tries=1"}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, all...).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "status:") {
		t.Fatalf("dig %s: %v\n%s", strings.Join(all, " "), err, out)
	}
	return string(out)
}

// nsupdate runs the real nsupdate with script on stdin; it returns the
// output and whether nsupdate exited 0.
func nsupdate(t testing.TB, script string, args ...string) (string, bool) {
	t.Helper()
	bin := needTool(t, "nsupdate", "bind9-dnsutils")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// answers returns the answer-section lines of dig output as "name type value".
func answers(out string) []string {
	var res []string
	in := false
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, ";; ANSWER SECTION:"):
			in = true
		case in && (line == "" || strings.HasPrefix(line, ";;")):
			in = false
		case in:
			f := strings.Fields(line)
			if len(f) >= 5 {
				res = append(res, f[0]+" "+f[3]+" "+strings.Join(f[4:], " "))
			}
		}
	}
	return res
}

func digStatus(out string) string {
	_, rest, ok := strings.Cut(out, "status: ")
	if !ok {
		return ""
	}
	st, _, _ := strings.Cut(rest, ",")
	return st
}

func digFlags(out string) string {
	_, rest, ok := strings.Cut(out, ";; flags: ")
	if !ok {
		return ""
	}
	f, _, _ := strings.Cut(rest, ";")
	return f
}

func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func netFilePacketConn(f *os.File) (net.PacketConn, error) {
	defer f.Close()
	return net.FilePacketConn(f)
}

// netDialUDP dials server from the local address src (port chosen by the kernel).
func netDialUDP(src, server string) (*net.UDPConn, error) {
	raddr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return nil, err
	}
	return net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, raddr)
}

// depsNoNet are deps for services that are built but not expected to bind.
func depsNoNet() netsvc.Deps {
	return netsvc.Deps{Listeners: netsvc.NewListeners(nil), Hosts: netsvc.NewHosts()}
}
