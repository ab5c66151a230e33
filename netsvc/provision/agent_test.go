package provision

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"amtd/amt/rps"
	"amtd/amt/wsman"
	"amtd/amtsim"
	"amtd/metrics"
	"amtd/secret"
	"amtd/store"
)

const enrolToken = "site-enrolment-token-1234"

// localDial reaches the device's host side (LMS) as rpc-go does.
func localDial(d *amtsim.Device) func(context.Context) (net.Conn, error) {
	return func(context.Context) (net.Conn, error) {
		a, b := net.Pipe()
		go d.ServeLocal(b)
		return a, nil
	}
}

// fakeRPC is rpc-go's remote mode, played by the simulated device's host
// (amtsim RunRPC: spec/rpc-protocol.md §1-§7).
func fakeRPC(t *testing.T, url, method, tenant string, d *amtsim.Device, edit func(*rps.Payload)) *rps.Message {
	t.Helper()
	m, err := d.RunRPC(context.Background(), amtsim.RPCOptions{URL: url, Command: method, TenantID: tenant, Insecure: true, Edit: edit, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type agentRig struct {
	store *store.Store
	srv   *AgentServer
	url   string
	reg   *metrics.Registry
}

// storedAdminOpens checks that the admin password the store holds for d
// opens it in mode, and returns the password.
func (r *agentRig) storedAdminOpens(t *testing.T, d *amtsim.Device, mode int) secret.Value {
	t.Helper()
	ctx := context.Background()
	uuid := d.UUID.String()
	admin, err := r.store.Secrets().Current(ctx, uuid, store.AMTAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.srv.Engine.verifyMode(ctx, localDial(d), uuid+":16992", admin, mode); err != nil {
		t.Fatalf("stored password does not open the device in mode %d: %v", mode, err)
	}
	return admin
}

func newAgentRig(t testing.TB, allow ...netip.Prefix) *agentRig {
	t.Helper()
	st := testStore(t)
	reg := metrics.NewRegistry()
	if err := st.Profiles().Put(context.Background(), store.Profile{Name: "site-ccm", Settings: json.RawMessage(`{"mode":"ccm"}`)}, "test", ""); err != nil {
		t.Fatal(err)
	}
	a := &AgentServer{Engine: &Engine{Store: st, Metrics: reg, CallTimeout: 20 * time.Second}, Token: secret.FromString(enrolToken),
		AllowFrom: allow, AppVersion: "test", Metrics: reg}
	hs := httptest.NewTLSServer(a.Handler())
	t.Cleanup(hs.Close)
	return &agentRig{store: st, srv: a, url: "wss" + strings.TrimPrefix(hs.URL, "https") + "/activate", reg: reg}
}

func newSimDevice(t *testing.T) *amtsim.Device {
	t.Helper()
	d, err := amtsim.New(amtsim.Config{Net: amtsim.NetIdentity{Suffix: "corp.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func status(t *testing.T, m *rps.Message) string {
	t.Helper()
	var r rps.Result
	if err := json.Unmarshal([]byte(m.Message), &r); err != nil {
		return m.Message // plain text during validation
	}
	return r.Status
}

func TestAgentActivatesCCM(t *testing.T) {
	r := newAgentRig(t)
	d := newSimDevice(t)
	m := fakeRPC(t, r.url, "activate --profile site-ccm", enrolToken, d, nil)
	if m.Method != rps.MethodSuccess || status(t, m) != "Client control mode." {
		t.Fatalf("got %s %q", m.Method, m.Message)
	}
	if d.ControlMode() != amtsim.ModeCCM {
		t.Fatalf("device mode %d", d.ControlMode())
	}
	ctx := context.Background()
	uuid := d.UUID.String()
	admin := r.storedAdminOpens(t, d, ModeCCM)
	rec, _ := r.store.Devices().Get(ctx, uuid)
	if rec.ProvisioningState != StateActivated || rec.ControlMode != ModeCCM || rec.AMTVersion == "" {
		t.Fatalf("device record %+v", rec)
	}

	// Run again on the activated device: the agent must give the stored
	// password (rpc-go sends it in place of the local account's).
	m = fakeRPC(t, r.url, "activate --profile site-ccm", enrolToken, d, func(p *rps.Payload) { p.Password = rps.Password{Value: admin} })
	if m.Method != rps.MethodSuccess || status(t, m) != "Client control mode." {
		t.Fatalf("again: %s %q", m.Method, m.Message)
	}
	m = fakeRPC(t, r.url, "activate --profile site-ccm", enrolToken, d, func(p *rps.Payload) { p.Password = rps.Password{Value: secret.FromString("Wr0ng!pass")} })
	if m.Method != rps.MethodError || !strings.Contains(m.Message, "AMT password DOES NOT match stored version") {
		t.Fatalf("wrong password: %s %q", m.Method, m.Message)
	}
	if v := r.reg.CounterVec("amtd_agent_sessions_total", "", "command", "result").With("activate", "ok").Value(); v != 2 {
		t.Fatalf("ok sessions %v", v)
	}
}

func TestAgentRefuses(t *testing.T) {
	for _, c := range []struct {
		name, method, tenant string
		edit                 func(*rps.Payload)
		want                 string
	}{
		{"no token", "activate --profile site-ccm", "", nil, "not enrolled"},
		{"wrong token", "activate --profile site-ccm", "guess", nil, "not enrolled"},
		{"unknown profile", "activate --profile nope", enrolToken, nil, "nope does not match list of available AMT profiles"},
		{"bad payload", "activate --profile site-ccm", enrolToken, func(p *rps.Payload) { p.Build = "" }, "Invalid payload from client"},
		{"deactivate unknown device", "deactivate --password Adm1n!pass", enrolToken, nil, "AMT password DOES NOT match stored version"},
		{"garbage command", "frobnicate", enrolToken, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newAgentRig(t)
			d := newSimDevice(t)
			m := fakeRPC(t, r.url, c.method, c.tenant, d, c.edit)
			if m.Method != rps.MethodError || !strings.Contains(status(t, m), c.want) {
				t.Fatalf("got %s %q, want error with %q", m.Method, m.Message, c.want)
			}
			if d.ControlMode() != amtsim.ModePreProvisioning {
				t.Fatal("device changed")
			}
			if n, _ := r.store.Devices().Count(context.Background()); n != 0 {
				t.Fatalf("%d devices recorded for a refused agent", n)
			}
		})
	}
}

func TestAgentSourceSubnet(t *testing.T) {
	r := newAgentRig(t, netip.MustParsePrefix("192.0.2.0/24"))
	m := fakeRPC(t, r.url, "activate --profile site-ccm", enrolToken, newSimDevice(t), nil)
	if m.Method != rps.MethodError || !strings.Contains(m.Message, "not accepted from 127.0.0.1") {
		t.Fatalf("got %s %q", m.Method, m.Message)
	}
}

func TestAgentOldProtocolRefused(t *testing.T) {
	r := newAgentRig(t)
	cfg, _ := websocket.NewConfig(r.url, "https://localhost/")
	cfg.TlsConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // test server certificate
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	msg := rps.Client{TenantID: enrolToken}.Message("activate --profile site-ccm", []byte(`{}`))
	msg.ProtocolVersion = "3.0.0"
	b, _ := rps.Marshal(msg)
	_ = websocket.Message.Send(ws, string(b))
	var text string
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := websocket.Message.Receive(ws, &text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "protocol version NOT supported: 3.0.0") {
		t.Fatalf("got %s", text)
	}
}

func TestAgentActivatesACM(t *testing.T) {
	r := newAgentRig(t)
	chain := newChain(t, "corp.example.com")
	r.srv.Chains = ChainList{{Suffix: "corp.example.com", Cert: chain.cert, Root: chain.root}}
	if err := r.store.Profiles().Put(context.Background(), store.Profile{Name: "site-acm", Settings: json.RawMessage(`{"mode":"acm"}`)}, "test", ""); err != nil {
		t.Fatal(err)
	}
	hashes := []string{strings.Repeat("ab", 32), chain.rootHash().Hex}
	trusting := func(t *testing.T) *amtsim.Device {
		d, err := amtsim.New(amtsim.Config{Net: amtsim.NetIdentity{Suffix: "corp.example.com"}, ExtraRootHashes: []amtsim.RootHash{chain.rootHash()}})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	d := trusting(t)
	m := fakeRPC(t, r.url, "activate --profile site-acm", enrolToken, d, func(p *rps.Payload) { p.CertHashes = hashes })
	if m.Method != rps.MethodSuccess || status(t, m) != "Activated to admin control mode." {
		t.Fatalf("got %s %q", m.Method, m.Message)
	}
	if d.ControlMode() != amtsim.ModeACM {
		t.Fatalf("device mode %d", d.ControlMode())
	}
	ctx := context.Background()
	uuid := d.UUID.String()
	r.storedAdminOpens(t, d, ModeACM)
	mebx, err := r.store.Secrets().Current(ctx, uuid, store.MEBx)
	if err != nil || d.Snapshot().MEBxPassword != mebx.RevealString() {
		t.Fatalf("MEBx password not set to the stored one (%v)", err)
	}

	for _, c := range []struct {
		name string
		edit func(*rps.Payload)
		want string
	}{
		{"root not trusted", func(p *rps.Payload) { p.CertHashes = []string{strings.Repeat("cd", 32)} }, "Invalid domain certificate, hash does not exists"},
		{"other suffix", func(p *rps.Payload) { p.CertHashes, p.FQDN = hashes, "other.example" }, "does not match list of available AMT domain suffixes"},
		{"no hashes", func(p *rps.Payload) { p.CertHashes = nil }, "Missing certificate hashes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := trusting(t)
			m := fakeRPC(t, r.url, "activate --profile site-acm", enrolToken, d, c.edit)
			if m.Method != rps.MethodError || !strings.Contains(status(t, m), c.want) {
				t.Fatalf("got %s %q, want %q", m.Method, m.Message, c.want)
			}
			if d.ControlMode() != amtsim.ModePreProvisioning {
				t.Fatal("device changed")
			}
		})
	}

	// A device that does not trust the chain's root, though the agent says
	// it does: AdminSetup fails with AuthFailed, nothing is promoted.
	other, err := amtsim.New(amtsim.Config{Net: amtsim.NetIdentity{Suffix: "corp.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	m = fakeRPC(t, r.url, "activate --profile site-acm", enrolToken, other, func(p *rps.Payload) { p.CertHashes = hashes })
	if m.Method != rps.MethodError || !strings.Contains(status(t, m), "Failed to activate in admin control mode.") {
		t.Fatalf("lying agent: %s %q", m.Method, m.Message)
	}
	if _, err := r.store.Secrets().Current(ctx, other.UUID.String(), store.AMTAdmin); err == nil {
		t.Fatal("a current admin password was stored for a device that refused AdminSetup")
	}
}

// A CCM device goes to ACM with an ACM profile (UpgradeClientToAdmin), then
// gets a new admin password by maintenance, and is deactivated.
func TestAgentUpgradeMaintainDeactivate(t *testing.T) {
	r := newAgentRig(t)
	chain := newChain(t, "corp.example.com")
	r.srv.Chains = ChainList{{Suffix: "corp.example.com", Cert: chain.cert, Root: chain.root}}
	ctx := context.Background()
	if err := r.store.Profiles().Put(ctx, store.Profile{Name: "site-acm", Settings: json.RawMessage(`{"mode":"acm"}`)}, "test", ""); err != nil {
		t.Fatal(err)
	}
	d, err := amtsim.New(amtsim.Config{Net: amtsim.NetIdentity{Suffix: "corp.example.com"}, ExtraRootHashes: []amtsim.RootHash{chain.rootHash()}})
	if err != nil {
		t.Fatal(err)
	}
	uuid := d.UUID.String()
	if m := fakeRPC(t, r.url, "activate --profile site-ccm", enrolToken, d, nil); m.Method != rps.MethodSuccess {
		t.Fatalf("ccm: %q", m.Message)
	}
	admin, _ := r.store.Secrets().Current(ctx, uuid, store.AMTAdmin)
	withAdmin := func(pw secret.Value) func(*rps.Payload) {
		return func(p *rps.Payload) {
			p.Password, p.CertHashes = rps.Password{Value: pw}, []string{chain.rootHash().Hex}
		}
	}
	m := fakeRPC(t, r.url, "activate --profile site-acm", enrolToken, d, withAdmin(admin))
	if m.Method != rps.MethodSuccess || status(t, m) != "Upgraded to admin control mode." || d.ControlMode() != amtsim.ModeACM {
		t.Fatalf("upgrade: %s %q mode %d", m.Method, m.Message, d.ControlMode())
	}
	mebx, err := r.store.Secrets().Current(ctx, uuid, store.MEBx)
	if err != nil || d.Snapshot().MEBxPassword != mebx.RevealString() {
		t.Fatalf("MEBx after upgrade: %v", err)
	}

	m = fakeRPC(t, r.url, "maintenance -password "+admin.RevealString()+" --changepassword", enrolToken, d, withAdmin(admin))
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
	if err := r.srv.Engine.verifyMode(ctx, localDial(d), uuid+":16992", admin, ModeACM); err == nil {
		t.Fatal("the old password still opens the device")
	}
	m = fakeRPC(t, r.url, "maintenance -password "+newAdmin.RevealString()+" --synctime", enrolToken, d, withAdmin(newAdmin))
	if m.Method != rps.MethodSuccess || status(t, m) != "Time synchronized." {
		t.Fatalf("synctime: %s %q", m.Method, m.Message)
	}
	m = fakeRPC(t, r.url, "maintenance -password "+admin.RevealString()+" --synctime", enrolToken, d, withAdmin(admin))
	if m.Method != rps.MethodError || !strings.Contains(m.Message, "DOES NOT match") {
		t.Fatalf("maintenance with the old password: %s %q", m.Method, m.Message)
	}

	if m := fakeRPC(t, r.url, "deactivate -f", enrolToken, d, nil); m.Method != rps.MethodError || !strings.Contains(m.Message, "forced deactivation is not allowed") {
		t.Fatalf("forced deactivate: %s %q", m.Method, m.Message)
	}
	m = fakeRPC(t, r.url, "deactivate --password "+newAdmin.RevealString(), enrolToken, d, withAdmin(newAdmin))
	if m.Method != rps.MethodSuccess || status(t, m) != "Deactivated" || d.ControlMode() != amtsim.ModePreProvisioning {
		t.Fatalf("deactivate: %s %q mode %d", m.Method, m.Message, d.ControlMode())
	}
	if rec, _ := r.store.Devices().Get(ctx, uuid); rec.ProvisioningState != "deactivated" || rec.ControlMode != 0 {
		t.Fatalf("record %+v", rec)
	}
}

// maintenance --syncip: a static device takes the host's address, as RPS
// does; a DHCP one is set to follow the host (spec/activation.md §10).
func TestAgentSyncIP(t *testing.T) {
	r := newAgentRig(t)
	ctx := context.Background()
	d, err := amtsim.New(amtsim.Config{Net: amtsim.NetIdentity{Suffix: "corp.example.com", IP: netip.MustParseAddr("10.0.0.5")}})
	if err != nil {
		t.Fatal(err)
	}
	uuid := d.UUID.String()
	if m := fakeRPC(t, r.url, "activate --profile site-ccm", enrolToken, d, nil); m.Method != rps.MethodSuccess {
		t.Fatalf("ccm: %q", m.Message)
	}
	admin, _ := r.store.Secrets().Current(ctx, uuid, store.AMTAdmin)
	c := wsman.NewClient(localDial(d), wsman.Credentials{Host: uuid + ":16992", Username: "admin", Password: admin})
	wired := func() wsman.Instance {
		t.Helper()
		ports, err := c.Enumerate(ctx, "AMT_EthernetPortSettings")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ports {
			if strings.HasSuffix(p.Value("InstanceID"), "Settings 0") {
				return p
			}
		}
		t.Fatal("no wired port")
		return wsman.Instance{}
	}
	set := func(kv ...string) {
		t.Helper()
		in := wired()
		for i := 0; i < len(kv); i += 2 {
			in.Set(kv[i], kv[i+1])
		}
		if _, err := c.Put(ctx, "AMT_EthernetPortSettings", in, wsman.Selector{Name: "InstanceID", Value: in.Value("InstanceID")}); err != nil {
			t.Fatal(err)
		}
	}
	set("DHCPEnabled", "false", "IpSyncEnabled", "false", "IPAddress", "192.168.1.80", "SubnetMask", "255.255.255.0", "DefaultGateway", "192.168.1.1")
	withAdmin := func(edit func(*rps.IPConfiguration)) func(*rps.Payload) {
		return func(p *rps.Payload) {
			p.Password = rps.Password{Value: admin}
			if edit != nil {
				edit(&p.IPConfiguration)
			}
		}
	}
	syncip := "maintenance -password " + admin.RevealString() + " --syncip"

	// The host's address as rpc-go reads it from the OS (amtsim: 10.0.0.5).
	m := fakeRPC(t, r.url, syncip, enrolToken, d, withAdmin(func(ip *rps.IPConfiguration) { ip.Netmask, ip.Gateway = "255.0.0.0", "10.0.0.1" }))
	if m.Method != rps.MethodSuccess || status(t, m) != "IP synchronized." {
		t.Fatalf("syncip: %s %q", m.Method, m.Message)
	}
	w := wired()
	if w.Value("IPAddress") != "10.0.0.5" || w.Value("SubnetMask") != "255.0.0.0" || w.Value("DefaultGateway") != "10.0.0.1" ||
		w.Value("IpSyncEnabled") != "false" || w.Value("DHCPEnabled") != "false" {
		t.Fatalf("wired port after syncip: %+v", w.Props)
	}
	if rec, _ := r.store.Devices().Get(ctx, uuid); !slices.Contains(rec.Addresses, netip.MustParseAddr("10.0.0.5")) {
		t.Fatalf("record addresses %v", rec.Addresses)
	}
	m = fakeRPC(t, r.url, syncip, enrolToken, d, withAdmin(nil))
	if m.Method != rps.MethodError || !strings.Contains(m.Message, "IPAddress already synchronized") {
		t.Fatalf("again: %s %q", m.Method, m.Message)
	}
	for _, bad := range []rps.IPConfiguration{{IPAddress: "10.0.0.300"}, {IPAddress: ""}, {IPAddress: "10.0.0.9", Gateway: "gw"}, {IPAddress: "fe80::1"}} {
		m = fakeRPC(t, r.url, syncip, enrolToken, d, withAdmin(func(ip *rps.IPConfiguration) { *ip = bad }))
		if w := wired(); m.Method != rps.MethodError || w.Value("IPAddress") != "10.0.0.5" {
			t.Fatalf("bad %+v: %s %q, address now %s", bad, m.Method, m.Message, w.Value("IPAddress"))
		}
	}

	// On DHCP the device is set to follow the host's address.
	set("DHCPEnabled", "true", "IpSyncEnabled", "false")
	m = fakeRPC(t, r.url, syncip, enrolToken, d, withAdmin(func(ip *rps.IPConfiguration) { ip.IPAddress = "10.0.0.77" }))
	if m.Method != rps.MethodSuccess {
		t.Fatalf("dhcp syncip: %s %q", m.Method, m.Message)
	}
	if w := wired(); w.Value("IpSyncEnabled") != "true" || w.Value("DHCPEnabled") != "true" {
		t.Fatalf("wired port after DHCP syncip: %+v", w.Props)
	}
}
