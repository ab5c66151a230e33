package provision

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"amtd/amt/rps"
	"amtd/amtsim"
	"amtd/pki"
	"amtd/secret"
	"amtd/store"
)

func TestIntelODCARoot(t *testing.T) {
	c := intelODCA()
	sum := sha256.Sum256(c.Raw)
	if got := strings.ToUpper(hex.EncodeToString(sum[:])); got != "BEB40BB7507B33967226AA80E084749FBB6593893C642E818D682E9A8D07FC24" {
		t.Fatalf("ODCA root SHA-256 %s", got)
	}
	if c.Subject.CommonName != "www.intel.com" || c.CheckSignatureFrom(c) != nil {
		t.Fatalf("root %s", c.Subject)
	}
}

// tls19 is an AMT 19+ rig: amtd trusts odca as the On-Die CA root.
type tls19 struct {
	*agentRig
	odca *amtsim.ODCA
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTLS19Rig(t testing.TB) *tls19 {
	t.Helper()
	r := newAgentRig(t)
	odca, err := amtsim.NewODCA()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	r.srv.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r.srv.ODCARoots = []*x509.Certificate{odca.Root}
	r.srv.TLSRestartDelay = time.Millisecond
	return &tls19{agentRig: r, odca: odca, logs: logs}
}

func newDevice19(t testing.TB, cfg amtsim.Config) *amtsim.Device {
	t.Helper()
	v, err := amtsim.ParseVersion("19")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Version = v
	cfg.Net = amtsim.NetIdentity{Suffix: "corp.example.com"}
	d, err := amtsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !d.TLSEnforced() {
		t.Fatal("an AMT 19 device does not enforce TLS")
	}
	return d
}

// rpc19 runs rpc-go's TLS-tunnel relay for d (amtsim RunRPC). The relay
// waits 50 ms of silence instead of rpc-go's 2 s to end a TLS round.
func (r *tls19) rpc(t *testing.T, d *amtsim.Device, method string, odca *amtsim.ODCA, edit func(*rps.Payload)) *rps.Message {
	t.Helper()
	if odca == nil {
		odca = r.odca
	}
	m, err := d.RunRPC(context.Background(), amtsim.RPCOptions{URL: r.url, Command: method, TenantID: enrolToken, Insecure: true, Edit: edit,
		Timeout: 2 * time.Minute, ODCA: odca, TLSFirstByte: 20 * time.Second, TLSIdle: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAgentTLSTunnelCCM(t *testing.T) {
	r := newTLS19Rig(t)
	d := newDevice19(t, amtsim.Config{})
	m := r.rpc(t, d, "activate --profile site-ccm", nil, nil)
	if m.Method != rps.MethodSuccess || status(t, m) != "Client control mode." {
		t.Fatalf("got %s %q\n%s", m.Method, m.Message, r.logs)
	}
	if d.ControlMode() != amtsim.ModeCCM {
		t.Fatalf("device mode %d", d.ControlMode())
	}
	admin := r.storedAdminOpens(t, d, ModeCCM)
	logs := r.logs.String()
	for _, want := range []string{"chains to the On-Die CA root", "accepted and pinned for this session", "kind=self-signed"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q", want)
		}
	}
	if strings.Contains(logs, admin.RevealString()) {
		t.Fatal("the admin password is in the logs")
	}

	// Maintenance and deactivation through the tunnel, as admin.
	withAdmin := func(p *rps.Payload) { p.Password = rps.Password{Value: admin} }
	m = r.rpc(t, d, "maintenance -password "+admin.RevealString()+" --synctime", nil, withAdmin)
	if m.Method != rps.MethodSuccess || status(t, m) != "Time synchronized." {
		t.Fatalf("synctime: %s %q", m.Method, m.Message)
	}
	syncip := func(p *rps.Payload) { withAdmin(p); p.IPConfiguration.IPAddress = "10.9.8.7" }
	m = r.rpc(t, d, "maintenance -password "+admin.RevealString()+" --syncip", nil, syncip)
	if m.Method != rps.MethodSuccess || status(t, m) != "IP synchronized." {
		t.Fatalf("syncip: %s %q", m.Method, m.Message)
	}
	m = r.rpc(t, d, "deactivate --password "+admin.RevealString(), nil, withAdmin)
	if m.Method != rps.MethodSuccess || status(t, m) != "Deactivated" || d.ControlMode() != amtsim.ModePreProvisioning {
		t.Fatalf("deactivate: %s %q mode %d", m.Method, m.Message, d.ControlMode())
	}
}

func TestAgentTLSTunnelACM(t *testing.T) {
	r := newTLS19Rig(t)
	chain := newChain(t, "corp.example.com")
	r.srv.Chains = ChainList{{Suffix: "corp.example.com", Cert: chain.cert, Root: chain.root}}
	ctx := context.Background()
	if err := r.store.Profiles().Put(ctx, store.Profile{Name: "site-acm", Settings: json.RawMessage(`{"mode":"acm"}`)}, "test", ""); err != nil {
		t.Fatal(err)
	}
	hashes := func(p *rps.Payload) { p.CertHashes = []string{chain.rootHash().Hex} }
	d := newDevice19(t, amtsim.Config{ExtraRootHashes: []amtsim.RootHash{chain.rootHash()}})
	m := r.rpc(t, d, "activate --profile site-acm", nil, hashes)
	if m.Method != rps.MethodSuccess || status(t, m) != "Activated to admin control mode." {
		t.Fatalf("got %s %q\n%s", m.Method, m.Message, r.logs)
	}
	if d.ControlMode() != amtsim.ModeACM {
		t.Fatalf("device mode %d", d.ControlMode())
	}
	uuid := d.UUID.String()
	admin, err := r.store.Secrets().Current(ctx, uuid, store.AMTAdmin)
	if err != nil {
		t.Fatal(err)
	}
	mebx, err := r.store.Secrets().Current(ctx, uuid, store.MEBx)
	if err != nil || d.Snapshot().MEBxPassword != mebx.RevealString() {
		t.Fatalf("MEBx password not set to the stored one (%v)", err)
	}
	if rec, _ := r.store.Devices().Get(ctx, uuid); rec.ControlMode != ModeACM || rec.ProvisioningState != StateActivated {
		t.Fatalf("record %+v", rec)
	}

	withAdmin := func(pw secret.Value) func(*rps.Payload) {
		return func(p *rps.Payload) {
			p.Password, p.CertHashes = rps.Password{Value: pw}, []string{chain.rootHash().Hex}
		}
	}
	// An AMT 19+ device already in CCM is upgraded through the tunnel.
	d2 := newDevice19(t, amtsim.Config{ExtraRootHashes: []amtsim.RootHash{chain.rootHash()}})
	if m := r.rpc(t, d2, "activate --profile site-ccm", nil, nil); m.Method != rps.MethodSuccess {
		t.Fatalf("ccm: %q", m.Message)
	}
	admin2, _ := r.store.Secrets().Current(ctx, d2.UUID.String(), store.AMTAdmin)
	m = r.rpc(t, d2, "activate --profile site-acm", nil, withAdmin(admin2))
	if m.Method != rps.MethodSuccess || status(t, m) != "Upgraded to admin control mode." || d2.ControlMode() != amtsim.ModeACM {
		t.Fatalf("upgrade: %s %q mode %d", m.Method, m.Message, d2.ControlMode())
	}

	m = r.rpc(t, d, "maintenance -password "+admin.RevealString()+" --changepassword", nil, withAdmin(admin))
	if m.Method != rps.MethodSuccess || status(t, m) != "Password changed." {
		t.Fatalf("changepassword: %s %q", m.Method, m.Message)
	}
	newAdmin, _ := r.store.Secrets().Current(ctx, uuid, store.AMTAdmin)
	if newAdmin.Equal(admin) {
		t.Fatal("the stored admin password did not change")
	}
	if err := r.srv.Engine.verifyMode(ctx, localDial(d), uuid+":16992", newAdmin, ModeACM); err != nil {
		t.Fatalf("the new password does not open the device: %v", err)
	}
	m = r.rpc(t, d, "deactivate --password "+newAdmin.RevealString(), nil, withAdmin(newAdmin))
	if m.Method != rps.MethodSuccess || d.ControlMode() != amtsim.ModePreProvisioning {
		t.Fatalf("deactivate: %s %q mode %d", m.Method, m.Message, d.ControlMode())
	}
}

// If the upgrade fails, the device is not left in CCM (spec/activation.md
// §8 step 7); if the commit fails, not in a half-done CCM (§5 step 3).
func TestAgentTLSTunnelUndo(t *testing.T) {
	r := newTLS19Rig(t)
	chain := newChain(t, "corp.example.com")
	r.srv.Chains = ChainList{{Suffix: "corp.example.com", Cert: chain.cert, Root: chain.root}}
	if err := r.store.Profiles().Put(context.Background(), store.Profile{Name: "site-acm", Settings: json.RawMessage(`{"mode":"acm"}`)}, "test", ""); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		profile, method, want string
	}{
		{"site-acm", "UpgradeClientToAdmin", "returned to pre-provisioning"},
		{"site-ccm", "CommitChanges", "unprovisioned again"},
	} {
		t.Run(c.method, func(t *testing.T) {
			d := newDevice19(t, amtsim.Config{ExtraRootHashes: []amtsim.RootHash{chain.rootHash()}, Faults: &amtsim.Faults{FailMethod: c.method, FailCode: 1}})
			m := r.rpc(t, d, "activate --profile "+c.profile, nil, func(p *rps.Payload) { p.CertHashes = []string{chain.rootHash().Hex} })
			if m.Method != rps.MethodError || !strings.Contains(m.Message, c.want) {
				t.Fatalf("got %s %q", m.Method, m.Message)
			}
			if d.ControlMode() != amtsim.ModePreProvisioning {
				t.Fatalf("device left in mode %d", d.ControlMode())
			}
		})
	}
}

// A device whose pre-provisioning chain does not lead to the trusted ODCA
// root is refused before anything is sent to it; with trust=log it is
// accepted and what it presented is logged.
func TestAgentTLSTunnelTrust(t *testing.T) {
	r := newTLS19Rig(t)
	other, err := amtsim.NewODCA()
	if err != nil {
		t.Fatal(err)
	}
	d := newDevice19(t, amtsim.Config{})
	m := r.rpc(t, d, "activate --profile site-ccm", other, nil)
	if m.Method != rps.MethodError || !strings.Contains(m.Message, "does not chain to Intel's On-Die CA root") {
		t.Fatalf("got %s %q", m.Method, m.Message)
	}
	if d.ControlMode() != amtsim.ModePreProvisioning {
		t.Fatal("device changed")
	}
	if rec, err := r.store.Devices().Get(context.Background(), d.UUID.String()); err == nil && rec.ControlMode != 0 {
		t.Fatalf("record %+v", rec)
	}

	r.srv.TunnelTrust = TrustLog
	m = r.rpc(t, d, "activate --profile site-ccm", other, nil)
	if m.Method != rps.MethodSuccess || d.ControlMode() != amtsim.ModeCCM {
		t.Fatalf("trust=log: %s %q", m.Method, m.Message)
	}
	if !strings.Contains(r.logs.String(), "does not chain to a trusted root; accepted (trust=log)") {
		t.Fatal("what the device presented is not logged")
	}
	events := r.reg.CounterVec("amtd_agent_tls_tunnel_events_total", "", "event")
	if events.With("cert-refused").Value() != 1 || events.With("cert-logged").Value() == 0 || events.With("cert-odca").Value() != 0 {
		t.Fatalf("events: refused %v logged %v odca %v", events.With("cert-refused").Value(), events.With("cert-logged").Value(), events.With("cert-odca").Value())
	}
}

func TestParseTunnelTrust(t *testing.T) {
	for in, want := range map[string]TunnelTrust{"": TrustODCA, "ODCA": TrustODCA, " log ": TrustLog} {
		if got, err := ParseTunnelTrust(in); err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	if _, err := ParseTunnelTrust("none"); err == nil {
		t.Error("accepted none")
	}
}

// A profile with TLS on an AMT 19+ device: amtd configures the device's
// certificate through the tunnel, tells the agent AMT's TLS restarts
// (port_switch, acknowledged), and later sessions accept the certificate
// because it chains to the appliance CA.
func TestAgentTLSTunnelConfiguresTLS(t *testing.T) {
	r := newTLS19Rig(t)
	ca, err := pki.New(time.Now(), "test site")
	if err != nil {
		t.Fatal(err)
	}
	r.srv.Engine.DeviceCA = ca
	ctx := context.Background()
	if err := r.store.Profiles().Put(ctx, store.Profile{Name: "site-ccm-tls", Settings: json.RawMessage(`{"mode":"ccm","tls":true}`)}, "test", ""); err != nil {
		t.Fatal(err)
	}
	d := newDevice19(t, amtsim.Config{})
	m := r.rpc(t, d, "activate --profile site-ccm-tls", nil, nil)
	if m.Method != rps.MethodSuccess {
		t.Fatalf("got %s %q\n%s", m.Method, m.Message, r.logs)
	}
	var res rps.Result
	if err := json.Unmarshal([]byte(m.Message), &res); err != nil || res.TLSConfiguration != "Configured" {
		t.Fatalf("result %+v %v", res, err)
	}
	if s := d.Snapshot(); !s.ActiveTLS.Enabled {
		t.Fatalf("active TLS %+v", s.ActiveTLS)
	}
	admin, _ := r.store.Secrets().Current(ctx, d.UUID.String(), store.AMTAdmin)
	m = r.rpc(t, d, "maintenance -password "+admin.RevealString()+" --synctime", nil, func(p *rps.Payload) { p.Password = rps.Password{Value: admin} })
	if m.Method != rps.MethodSuccess {
		t.Fatalf("synctime: %s %q", m.Method, m.Message)
	}
	if !strings.Contains(r.logs.String(), "the one amtd configured (appliance device CA)") {
		t.Fatalf("the configured certificate was not recognised:\n%s", r.logs)
	}
}

// connection_reset: during a handshake amtd starts a new one (rpc-go
// reopens LMS on the ClientHello); after the request went out it fails the
// call, saying AMT may have acted on it (spec/rpc-protocol.md §6, §7).
func TestAgentTLSTunnelConnectionReset(t *testing.T) {
	r := newTLS19Rig(t)
	run := func(d *amtsim.Device, failures ...int) *rps.Message {
		m, err := d.RunRPC(context.Background(), amtsim.RPCOptions{URL: r.url, Command: "activate --profile site-ccm", TenantID: enrolToken, Insecure: true,
			Timeout: 2 * time.Minute, ODCA: r.odca, TLSFirstByte: 20 * time.Second, TLSIdle: 50 * time.Millisecond, LMSFailures: failures})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	// Message 1 is the first ClientHello; after its reset, 2 is the new
	// ClientHello and 3 the client's Finished: both resets fall in the
	// first request's handshakes.
	d := newDevice19(t, amtsim.Config{})
	if m := run(d, 1, 3); m.Method != rps.MethodSuccess || d.ControlMode() != amtsim.ModeCCM {
		t.Fatalf("resets during handshakes: %s %q\n%s", m.Method, m.Message, r.logs)
	}
	// Messages 1 and 2 are the handshake, 3 the first request.
	d = newDevice19(t, amtsim.Config{})
	m := run(d, 3)
	if m.Method != rps.MethodError || !strings.Contains(m.Message, "lost its connection to AMT (LMS) (lms_error) after the request went out") {
		t.Fatalf("reset after the request: %s %q", m.Method, m.Message)
	}
	if d.ControlMode() != amtsim.ModePreProvisioning {
		t.Fatal("device changed")
	}
	// Resets on every attempt give up after tunnelHandshakeAttempts.
	d = newDevice19(t, amtsim.Config{})
	if m := run(d, 1, 2, 3, 4); m.Method != rps.MethodError || !strings.Contains(m.Message, "handshake") {
		t.Fatalf("resets on every handshake: %s %q", m.Method, m.Message)
	}
}

func TestLoadODCARoots(t *testing.T) {
	path := filepath.Join(t.TempDir(), "odca.pem")
	o, err := amtsim.LoadODCA(path)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := LoadODCARoots(path + ".crt")
	if err != nil || len(roots) != 1 || !roots[0].Equal(o.Root) {
		t.Fatalf("%v %v", roots, err)
	}
	if err := os.WriteFile(path+".bad", []byte("no pem here"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadODCARoots(path + ".bad"); err == nil {
		t.Fatal("a file without certificates was accepted")
	}
}

// The TLS connection is kept across requests: one handshake for CCM's
// Setup and CommitChanges, one after the commit's TLS restart. If the agent loses LMS under a kept connection, a
// read is sent again on a new connection, and Setup is not.
func TestAgentTLSTunnelKeepAlive(t *testing.T) {
	r := newTLS19Rig(t)
	run := func(d *amtsim.Device, failures ...int) *rps.Message {
		m, err := d.RunRPC(context.Background(), amtsim.RPCOptions{URL: r.url, Command: "activate --profile site-ccm", TenantID: enrolToken, Insecure: true,
			Timeout: 2 * time.Minute, ODCA: r.odca, TLSFirstByte: 20 * time.Second, TLSIdle: 50 * time.Millisecond, LMSFailures: failures})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	handshakes := func() int { return strings.Count(r.logs.String(), "agent TLS tunnel: handshake done") }

	d := newDevice19(t, amtsim.Config{})
	if m := run(d); m.Method != rps.MethodSuccess || d.ControlMode() != amtsim.ModeCCM {
		t.Fatalf("ccm: %s %q\n%s", m.Method, m.Message, r.logs)
	}
	if n := handshakes(); n != 2 {
		t.Fatalf("%d TLS handshakes for one CCM activation, want 2 (the connection kept)", n)
	}

	// Messages 1 and 2 are the handshake, 3 the first request (answered
	// 401), 4 its resend on the kept connection: a Get, sent again.
	d = newDevice19(t, amtsim.Config{})
	before := handshakes()
	if m := run(d, 4); m.Method != rps.MethodSuccess || d.ControlMode() != amtsim.ModeCCM {
		t.Fatalf("reset under a kept Get: %s %q\n%s", m.Method, m.Message, r.logs)
	}
	if n := handshakes() - before; n != 3 {
		t.Fatalf("%d handshakes, want 3 (one more for the retry on a new connection)", n)
	}

	// 5 is Setup on the kept connection: not sent again.
	d = newDevice19(t, amtsim.Config{})
	m := run(d, 5)
	if m.Method != rps.MethodError || !strings.Contains(m.Message, "after the request went out") {
		t.Fatalf("reset under Setup: %s %q", m.Method, m.Message)
	}
	if d.ControlMode() != amtsim.ModePreProvisioning {
		t.Fatal("device changed")
	}
}

// --tls-tunnel on AMT 11-18 (spec/rpc-protocol.md §5, §7): WS-Man on the
// plain port until the profile's TLS is configured, then port_switch to
// 16993; a profile without TLS never switches.
func TestAgentTLSTunnelSwitch(t *testing.T) {
	r := newTLS19Rig(t)
	ca, err := pki.New(time.Now(), "test site")
	if err != nil {
		t.Fatal(err)
	}
	r.srv.Engine.DeviceCA = ca
	ctx := context.Background()
	if err := r.store.Profiles().Put(ctx, store.Profile{Name: "site-ccm-tls", Settings: json.RawMessage(`{"mode":"ccm","tls":true}`)}, "test", ""); err != nil {
		t.Fatal(err)
	}
	v, err := amtsim.ParseVersion("15")
	if err != nil {
		t.Fatal(err)
	}
	run := func(d *amtsim.Device, profile string) *rps.Message {
		m, err := d.RunRPC(ctx, amtsim.RPCOptions{URL: r.url, Command: "activate --profile " + profile, TenantID: enrolToken, Insecure: true,
			Timeout: 2 * time.Minute, TLSFirstByte: 20 * time.Second, TLSIdle: 50 * time.Millisecond, TLSTunnel: true})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	const switched = "the agent switched LMS to 16993"

	d, err := amtsim.New(amtsim.Config{Version: v, Net: amtsim.NetIdentity{Suffix: "corp.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if m := run(d, "site-ccm"); m.Method != rps.MethodSuccess || d.ControlMode() != amtsim.ModeCCM {
		t.Fatalf("ccm without TLS: %s %q\n%s", m.Method, m.Message, r.logs)
	}
	if strings.Contains(r.logs.String(), switched) || strings.Contains(r.logs.String(), "handshake done") {
		t.Fatal("a profile without TLS switched to the TLS port")
	}

	d, err = amtsim.New(amtsim.Config{Version: v, Net: amtsim.NetIdentity{Suffix: "corp.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	m := run(d, "site-ccm-tls")
	var res rps.Result
	if m.Method != rps.MethodSuccess || json.Unmarshal([]byte(m.Message), &res) != nil || res.TLSConfiguration != "Configured" {
		t.Fatalf("ccm with TLS: %s %q\n%s", m.Method, m.Message, r.logs)
	}
	if !d.Snapshot().ActiveTLS.Enabled || !strings.Contains(r.logs.String(), switched) {
		t.Fatalf("TLS not configured or no switch:\n%s", r.logs)
	}
}
