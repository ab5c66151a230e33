package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"amtd/amt/redir"
	"amtd/amt/wsman"
	"amtd/amtsim"
	"amtd/daemon/config"
	"amtd/secret"
	"amtd/store"
	"amtd/tests/tools/relayclient"
)

// enableRedirection turns on SOL, IDER and KVM and the redirection
// listener over WS-Man, as provisioning's features step does
// (spec/redirection.md §1).
func enableRedirection(t testing.TB, dial DeviceDialer, uuid string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := wsman.NewClient(func(ctx context.Context) (net.Conn, error) { return dial.Dial(ctx, uuid, wsmanPort) },
		wsman.Credentials{Host: uuid + ":16992", Username: "admin", Password: secret.FromString(simAdminPass)})
	if err := c.RequestStateChange(ctx, "AMT_RedirectionService", 32771); err != nil {
		t.Fatal(err)
	}
	var inst wsman.Instance
	if err := c.Get(ctx, "AMT_RedirectionService", &inst); err != nil {
		t.Fatal(err)
	}
	inst.Set("ListenerEnabled", "true")
	if _, err := c.Put(ctx, "AMT_RedirectionService", inst); err != nil {
		t.Fatal(err)
	}
	if err := c.RequestStateChange(ctx, "CIM_KVMRedirectionSAP", 2); err != nil {
		t.Fatal(err)
	}
}

func (e *env) relayTLS() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(e.ca.Root())
	return &tls.Config{RootCAs: pool, ServerName: "amtd.test"}
}

