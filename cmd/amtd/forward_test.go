package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"amtd/amt/digest"
	"amtd/amt/guid"
	"amtd/amt/redir"
	"amtd/amt/wsman"
	"amtd/amtsim"
	"amtd/daemon/config"
	"amtd/daemon/control"
	"amtd/pki"
	"amtd/secret"
	"amtd/store"
)

// ciraSite is the real daemon (daemon.Run with the default service table)
// serving CIRA and its control socket on loopback, with a real store.
type ciraSite struct {
	t        testing.TB
	dir      string
	sock     string
	st       *store.Store
	opts     store.Options
	ca       *pki.CA
	ciraAddr string
}

const siteConf = `[Site]
Domain=corp.example.com
Hostname=amtd.corp.example.com
Address=127.0.0.1

[Control]
Socket=%s

[CIRA]
Enable=yes
Listen=127.0.0.1:0
`

func startCIRASite(t testing.TB) *ciraSite {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	s := &ciraSite{t: t, dir: dir, sock: filepath.Join(dir, "control.sock"),
		opts: store.Options{Path: filepath.Join(dir, "amtd.db"), KeyFile: filepath.Join(dir, "master.key")}}
	if err := store.GenerateKeyFile(s.opts.KeyFile); err != nil {
		t.Fatal(err)
	}
	st, err := store.Init(ctx, s.opts)
	if err != nil {
		t.Fatal(err)
	}
	s.st = st
	t.Cleanup(func() { st.Close() })
	if s.ca, err = pki.Init(ctx, st, time.Now(), "amtd.corp.example.com", "test"); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("amtd.conf", strings.NewReader(fmt.Sprintf(siteConf, s.sock)))
	if err != nil {
		t.Fatal(err)
	}
	lns := runTestDaemon(t, dir, st, cfg, nil, nil)
	s.ciraAddr = listenerAddr(t, lns, "cira")
	return s
}

const simAdminPass = "P@ssw0rd1"

