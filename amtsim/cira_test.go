package amtsim

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"amtd/amt/digest"
	"amtd/amt/redir"
	"amtd/amt/wsman"
	"amtd/secret"
)

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ciraDevice is a CCM device configured for CIRA to s, as amtd's
// configuration step leaves it (spec/activation.md §9 step 4).
func ciraDevice(t testing.TB, s *testMPS, name, pass string, v Version, opt CIRAOptions) *Device {
	t.Helper()
	d, err := New(Config{Version: v, Net: NetIdentity{Suffix: "corp.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	d.Setup(2, ha1("admin", d.Realm(), "P@ssw0rd1"))
	if _, code := d.AddTrustedRootCertificate(b64(s.root.Raw)); code != 0 {
		t.Fatal(code)
	}
	sap, code := d.AddMpServer(MPServer{AccessInfo: name, InfoFormat: 201, Port: 4433, AuthMethod: 2, Username: s.user, Password: pass, CN: name})
	if code != 0 {
		t.Fatal(code)
	}
	if _, code := d.AddRemoteAccessPolicyRule(2, 0, "AAAAAAAAABk=", sap); code != 0 {
		t.Fatal(code)
	}
	d.mu.Lock()
	d.s.Detection = []string{"inside.example"}
	d.s.RedirectionState, d.s.RedirListener, d.s.KVMState = 32771, true, 2
	d.mu.Unlock()
	opt.DialAddr = s.ln.Addr().String()
	d.EnableCIRA(opt)
	t.Cleanup(d.StopCIRA)
	return d
}

func TestCIRATunnel(t *testing.T) {
	s := newTestMPS(t, "mps.test", "cirauser", "C1ra!pass", 1)
	d := ciraDevice(t, s, "mps.test", s.pass, defaultBuilds[16], CIRAOptions{BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	waitFor(t, "CIRA auth", func() bool { return s.authed.Load() == 1 && d.CIRAConnected() })
	s.mu.Lock()
	ports := s.devices[d.UUID.String()].ports
	s.mu.Unlock()
	if want := d.Version.CIRAPorts(); len(ports) != len(want) || ports[0] != 16993 || ports[len(ports)-1] != 5900 {
		t.Fatalf("forwarded %v, want %v", ports, want)
	}
	// The server asked for 1 s keep-alives.
	waitFor(t, "a keep-alive", func() bool { return s.kaSeen.Load() >= 1 })

	ctx := ctxT(t)
	c := wsman.NewClient(func(context.Context) (net.Conn, error) { return s.dial(d.UUID.String(), 16992) },
		wsman.Credentials{Host: d.UUID.String() + ":16992", Username: "admin", Password: secret.FromString("P@ssw0rd1")})
	var ras wsman.Instance
	if err := c.Get(ctx, "AMT_RemoteAccessService", &ras); err != nil {
		t.Fatal(err)
	}
	if ras.Value("IsRemoteTunnelConnected") != "true" {
		t.Fatal("IsRemoteTunnelConnected is not true over the tunnel")
	}
	// Large responses cross the channel window in several adjusts.
	items, err := c.Enumerate(ctx, "CIM_SoftwareIdentity")
	if err != nil || len(items) != 11 {
		t.Fatalf("Enumerate over CIRA: %d items, %v", len(items), err)
	}

	// Redirection: SOL echo and the KVM pattern.
	sol, err := s.dial(d.UUID.String(), 16994)
	if err != nil {
		t.Fatal(err)
	}
	br := redirLogin(t, d, sol, redir.SessionSOL)
	mustWrite(t, sol, redir.SOLSettings{MaxTxBuffer: 1000})
	if m := mustRead(t, br); m.Command() != redir.CmdSOLSettingsReply {
		t.Fatalf("got %s, want SOL settings reply", m)
	}
	payload := []byte("hello from the console")
	msg := append([]byte{0x28, 0, 0, 0, 1, 0, 0, 0, byte(len(payload)), 0}, payload...)
	if _, err := sol.Write(msg); err != nil {
		t.Fatal(err)
	}
	echo, ok := mustRead(t, br).(redir.SOLDataFromAMT)
	if !ok || !bytes.Equal(echo.Data, payload) {
		t.Fatalf("SOL echo %v", echo)
	}
	sol.Close()

	kvm, err := s.dial(d.UUID.String(), 16994)
	if err != nil {
		t.Fatal(err)
	}
	br = redirLogin(t, d, kvm, redir.SessionKVM)
	mustWrite(t, kvm, redir.KVMStart{})
	if m := mustRead(t, br); m.Command() != redir.CmdKVMStartReply {
		t.Fatalf("got %s", m)
	}
	got := make([]byte, 100_000) // several windows' worth
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, len(got))
	KVMPattern(want, 0)
	if !bytes.Equal(got, want) {
		t.Fatal("KVM stream differs from KVMPattern")
	}
	kvm.Close()

	// A reboot drops the tunnel; the device reconnects by itself with its
	// settings.
	before := s.authed.Load()
	if err := d.Reboot(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reconnect after reboot", func() bool { return s.authed.Load() > before && d.CIRAConnected() })
}

func TestCIRARefusesWrongMPSName(t *testing.T) {
	s := newTestMPS(t, "mps.test", "cirauser", "C1ra!pass", 30)
	d := ciraDevice(t, s, "evil.test", s.pass, defaultBuilds[19], CIRAOptions{BackoffMin: time.Hour})
	time.Sleep(300 * time.Millisecond)
	if s.authed.Load() != 0 || d.CIRAConnected() {
		t.Fatal("the device authenticated to an MPS whose certificate does not name AccessInfo")
	}
}

func TestCIRAWrongPasswordBacksOff(t *testing.T) {
	s := newTestMPS(t, "mps.test", "cirauser", "C1ra!pass", 30)
	ciraDevice(t, s, "mps.test", "Wr0ng!pass", defaultBuilds[19], CIRAOptions{BackoffMin: 20 * time.Millisecond, BackoffMax: 80 * time.Millisecond})
	waitFor(t, "several refused attempts", func() bool { return s.failures.Load() >= 3 })
}

func mustWrite(t *testing.T, w io.Writer, m redir.Message) {
	t.Helper()
	b, err := redir.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, br *bufio.Reader) redir.Message {
	t.Helper()
	m, err := readRedir(br)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// redirLogin runs StartRedirectionSession and digest authentication as a
// console does (spec/redirection.md §2–§3).
func redirLogin(t *testing.T, d *Device, c net.Conn, kind redir.SessionType) *bufio.Reader {
	t.Helper()
	br := bufio.NewReader(c)
	mustWrite(t, c, redir.StartSession{Type: kind})
	if r, ok := mustRead(t, br).(redir.StartSessionReply); !ok || r.Status != redir.StartSuccess {
		t.Fatalf("start %s refused", kind)
	}
	m, _ := redir.ChallengeRequest("admin").Message()
	mustWrite(t, c, m)
	rep, ok := mustRead(t, br).(redir.AuthenticateSessionReply)
	if !ok || rep.Status != redir.AuthFailure {
		t.Fatal("no digest challenge")
	}
	ch, err := redir.ParseDigestChallenge(rep.Data)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Realm != d.Realm() {
		t.Fatalf("redirection realm %q, want the device's", ch.Realm)
	}
	nc, cnonce := "00000001", "0a4f113b"
	resp := digest.Response(ha1("admin", ch.Realm, "P@ssw0rd1"), ch.Nonce, nc, cnonce, "auth", "POST", redir.DigestURI)
	f := redir.DigestFields{User: "admin", Realm: ch.Realm, Nonce: ch.Nonce, URI: redir.DigestURI, CNonce: cnonce, NC: nc,
		Response: secret.FromString(resp), QOP: "auth"}
	m, err = f.Message()
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, c, m)
	if rep, ok := mustRead(t, br).(redir.AuthenticateSessionReply); !ok || rep.Status != redir.AuthSuccess {
		t.Fatal("digest login refused")
	}
	return br
}
