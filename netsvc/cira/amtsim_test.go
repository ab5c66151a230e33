package cira

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amtd/amt/guid"
	"amtd/amtsim"
	"amtd/daemon/config"
	"amtd/metrics"
	"amtd/netsvc"
	"amtd/pki"
	"amtd/secret"
	"amtd/store"
)

// site is a real store, the appliance CA and the CIRA service on a loopback
// port, as the daemon runs them.
type site struct {
	t    *testing.T
	st   *store.Store
	opts store.Options
	ca   *pki.CA
	svc  *Service
	addr string
	log  string // the service's log file
}

func newSite(t *testing.T, mod func(*config.Config)) *site {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	opts := store.Options{Path: filepath.Join(dir, "amtd.db"), KeyFile: filepath.Join(dir, "master.key")}
	if err := store.GenerateKeyFile(opts.KeyFile); err != nil {
		t.Fatal(err)
	}
	st, err := store.Init(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ca, err := pki.Init(ctx, st, time.Now(), "", "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.CIRA.KeepAlive, cfg.CIRA.IdleTimeout = time.Second, 3*time.Second
	if mod != nil {
		mod(cfg)
	}
	lf, err := os.CreateTemp(dir, "log")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(lf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc, err := New(cfg, netsvc.Deps{Log: log, Store: st, Metrics: metrics.NewRegistry(), Listeners: netsvc.NewListeners(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	s := &site{t: t, st: st, opts: opts, ca: ca, svc: svc, addr: svc.ln.Addr().String(), log: lf.Name()}
	t.Cleanup(func() {
		if err := svc.Close(context.Background()); err != nil {
			t.Error(err)
		}
		b, _ := os.ReadFile(lf.Name())
		if t.Failed() {
			t.Logf("service log:\n%s", b)
		}
	})
	return s
}

// addDevice registers a device as provisioning leaves it: a row with its MPS
// user name and a current MPS password.
func (s *site) addDevice(uuid guid.UUID, user, pass string) {
	s.t.Helper()
	ctx := context.Background()
	if err := s.st.Devices().Put(ctx, store.Device{UUID: uuid.String(), CIRA: store.CIRAState{MPSUsername: user}}); err != nil {
		s.t.Fatal(err)
	}
	if err := s.st.Secrets().SetPending(ctx, uuid.String(), store.MPS, secret.FromString(pass), "test"); err != nil {
		s.t.Fatal(err)
	}
	if err := s.st.Secrets().Promote(ctx, uuid.String(), store.MPS); err != nil {
		s.t.Fatal(err)
	}
}

// device is an amtsim AMT configured for CIRA to the site, as ConfigureCIRA
// leaves it (spec/activation.md §9 step 4).
func (s *site) device(uuid guid.UUID, version, user, pass string) *amtsim.Device {
	s.t.Helper()
	return s.deviceOpts(uuid, version, user, pass, amtsim.CIRAOptions{})
}

// deviceOpts is device with CIRA options (the device's receive window);
// dialling and backoff are the site's.
func (s *site) deviceOpts(uuid guid.UUID, version, user, pass string, opt amtsim.CIRAOptions) *amtsim.Device {
	s.t.Helper()
	v, err := amtsim.ParseVersion(version)
	if err != nil {
		s.t.Fatal(err)
	}
	d, err := amtsim.New(amtsim.Config{UUID: uuid, Version: v, Net: amtsim.NetIdentity{Suffix: "corp.example.com"},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		s.t.Fatal(err)
	}
	ha1 := md5.Sum([]byte("admin:" + d.Realm() + ":P@ssw0rd1"))
	if code := d.Setup(2, hex.EncodeToString(ha1[:])); code != 0 {
		s.t.Fatalf("Setup: %d", code)
	}
	if _, code := d.AddTrustedRootCertificate(base64.StdEncoding.EncodeToString(s.ca.RootDER())); code != 0 {
		s.t.Fatalf("AddTrustedRootCertificate: %d", code)
	}
	sap, code := d.AddMpServer(amtsim.MPServer{AccessInfo: "amtd.corp.example.com", InfoFormat: 201, Port: 4433, AuthMethod: 2,
		Username: user, Password: pass, CN: "amtd.corp.example.com"})
	if code != 0 {
		s.t.Fatalf("AddMpServer: %d", code)
	}
	if _, code := d.AddRemoteAccessPolicyRule(2, 0, "AAAAAAAAABk=", sap); code != 0 {
		s.t.Fatalf("AddRemoteAccessPolicyRule: %d", code)
	}
	opt.DialAddr, opt.BackoffMin, opt.BackoffMax = s.addr, 50*time.Millisecond, 200*time.Millisecond
	d.EnableCIRA(opt)
	s.t.Cleanup(d.StopCIRA)
	return d
}

func (s *site) result(r string) float64 { return s.svc.results.With(r).Value() }

// waitFor polls cond; the deadline is generous (2 cores shared, -race).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newUUID(t *testing.T, s string) guid.UUID {
	t.Helper()
	u, err := guid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestAMTSimDevices: simulated AMT devices connect over real TLS with the
// appliance certificate, log in with the password sealed in the store, keep
// the link alive, reconnect after a drop, and give way to a newer connection
// of the same UUID; the store records the links.
func TestAMTSimDevices(t *testing.T) {
	s := newSite(t, nil)
	ctx := context.Background()
	uuid := newUUID(t, "4c4c4544-0042-3510-8052-b4c04f4e3232")
	s.addDevice(uuid, "amt1234567890abc", "Cira!Pass-0001")
	d := s.device(uuid, "16", "amt1234567890abc", "Cira!Pass-0001")
	waitFor(t, "the device's link", func() bool { return d.CIRAConnected() && s.svc.ConnectedDevices() == 1 })

	// Keep-alives at the 1 s interval the server asked for keep the link up
	// past several idle limits (3 s).
	waitFor(t, "keep-alives", func() bool { return s.svc.keepalives.Value() >= 4 })
	if s.svc.ConnectedDevices() != 1 || s.result(resultAuthenticated) != 1 {
		t.Fatalf("link did not survive on keep-alives: %d connected, %v logins", s.svc.ConnectedDevices(), s.result(resultAuthenticated))
	}
	// The flusher writes the link within flushInterval.
	var dev store.Device
	waitFor(t, "the link in the store", func() bool {
		var err error
		dev, err = s.st.Devices().Get(ctx, uuid.String())
		return err == nil && dev.CIRA.Connected && len(dev.CIRA.BoundPorts) > 0
	})
	if c := dev.CIRA; !c.Connected || len(c.BoundPorts) != len(d.Version.CIRAPorts()) || c.OwnerInstance != "amtd.corp.example.com" || c.MPSUsername != "amt1234567890abc" ||
		c.LastSeen.Before(c.ConnectedSince) || !strings.HasPrefix(c.RemoteAddr, "127.0.0.1:") {
		t.Fatalf("stored link: %+v", c)
	}

	// A drop (the server end closed): the device reconnects by itself.
	s.svc.reg.get(uuid.String()).conn.Close()
	waitFor(t, "a reconnect", func() bool { return s.result(resultAuthenticated) == 2 && s.svc.ConnectedDevices() == 1 })

	// A second device with the same UUID (the device re-dialling while its
	// old socket lingers): the newest connection wins.
	d2 := s.device(uuid, "16", "amt1234567890abc", "Cira!Pass-0001")
	waitFor(t, "the replacement", func() bool { return s.svc.ends.With(endReplaced).Value() >= 1 })
	if n := s.svc.ConnectedDevices(); n != 1 {
		t.Fatalf("%d links for one UUID", n)
	}
	d2.StopCIRA()
	waitFor(t, "the first device back", func() bool { return d.CIRAConnected() && s.svc.ConnectedDevices() == 1 })

	// Shutdown: links end, the store says so.
	if err := s.svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	dev, _ = s.st.Devices().Get(ctx, uuid.String())
	if dev.CIRA.Connected || dev.CIRA.LastDisconnected.IsZero() || s.svc.ConnectedDevices() != 0 {
		t.Fatalf("after Close: %+v, %d connected", dev.CIRA, s.svc.ConnectedDevices())
	}

	// The MPS password never reaches the log or the database file in clear.
	for _, f := range []string{s.log, s.opts.Path, s.opts.Path + "-wal"} {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), "Cira!Pass-0001") {
			t.Fatalf("MPS password in clear in %s", f)
		}
	}
}

// TestAMTSimRefused: a wrong password, an unknown UUID, garbage and a
// browser are refused and counted; none of them gets a link.
func TestAMTSimRefused(t *testing.T) {
	s := newSite(t, nil)
	known := newUUID(t, "4c4c4544-0042-3510-8052-b4c04f4e0001")
	s.addDevice(known, "amtuserknown0001", "Right!Pass-0001")
	bad := s.device(known, "16", "amtuserknown0001", "Wrong!Pass-0001")
	stranger := s.device(newUUID(t, "4c4c4544-0042-3510-8052-b4c04f4e0002"), "16", "amtuserknown0001", "Right!Pass-0001")
	waitFor(t, "the refusals", func() bool {
		return s.result(resultBadPassword) >= 1 && s.result(resultUnknownUUID) >= 1
	})
	bad.StopCIRA()
	stranger.StopCIRA()

	// The probes come from another source: the failed logins above may
	// have put 127.0.0.1 into backoff, which refuses before sniffing.
	probe := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	raw, err := probe.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = raw.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
	_ = raw.SetDeadline(time.Now().Add(20 * time.Second))
	if b, _ := io.ReadAll(raw); len(b) != 0 {
		t.Errorf("garbage answered with %q", b)
	}
	raw.Close()

	web, err := probe.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = web.Write([]byte("GET / HTTP/1.1\r\nHost: amtd\r\n\r\n"))
	_ = web.SetDeadline(time.Now().Add(20 * time.Second))
	line, _ := bufio.NewReader(web).ReadString('\n')
	web.Close()
	if line != "HTTP/1.1 200 OK\r\n" {
		t.Errorf("HTTP probe answered %q", line)
	}
	waitFor(t, "the probes counted", func() bool { return s.result(resultGarbage) == 1 && s.result(resultHTTP) == 1 })
	if s.svc.ConnectedDevices() != 0 || s.result(resultAuthenticated) != 0 || bad.CIRAConnected() || stranger.CIRAConnected() {
		t.Fatal("a refused device got a link")
	}
}

// TestAMTSimLegacyTLS: AMT 11 speaks only TLS 1.0/1.1; it connects only
// with LegacyTLS=yes.
func TestAMTSimLegacyTLS(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		s := newSite(t, func(c *config.Config) { c.CIRA.LegacyTLS = legacy })
		uuid := newUUID(t, "4c4c4544-0042-3510-8052-b4c04f4e0011")
		s.addDevice(uuid, "amtuserlegacy011", "Old!Pass-00011")
		d := s.device(uuid, "11", "amtuserlegacy011", "Old!Pass-00011")
		if legacy {
			waitFor(t, "the AMT 11 link", func() bool { return d.CIRAConnected() && s.svc.ConnectedDevices() == 1 })
		} else {
			waitFor(t, "the refused handshake", func() bool { return s.result(resultTLSError) >= 1 })
			if d.CIRAConnected() {
				t.Fatal("AMT 11 connected without LegacyTLS")
			}
		}
		d.StopCIRA()
	}
}

// TestReloadKeepsLinks: a reload changes keep-alive settings and moves the
// listener without dropping the device's link; a bad configuration changes
// nothing.
func TestReloadKeepsLinks(t *testing.T) {
	s := newSite(t, nil)
	uuid := newUUID(t, "4c4c4544-0042-3510-8052-b4c04f4e0021")
	s.addDevice(uuid, "amtuserreload021", "Reload!Pass-021")
	d := s.device(uuid, "16", "amtuserreload021", "Reload!Pass-021")
	waitFor(t, "the link", func() bool { return d.CIRAConnected() && s.svc.ConnectedDevices() == 1 })
	link := s.svc.reg.get(uuid.String())

	bad := testConfig()
	bad.CIRA.KeepAlive, bad.CIRA.IdleTimeout = 10*time.Second, 10*time.Second
	if err := s.svc.Reload(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "IdleTimeout") {
		t.Fatalf("reload with IdleTimeout < 2×KeepAlive: %v", err)
	}
	if s.svc.settings.Load().idle != 3*time.Second {
		t.Fatal("a refused reload changed the settings")
	}

	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	newAddr := free.Addr().String()
	free.Close()
	cfg := testConfig()
	cfg.CIRA.Listen, cfg.CIRA.KeepAlive, cfg.CIRA.IdleTimeout = newAddr, 2*time.Second, 6*time.Second
	if err := s.svc.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	web, err := net.DialTimeout("tcp", newAddr, 10*time.Second)
	if err != nil {
		t.Fatalf("new listener: %v", err)
	}
	_, _ = web.Write([]byte("HEAD / HTTP/1.0\r\n\r\n"))
	_ = web.SetDeadline(time.Now().Add(20 * time.Second))
	line, _ := bufio.NewReader(web).ReadString('\n')
	web.Close()
	if line != "HTTP/1.1 200 OK\r\n" {
		t.Fatalf("new listener answered %q", line)
	}
	if c, err := net.DialTimeout("tcp", s.addr, 10*time.Second); err == nil {
		c.Close()
		t.Fatal("the old listener still accepts")
	}
	// Keep-alives keep flowing on the old link under the new idle limit.
	before := s.svc.keepalives.Value()
	waitFor(t, "keep-alives after the reload", func() bool { return s.svc.keepalives.Value() >= before+3 })
	if s.svc.reg.get(uuid.String()) != link || s.result(resultAuthenticated) != 1 {
		t.Fatal("the reload dropped the link")
	}
}

// TestReloadRenames: a new [Site] Hostname= takes effect at the next
// handshake, with a certificate from the same root.
func TestReloadRenames(t *testing.T) {
	s := newSite(t, nil)
	cfg := testConfig()
	cfg.Site.Hostname = "cira.corp.example.com"
	if err := s.svc.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(s.ca.Root())
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", s.addr,
		&tls.Config{RootCAs: pool, ServerName: "cira.corp.example.com"})
	if err != nil {
		t.Fatalf("handshake for the new name: %v", err)
	}
	c.Close()
}