// device registers uuid in the store with MPS credentials, as provisioning
// leaves it, and starts an amtsim AMT 16.0 configured for CIRA to the site.
// With connect false it only registers it.
func (s *ciraSite) device(uuid string, connect bool) *amtsim.Device {
	t := s.t
	t.Helper()
	ctx := context.Background()
	user, pass := "amtforward000001", "Fwd!Pass-0001"
	if err := s.st.Devices().Put(ctx, store.Device{UUID: uuid, CIRA: store.CIRAState{MPSUsername: user}}); err != nil {
		t.Fatal(err)
	}
	if err := s.st.Secrets().SetPending(ctx, uuid, store.MPS, secret.FromString(pass), "test"); err != nil {
		t.Fatal(err)
	}
	if err := s.st.Secrets().Promote(ctx, uuid, store.MPS); err != nil {
		t.Fatal(err)
	}
	if !connect {
		return nil
	}
	u, err := guid.Parse(uuid)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := amtsim.ParseVersion("16")
	d, err := amtsim.New(amtsim.Config{UUID: u, Version: v, Net: amtsim.NetIdentity{Suffix: "corp.example.com"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ha1 := md5.Sum([]byte("admin:" + d.Realm() + ":" + simAdminPass))
	if code := d.Setup(2, hex.EncodeToString(ha1[:])); code != 0 {
		t.Fatalf("Setup: %d", code)
	}
	if _, code := d.AddTrustedRootCertificate(base64.StdEncoding.EncodeToString(s.ca.RootDER())); code != 0 {
		t.Fatalf("AddTrustedRootCertificate: %d", code)
	}
	sap, code := d.AddMpServer(amtsim.MPServer{AccessInfo: "amtd.corp.example.com", InfoFormat: 201, Port: 4433, AuthMethod: 2,
		Username: user, Password: pass, CN: "amtd.corp.example.com"})
	if code != 0 {
		t.Fatalf("AddMpServer: %d", code)
	}
	if _, code := d.AddRemoteAccessPolicyRule(2, 0, "AAAAAAAAABk=", sap); code != 0 {
		t.Fatalf("AddRemoteAccessPolicyRule: %d", code)
	}
	d.EnableCIRA(amtsim.CIRAOptions{DialAddr: s.ciraAddr, BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	t.Cleanup(d.StopCIRA)
	// Connected, and every port forwarded (5900 is the last AMT sends).
	deadline := time.Now().Add(30 * time.Second)
	for {
		dev, err := s.st.Devices().Get(ctx, uuid)
		if err == nil && dev.CIRA.Connected && len(dev.CIRA.BoundPorts) == len(v.CIRAPorts()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("device %s did not connect over CIRA in 30 s: %+v %v", uuid, dev.CIRA, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return d
}

// syncBuffer is a bytes.Buffer safe for the forwarder's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// forwarding runs `amtd forward` in-process until the test ends (as Ctrl-C
// would end it) and returns the address it listens on.
func forwarding(t testing.TB, s *ciraSite, args ...string) (addr string, out *syncBuffer, stop func() int) {
	t.Helper()
	out = &syncBuffer{}
	errb := &syncBuffer{}
	c := &cli{stdin: strings.NewReader(""), stdout: out, stderr: errb, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan int, 1)
	go func() {
		done <- runForward(ctx, c, append(args, "--socket", s.sock), func(a string) { ready <- a })
	}()
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() { cancel(); code = <-done })
		return code
	}
	t.Cleanup(func() { stop() })
	select {
	case addr = <-ready:
	case code := <-done:
		t.Fatalf("amtd forward exited %d: %s%s", code, out, errb)
	case <-time.After(30 * time.Second):
		t.Fatal("amtd forward not listening in 30 s")
	}
	return addr, out, stop
}

// TestForwardWSManAndRedirection: `amtd forward` against the real daemon
// with an amtsim device connected over a real CIRA link. A WS-Man client
// with digest, speaking TLS to the device's own certificate, gets through
// the forwarded 16993; redirection on 16994 carries SOL data there and
// back, 1 MiB in random chunks, and a 4 MiB KVM stream arrives with the
// checksum of what the device sent. Ctrl-C (the context) stops cleanly,
// with the connections printed.
func TestForwardWSManAndRedirection(t *testing.T) {
	s := startCIRASite(t)
	const uuid = "4c4c4544-0042-3510-8052-b4c04f4e0601"
	d := s.device(uuid, true)

	addr, out, stop := forwarding(t, s, uuid, "--port", "16993")
	if !strings.Contains(out.String(), "forwarding "+addr+" to device "+uuid+" port 16993") {
		t.Fatalf("amtd forward printed %q", out)
	}
	cert, err := d.TLSConfig().GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(ctx context.Context) (net.Conn, error) {
		var nd net.Dialer
		c, err := nd.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, VerifyConnection: func(cs tls.ConnectionState) error {
			// The device's own certificate: amtd is not in the TLS session.
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, cert.Certificate[0]) {
				return errors.New("not the device's certificate")
			}
			return nil
		}})
		return tc, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wc := wsman.NewClient(dial, wsman.Credentials{Host: uuid + ":16993", Username: "admin", Password: secret.FromString(simAdminPass)})
	var gs wsman.Instance
	if err := wc.Get(ctx, "AMT_GeneralSettings", &gs); err != nil {
		t.Fatalf("WS-Man through the forwarded port: %v", err)
	}
	if got := gs.Value("DigestRealm"); got != d.Realm() {
		t.Fatalf("AMT_GeneralSettings DigestRealm %q, want the device's %q", got, d.Realm())
	}
	items, err := wc.Enumerate(ctx, "CIM_SoftwareIdentity")
	if err != nil || len(items) != 11 {
		t.Fatalf("Enumerate through the forwarded port: %d items, %v", len(items), err)
	}
	bad := wsman.NewClient(dial, wsman.Credentials{Host: uuid + ":16993", Username: "admin", Password: secret.FromString("wrong")})
	if err := bad.Get(ctx, "AMT_GeneralSettings", &gs); !errors.Is(err, wsman.ErrWrongPassword) {
		t.Fatalf("a wrong password through the forward: %v, want the device's refusal", err)
	}

	// Each forwarded connection is in the audit trail, with who asked.
	rows, err := s.st.AuditList(ctx, store.AuditQuery{Object: "device/" + uuid + "/port/16993"})
	if err != nil || len(rows) < 3 || rows[0].Action != "cira.forward" || rows[0].Actor != fmt.Sprintf("control:uid:%d", os.Geteuid()) || rows[0].Result != "ok" {
		t.Fatalf("audit of the forwarded connections: %v %+v", err, rows)
	}
	enableRedirection(t, wc)
	raddr, rout, rstop := forwarding(t, s, uuid, "--port", "16994")
	solEcho(t, d, raddr, 1<<20)
	kvmStream(t, d, raddr, 4<<20)

	for _, f := range []struct {
		stop func() int
		out  *syncBuffer
	}{{stop, out}, {rstop, rout}} {
		if code := f.stop(); code != exitOK {
			t.Fatalf("amtd forward after Ctrl-C: exit %d\n%s", code, f.out)
		}
		text := f.out.String()
		if !strings.Contains(text, "connection from 127.0.0.1:") || !strings.Contains(text, "bytes to the device") || !strings.HasSuffix(text, "stopped\n") {
			t.Fatalf("amtd forward printed:\n%s", text)
		}
	}
	t.Logf("16994 forward printed:\n%s", rout)
	// Stopped means stopped: nothing listens any more.
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		c.Close()
		t.Fatal("the forwarded port still accepts after Ctrl-C")
	}
}

// enableRedirection turns SOL, IDER and KVM on as a console does
// (AMT_RedirectionService and the KVM SAP), through wc.
func enableRedirection(t testing.TB, wc *wsman.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := wc.RequestStateChange(ctx, "AMT_RedirectionService", 32771); err != nil {
		t.Fatal(err)
	}
	if err := wc.RequestStateChange(ctx, "CIM_KVMRedirectionSAP", 2); err != nil {
		t.Fatal(err)
	}
	var rs wsman.Instance
	if err := wc.Get(ctx, "AMT_RedirectionService", &rs); err != nil {
		t.Fatal(err)
	}
	rs.Set("ListenerEnabled", "true")
	if _, err := wc.Put(ctx, "AMT_RedirectionService", rs); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkForwardKVM: 8 MiB of a device's KVM stream through the whole
// path a viewer's bytes take with amtd forward: the CIRA channel over the
// APF link (TLS, 80 KiB channel windows), the daemon's control stream, the CLI, and
// local TCP; each round logs in afresh.
func BenchmarkForwardKVM(b *testing.B) {
	s := startCIRASite(b)
	const uuid = "4c4c4544-0042-3510-8052-b4c04f4e0610"
	d := s.device(uuid, true)
	waddr, _, _ := forwarding(b, s, uuid, "--port", "16992")
	enableRedirection(b, wsman.NewClient(func(ctx context.Context) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, "tcp", waddr)
	}, wsman.Credentials{Host: uuid + ":16992", Username: "admin", Password: secret.FromString(simAdminPass)}))
	raddr, _, _ := forwarding(b, s, uuid, "--port", "16994")
	const size = 8 << 20
	b.SetBytes(size)
	for b.Loop() {
		c, err := net.DialTimeout("tcp", raddr, 10*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(120 * time.Second))
		br := redirLogin(b, d, c, redir.SessionKVM)
		m, _ := redir.Marshal(redir.KVMStart{})
		c.Write(m)
		if m := readRedirMsg(b, br); m.Command() != redir.CmdKVMStartReply {
			b.Fatalf("got %s, want the KVM start reply", m)
		}
		if n, err := io.CopyN(io.Discard, br, size); err != nil {
			b.Fatalf("after %d bytes: %v", n, err)
		}
		c.Close()
	}
}

// redirLogin starts a redirection session of kind and logs in with digest
// as a console does (spec/redirection.md §2–§3).
func redirLogin(t testing.TB, d *amtsim.Device, c net.Conn, kind redir.SessionType) *bufio.Reader {
	t.Helper()
	br := bufio.NewReader(c)
	write := func(m redir.Message) {
		b, err := redir.Marshal(m)
		if err == nil {
			_, err = c.Write(b)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	write(redir.StartSession{Type: kind})
	if r, ok := readRedirMsg(t, br).(redir.StartSessionReply); !ok || r.Status != redir.StartSuccess {
		t.Fatalf("start %s refused", kind)
	}
	m, _ := redir.ChallengeRequest("admin").Message()
	write(m)
	rep, ok := readRedirMsg(t, br).(redir.AuthenticateSessionReply)
	if !ok || rep.Status != redir.AuthFailure {
		t.Fatal("no digest challenge")
	}
	ch, err := redir.ParseDigestChallenge(rep.Data)
	if err != nil || ch.Realm != d.Realm() {
		t.Fatalf("challenge %+v %v", ch, err)
	}
	h := md5.Sum([]byte("admin:" + ch.Realm + ":" + simAdminPass))
	nc, cnonce := "00000001", "0a4f113b"
	resp := digest.Response(hex.EncodeToString(h[:]), ch.Nonce, nc, cnonce, "auth", "POST", redir.DigestURI)
	m, err = redir.DigestFields{User: "admin", Realm: ch.Realm, Nonce: ch.Nonce, URI: redir.DigestURI, CNonce: cnonce, NC: nc,
		Response: secret.FromString(resp), QOP: "auth"}.Message()
	if err != nil {
		t.Fatal(err)
	}
	write(m)
	if rep, ok := readRedirMsg(t, br).(redir.AuthenticateSessionReply); !ok || rep.Status != redir.AuthSuccess {
		t.Fatal("redirection digest login refused")
	}
	return br
}

func readRedirMsg(t testing.TB, br *bufio.Reader) redir.Message {
	t.Helper()
	for need := 4; need < 4096; need++ {
		buf, err := br.Peek(need)
		if err != nil {
			t.Fatalf("reading a redirection message: %v", err)
		}
		m, n, err := redir.Parse(buf)
		if err == nil {
			br.Discard(n)
			return m
		}
		if !errors.Is(err, redir.ErrShort) {
			t.Fatal(err)
		}
	}
	t.Fatal("redirection message too long")
	return nil
}

// solEcho sends total bytes of random console data in random-sized SOL
// messages through the forwarded port while reading the device's echoes,
// and compares checksums.
func solEcho(t testing.TB, d *amtsim.Device, addr string, total int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(120 * time.Second))
	br := redirLogin(t, d, c, redir.SessionSOL)
	b, _ := redir.Marshal(redir.SOLSettings{MaxTxBuffer: 4096})
	c.Write(b)
	if m := readRedirMsg(t, br); m.Command() != redir.CmdSOLSettingsReply {
		t.Fatalf("got %s, want the SOL settings reply", m)
	}
	data := make([]byte, total)
	rand.Read(data)
	sent := sha256.Sum256(data)
	werr := make(chan error, 1)
	go func() {
		var seq uint32
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 1+int(rest[0])*16) // 1-4081 bytes
			seq++
			msg := make([]byte, 10, 10+n)
			msg[0] = 0x28
			binary.LittleEndian.PutUint32(msg[4:], seq)
			binary.LittleEndian.PutUint16(msg[8:], uint16(n))
			if _, err := c.Write(append(msg, rest[:n]...)); err != nil {
				werr <- err
				return
			}
			rest = rest[n:]
		}
		werr <- nil
	}()
	h := sha256.New()
	for got := 0; got < total; {
		m, ok := readRedirMsg(t, br).(redir.SOLDataFromAMT)
		if !ok {
			t.Fatalf("after %d bytes: got %T, want SOL data", got, m)
		}
		h.Write(m.Data)
		got += len(m.Data)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.Sum(nil), sent[:]) {
		t.Fatalf("SOL echo of %d bytes came back with another checksum", total)
	}
}

// kvmStream reads total bytes of the device's KVM stream through the
// forwarded port and checks them against amtsim.KVMPattern.
func kvmStream(t testing.TB, d *amtsim.Device, addr string, total int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(120 * time.Second))
	br := redirLogin(t, d, c, redir.SessionKVM)
	b, _ := redir.Marshal(redir.KVMStart{})
	c.Write(b)
	if m := readRedirMsg(t, br); m.Command() != redir.CmdKVMStartReply {
		t.Fatalf("got %s, want the KVM start reply", m)
	}
	start := time.Now()
	got, want := sha256.New(), sha256.New()
	n, err := io.CopyN(got, br, int64(total))
	if err != nil {
		t.Fatalf("KVM stream after %d bytes: %v", n, err)
	}
	pattern := make([]byte, total)
	amtsim.KVMPattern(pattern, 0)
	want.Write(pattern)
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatalf("KVM stream of %d bytes differs from what the device sent", total)
	}
	t.Logf("KVM: %d bytes through amtd forward in %s", total, time.Since(start).Round(time.Millisecond))
}