func (e *env) relayToken(apiKey, uuid string) string {
	e.t.Helper()
	tok, err := relayclient.Token(context.Background(), e.client, e.base, apiKey, uuid)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func (e *env) relayDial(tok, uuid, mode string, q url.Values) (*relayclient.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return relayclient.Dial(ctx, e.svc.Addr(), e.relayTLS(), tok, uuid, mode, q)
}

// relaySession opens an authenticated session as a console that knows no
// password (empty user and password).
func (e *env) relaySession(apiKey, uuid string, t redir.SessionType, mode string) *relayclient.Session {
	e.t.Helper()
	c, err := e.relayDial(e.relayToken(apiKey, uuid), uuid, mode, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	s, err := relayclient.Authenticate(c, t, "", "")
	if err != nil {
		c.Close()
		e.t.Fatal(err)
	}
	return s
}

func (e *env) redirectStatus(key, uuid string) map[string]bool {
	e.t.Helper()
	st, b := e.do("GET", "/api/v1/devices/redirectstatus/"+uuid, bearer(key), nil)
	if st != 200 {
		e.t.Fatalf("redirectstatus: %d %s", st, b)
	}
	out := map[string]bool{}
	for _, k := range []string{"isKVMConnected", "isSOLConnected", "isIDERConnected"} {
		switch {
		case strings.Contains(string(b), `"`+k+`":true`):
			out[k] = true
		case !strings.Contains(string(b), `"`+k+`":false`):
			e.t.Fatalf("redirectstatus %s has no %s", b, k)
		}
	}
	return out
}

func (e *env) metricsText() string {
	var b bytes.Buffer
	if err := e.reg.WriteText(&b); err != nil {
		e.t.Fatal(err)
	}
	return b.String()
}

func (e *env) auditRows(action string) []store.AuditEntry {
	e.t.Helper()
	rows, err := e.st.AuditList(context.Background(), store.AuditQuery{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []store.AuditEntry
	for _, r := range rows {
		if r.Action == action {
			out = append(out, r)
		}
	}
	return out
}

// TestRelaySOL: a console with empty credentials gets a SOL session through
// amtd, which injects the admin password; SOL data echoes through the
// simulated device; redirectstatus, a second SOL refused while a KVM
// session opens beside it, the end audited with the side that closed, the
// metrics, and no password anywhere.
func TestRelaySOL(t *testing.T) {
	ce := newCIRAEnv(t)
	ce.addDevice(simUUID)
	ce.device(t, simUUID)
	enableRedirection(t, ce.cira, simUUID)
	op, viewer := ce.key(store.RoleOperator, "op"), ce.key(store.RoleViewer, "viewer")

	// A viewer may not open redirection.
	if st, b := ce.do("GET", "/api/v1/authorize/redirection/"+simUUID, bearer(viewer), nil); st != 403 {
		t.Fatalf("viewer token: %d %s", st, b)
	}
	if got := ce.redirectStatus(viewer, simUUID); got["isSOLConnected"] || got["isKVMConnected"] {
		t.Fatalf("redirectstatus before any session: %v", got)
	}

	sol := ce.relaySession(op, strings.ToUpper(simUUID), redir.SessionSOL, "sol")
	if err := sol.StartSOL(); err != nil {
		t.Fatal(err)
	}
	for i, msg := range []string{"hello AMT\r\n", strings.Repeat("0123456789", 300), "\x00\x13\x14\xff"} {
		if err := sol.SendSOL(uint32(i+2), []byte(msg)); err != nil {
			t.Fatal(err)
		}
		got, err := sol.ReadSOL()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != msg {
			t.Fatalf("SOL echo %d: got %q", i, got)
		}
	}
	if got := ce.redirectStatus(viewer, simUUID); !got["isSOLConnected"] || got["isKVMConnected"] || got["isIDERConnected"] {
		t.Fatalf("redirectstatus with SOL open: %v", got)
	}
	// swagger's spelling.
	if st, _ := ce.do("GET", "/api/v1/devices/redirectStatus/"+simUUID, bearer(viewer), nil); st != 200 {
		t.Fatalf("redirectStatus: %d", st)
	}

	// A second SOL session is refused before the upgrade; a KVM one opens.
	_, err := ce.relayDial(ce.relayToken(op, simUUID), simUUID, "sol", nil)
	var rf *relayclient.RefusedError
	if !errors.As(err, &rf) || rf.Status != 409 || !strings.Contains(rf.Message, "already open") {
		t.Fatalf("second SOL session: %v", err)
	}
	kvm := ce.relaySession(op, simUUID, redir.SessionKVM, "kvm")
	if err := kvm.StartKVM(); err != nil {
		t.Fatal(err)
	}
	if got := ce.redirectStatus(viewer, simUUID); !got["isSOLConnected"] || !got["isKVMConnected"] {
		t.Fatalf("redirectstatus with SOL and KVM open: %v", got)
	}
	// Two sessions hold two of the device's channels: IDER is refused so
	// that management keeps the third, and a power state read still works.
	_, err = ce.relayDial(ce.relayToken(op, simUUID), simUUID, "ider", nil)
	if !errors.As(err, &rf) || rf.Status != 409 || !strings.Contains(rf.Message, "keeps one for management") {
		t.Fatalf("a third session to the device: %v", err)
	}
	if st, b := ce.do("GET", "/api/v1/amt/power/state/"+simUUID, bearer(viewer), nil); st != 200 || !strings.Contains(string(b), `"powerstate"`) {
		t.Fatalf("power state with two sessions open: %d %s", st, b)
	}

	// The console closes SOL: the session ends, audited as closed by it.
	sol.Close()
	waitUntil(t, "the SOL session to end", func() bool { return !ce.redirectStatus(viewer, simUUID)["isSOLConnected"] })
	kvm.Close()
	waitUntil(t, "the KVM session to end", func() bool { return !ce.redirectStatus(viewer, simUUID)["isKVMConnected"] })

	waitUntil(t, "both ends in the audit trail", func() bool { return len(ce.auditRows("relay.end")) == 2 })
	starts, ends := ce.auditRows("relay.start"), ce.auditRows("relay.end")
	if len(starts) != 2 || len(ends) != 2 {
		t.Fatalf("audit: %d starts, %d ends; want 2 each", len(starts), len(ends))
	}
	var solEnd string
	for _, r := range ends {
		if strings.Contains(r.Result, "mode=sol") {
			solEnd = r.Result
		}
		if r.Object != "device/"+simUUID || !strings.HasPrefix(r.Actor, "api:key:") {
			t.Fatalf("audit row %+v", r)
		}
	}
	if !strings.HasPrefix(solEnd, "ok mode=sol closed_by=console") || !strings.Contains(solEnd, "to_device=") {
		t.Fatalf("SOL end audited as %q", solEnd)
	}
	m := ce.metricsText()
	for _, want := range []string{`amtd_relay_sessions_total{mode="sol"} 1`, `amtd_relay_sessions_total{mode="kvm"} 1`,
		`amtd_relay_sessions_active{mode="sol"} 0`, `amtd_relay_bytes_total{mode="sol",direction="to_console"}`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(ce.logs.String(), simAdminPass) || strings.Contains(m, simAdminPass) {
		t.Fatal("the AMT password is in a log line or the metrics")
	}
	for _, r := range append(starts, ends...) {
		if strings.Contains(r.Result+r.Reason, simAdminPass) {
			t.Fatal("the AMT password is in the audit trail")
		}
	}
}

// kvmRead reads n bytes of the KVM stream and checks them against
// amtsim's pattern from offset 0.
func kvmRead(t testing.TB, r io.Reader, n int) [32]byte {
	t.Helper()
	got, want := sha256.New(), sha256.New()
	buf, pat := make([]byte, 32<<10), make([]byte, 32<<10)
	var off uint64
	for off < uint64(n) {
		k := min(len(buf), n-int(off))
		if _, err := io.ReadFull(r, buf[:k]); err != nil {
			t.Fatalf("KVM stream at %d: %v", off, err)
		}
		amtsim.KVMPattern(pat[:k], off)
		got.Write(buf[:k])
		want.Write(pat[:k])
		off += uint64(k)
	}
	var a, b [32]byte
	copy(a[:], got.Sum(nil))
	copy(b[:], want.Sum(nil))
	if a != b {
		t.Fatalf("KVM stream of %d bytes: SHA-256 %x, the device sent %x", n, a, b)
	}
	return a
}

// TestRelayKVMStream: 8 MiB of the device's KVM stream reach the console
// intact, and 1 MiB the console sends reaches the device intact, both
// checked by SHA-256 against what the other end sent or received.
func TestRelayKVMStream(t *testing.T) {
	ce := newCIRAEnv(t)
	ce.addDevice(simUUID)
	d := ce.device(t, simUUID)
	enableRedirection(t, ce.cira, simUUID)
	op := ce.key(store.RoleOperator, "op")
	s := ce.relaySession(op, simUUID, redir.SessionKVM, "kvm")
	defer s.Close()
	if err := s.StartKVM(); err != nil {
		t.Fatal(err)
	}
	// Console → device, concurrently with the download.
	const up = 1 << 20
	sent := sha256.New()
	done := make(chan error, 1)
	go func() {
		b := make([]byte, 3000) // not a divisor of anything in the path
		for i := 0; i < up; i += len(b) {
			k := min(len(b), up-i)
			for j := range b[:k] {
				b[j] = byte((i + j) * 7)
			}
			sent.Write(b[:k])
			if _, err := s.Write(b[:k]); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	kvmRead(t, s.R, 8<<20)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var want [32]byte
	copy(want[:], sent.Sum(nil))
	waitUntil(t, "the device to receive the console's 1 MiB", func() bool { n, _ := d.KVMInput(); return n >= up })
	if n, sum := d.KVMInput(); n != up || sum != want {
		t.Fatalf("device received %d bytes, SHA-256 %x; console sent %d, %x", n, sum, up, want)
	}
}

// TestRelayRefusals: what the relay refuses, with the status and reason a
// console shows, before any upgrade.
func TestRelayRefusals(t *testing.T) {
	ce := newCIRAEnv(t)
	ce.addDevice(simUUID)
	ce.addDevice(simOffUUID)
	ce.device(t, simUUID)
	enableRedirection(t, ce.cira, simUUID)
	op := ce.key(store.RoleOperator, "op")

	std := func(mod func(url.Values)) url.Values {
		q := url.Values{"p": {"2"}, "host": {simUUID}, "port": {"16994"}, "tls": {"0"}, "tls1only": {"0"}, "mode": {"kvm"}}
		if mod != nil {
			mod(q)
		}
		return q
	}
	other := NewRelayState()
	foreign, _ := other.tokens.issue(simUUID, "x", time.Now())
	used := ce.relayToken(op, simUUID)
	s, err := ce.relayDial(used, simUUID, "kvm", nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	waitUntil(t, "the first session to end", func() bool { return !ce.svc.relays.connected(simUUID, "kvm") })
	for _, c := range []struct {
		name   string
		tok    string
		q      url.Values
		status int
		want   string
	}{
		{"no token", "", nil, 401, "Sec-WebSocket-Protocol"},
		{"garbage token", "abc.def.ghi", nil, 401, "not a redirection token"},
		{"token from another amtd", foreign, nil, 401, "signature"},
		{"reused token", used, nil, 401, "already used"},
		{"token for another device", ce.relayToken(op, simOffUUID), nil, 401, "another device"},
		{"tls=1", ce.relayToken(op, simUUID), std(func(q url.Values) { q.Set("tls", "1") }), 400, "tls=0"},
		{"p=1", ce.relayToken(op, simUUID), std(func(q url.Values) { q.Set("p", "1") }), 400, "p=2"},
		{"unknown mode", ce.relayToken(op, simUUID), std(func(q url.Values) { q.Set("mode", "vnc") }), 400, "kvm, sol or ider"},
		{"other port", ce.relayToken(op, simUUID), std(func(q url.Values) { q.Set("port", "16992") }), 400, "16994"},
		{"bad host", ce.relayToken(op, simUUID), std(func(q url.Values) { q.Set("host", "nope") }), 400, "GUID"},
		{"device not connected", ce.relayToken(op, simOffUUID), std(func(q url.Values) { q.Set("host", simOffUUID) }), 404, notConnected},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ce.relayDial(c.tok, simUUID, "kvm", c.q)
			var rf *relayclient.RefusedError
			if !errors.As(err, &rf) || rf.Status != c.status || !strings.Contains(rf.Message, c.want) {
				t.Fatalf("got %v; want %d naming %q", err, c.status, c.want)
			}
		})
	}
	// Unknown devices get no token; other paths no upgrade.
	if st, b := ce.do("GET", "/api/v1/authorize/redirection/00000000-1111-2222-3333-444444444444", bearer(op), nil); st != 404 {
		t.Fatalf("token for an unknown device: %d %s", st, b)
	}
	st, b := ce.do("GET", "/api/v1/devices", map[string]string{"Authorization": "Bearer " + op, "Upgrade": "websocket",
		"Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}, nil)
	if st != 401 || !strings.Contains(string(b), relayPath) {
		t.Fatalf("upgrade elsewhere: %d %s", st, b)
	}
	// Not an upgrade at all.
	if st, b := ce.do("GET", relayPath+"?"+std(nil).Encode(), nil, nil); st != 400 || !strings.Contains(string(b), "WebSocket") {
		t.Fatalf("plain GET of the relay: %d %s", st, b)
	}
	if n := len(ce.auditRows("relay.refuse")); n < 10 {
		t.Fatalf("%d refusals audited", n)
	}
}

// TestRelayPasswordRefused: when the device refuses the password amtd
// holds, the console gets AMT's failure and a close frame saying why.
func TestRelayPasswordRefused(t *testing.T) {
	ce := newCIRAEnv(t)
	ce.addDevice(simUUID)
	ce.device(t, simUUID)
	enableRedirection(t, ce.cira, simUUID)
	ctx := context.Background()
	if err := ce.st.Secrets().SetPending(ctx, simUUID, store.AMTAdmin, secret.FromString("Not-The-Password-1"), "test"); err != nil {
		t.Fatal(err)
	}
	if err := ce.st.Secrets().Promote(ctx, simUUID, store.AMTAdmin); err != nil {
		t.Fatal(err)
	}
	op := ce.key(store.RoleOperator, "op")
	c, err := ce.relayDial(ce.relayToken(op, simUUID), simUUID, "kvm", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	_, err = relayclient.Authenticate(c, redir.SessionKVM, "", "")
	var ce2 *relayclient.CloseError
	if err == nil || !strings.Contains(err.Error(), "AMT answered AuthenticateSessionReply status=failure") ||
		!errors.As(err, &ce2) || ce2.Code != wsClosePolicy || !strings.Contains(ce2.Reason, "refused the AMT admin password") {
		t.Fatalf("got %v; want AMT's failure and close 1008 naming the password", err)
	}
	waitUntil(t, "the session's end in the audit trail", func() bool { return len(ce.auditRows("relay.end")) > 0 })
	ends := ce.auditRows("relay.end")
	if len(ends) != 1 || !strings.HasPrefix(ends[0].Result, "not authenticated mode=kvm closed_by=device") {
		t.Fatalf("audit %+v", ends)
	}
}

// TestRelayTokenExpiry: tokens expire after 5 minutes and name their device.
func TestRelayTokenExpiry(t *testing.T) {
	ti := newTokenIssuer()
	now := time.Now()
	tok, err := ti.issue(simUUID, "k1", now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ti.redeem(tok, simUUID, now.Add(redirTokenLifetime)); !errors.Is(err, errTokenExpired) {
		t.Fatalf("at expiry: %v", err)
	}
	c, err := ti.redeem(tok, strings.ToUpper(simUUID), now.Add(redirTokenLifetime-time.Second))
	if err != nil || c.Sub != "k1" || c.DeviceID != simUUID {
		t.Fatalf("before expiry, upper-case host: %+v %v", c, err)
	}
	// Outstanding tokens are bounded; expired ones make room.
	for i := range maxOutstandingTokens {
		if _, err := ti.issue(simUUID, strconv.Itoa(i), now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ti.issue(simUUID, "k", now); !errors.Is(err, errTooManyTokens) {
		t.Fatalf("over the bound: %v", err)
	}
	if _, err := ti.issue(simUUID, "k", now.Add(redirTokenLifetime)); err != nil {
		t.Fatalf("after the others expired: %v", err)
	}
}

// TestRelayTLSOnlyDevice: firmware from CSME 16.1 forwards no plain port
// (spec/redirection.md §1); the console still asks for port=16994 and amtd
// opens 16995 with TLS inside the CIRA channel.
func TestRelayTLSOnlyDevice(t *testing.T) {
	ce := newCIRAEnv(t)
	startFleet(t, ce, 1, "19")
	uuid := fleetUUID(0)
	op := ce.key(store.RoleOperator, "op")
	s := ce.relaySession(op, uuid, redir.SessionKVM, "kvm")
	if err := s.StartKVM(); err != nil {
		t.Fatal(err)
	}
	kvmRead(t, s.R, 1<<20)
	s.Close()
	starts := ce.auditRows("relay.start")
	if len(starts) != 1 || !strings.Contains(starts[0].Result, "port=16995") {
		t.Fatalf("audit %+v; want one start on 16995", starts)
	}
}

// TestRelayStateAcrossRebuild: a reload builds a new Service with the
// daemon's RelayState; tokens issued before still work, open sessions stay
// counted, and closing the old or new Service leaves them running.
func TestRelayStateAcrossRebuild(t *testing.T) {
	ce := newCIRAEnv(t)
	ce.addDevice(simUUID)
	ce.device(t, simUUID)
	enableRedirection(t, ce.cira, simUUID)
	op := ce.key(store.RoleOperator, "op")
	s := ce.relaySession(op, simUUID, redir.SessionKVM, "kvm")
	defer s.Close()
	if err := s.StartKVM(); err != nil {
		t.Fatal(err)
	}
	tok := ce.relayToken(op, simUUID)
	cfg := &config.Config{API: ce.svc.cfg}
	svc2, err := New(cfg, ce.svc.deps, Options{Certificate: ce.svc.opts.Certificate, Devices: ce.svc.opts.Devices, Relays: ce.svc.relays})
	if err != nil {
		t.Fatal(err)
	}
	if !svc2.relays.connected(simUUID, "kvm") {
		t.Fatal("the rebuilt service does not see the open KVM session")
	}
	if _, err := svc2.relays.tokens.redeem(tok, simUUID, time.Now()); err != nil {
		t.Fatalf("a token from before the rebuild: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := svc2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	kvmRead(t, s.R, 256<<10)
}