// TestForwardErrors: each refusal is one sentence on stderr, exit 1, and
// nothing listens: an unknown device, a known one that is not connected, a
// port the device does not forward; a missing daemon says how to start it;
// bad arguments are usage errors.
func TestForwardErrors(t *testing.T) {
	s := startCIRASite(t)
	const known, absent, unknown = "4c4c4544-0042-3510-8052-b4c04f4e0602", "4c4c4544-0042-3510-8052-b4c04f4e0603", "4c4c4544-0042-3510-8052-b4c04f4e0604"
	s.device(known, true)
	s.device(absent, false)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{unknown, "--socket", s.sock}, exitFailure,
			"amtd forward: device " + unknown + " is not known to amtd (amtd devices list shows the devices it knows)\n"},
		{[]string{strings.ToUpper(absent), "--socket", s.sock}, exitFailure,
			"amtd forward: device " + absent + " is not connected over CIRA to this amtd; it connects by itself when its CIRA policy fires (amtd devices show " + absent + " says when it was last seen)\n"},
		{[]string{known, "--port", "16990", "--socket", s.sock}, exitFailure,
			"amtd forward: device " + known + " does not forward port 16990 on its CIRA link (it forwards 623, 664, 5900, 16992, 16993, 16994, 16995)\n"},
		{[]string{known, "--socket", filepath.Join(s.dir, "nothing.sock")}, exitFailure, "no daemon answers on"},
		{[]string{known, "--listen", "256.0.0.1:0", "--socket", s.sock}, exitFailure, "amtd forward: listen on 256.0.0.1:0:"},
		{[]string{"not-a-uuid", "--socket", s.sock}, exitUsage, "device uuid"},
		{[]string{known, "--port", "70000"}, exitUsage, "want 1-65535"},
		{[]string{}, exitUsage, "want 1 argument"},
	} {
		code, out, errs := runCLI(t, append([]string{"forward"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errs, tc.want) || strings.Contains(out, "forwarding") {
			t.Errorf("forward %v: exit %d\nstdout %q\nstderr %q\nwant exit %d and %q", tc.args, code, out, errs, tc.code, tc.want)
		}
	}
}

// TestForwardWithoutCIRA: a daemon that does not run the CIRA relay has no
// "forward" command; the CLI says what to turn on.
func TestForwardWithoutCIRA(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "control.sock")
	ln, err := control.Listen(sock, -1)
	if err != nil {
		t.Fatal(err)
	}
	mux := control.NewMux()
	mux.Handle("status", func(context.Context, json.RawMessage) (any, error) { return control.StatusReport{}, nil })
	srv := control.NewServer(slog.New(slog.DiscardHandler), mux)
	go srv.Serve(ln)
	defer srv.Close(context.Background())
	code, out, errs := runCLI(t, "forward", "4c4c4544-0042-3510-8052-b4c04f4e0605", "--socket", sock)
	if code != exitFailure || out != "" || errs != "amtd forward: the daemon on "+sock+" does not run the CIRA relay; turn it on with [CIRA] Enable=yes in amtd.conf and reload\n" {
		t.Fatalf("forward to a daemon without CIRA: exit %d\n%q\n%q", code, out, errs)
	}
}
