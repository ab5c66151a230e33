package provision

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"amtd/amt/rps"
	"amtd/amt/wsman"
	"amtd/amtsim"
	"amtd/store"
)

// port returns the device's stored AMT_EthernetPortSettings instance
// whose InstanceID ends in suffix, as amtsim keeps it.
func simPort(t *testing.T, d *amtsim.Device, suffix string) wsman.Instance {
	t.Helper()
	for _, in := range d.Snapshot().Overlays["AMT_EthernetPortSettings"] {
		if strings.HasSuffix(in.Value("InstanceID"), suffix) {
			return in
		}
	}
	t.Fatalf("the device keeps no AMT_EthernetPortSettings ...%s", suffix)
	return wsman.Instance{}
}

func portFlags(in wsman.Instance) string {
	return "dhcp=" + in.Value("DHCPEnabled") + " sync=" + in.Value("IpSyncEnabled") + " sharedstatic=" + in.Value("SharedStaticIp")
}

// TestConfigureNetwork: a profile's network setting reaches the wired port
// (spec/wsman.md AMT_EthernetPortSettings) and the device keeps it; the
// wireless port is left alone; keep touches nothing.
func TestConfigureNetwork(t *testing.T) {
	r := newRig(t, nil)
	ctx := ctxT(t)
	if _, err := r.engine.ActivateACM(ctx, r.target, r.chain.cert); err != nil {
		t.Fatal(err)
	}
	dial := r.engine.dialer(r.target, nil)
	cfg := func(network string) {
		t.Helper()
		if _, err := r.engine.configure(ctx, r.target.UUID, r.target.host(), dial, ProfileSettings{Mode: "acm", Network: network}, ModeACM); err != nil {
			t.Fatal(err)
		}
	}
	cfg(NetworkKeep)
	if ov := r.dev.Snapshot().Overlays["AMT_EthernetPortSettings"]; ov != nil {
		t.Fatalf("keep wrote the ports: %v", ov)
	}
	wireless := func() string {
		return strings.Join(r.dev.Snapshot().Overlays["AMT_EthernetPortSettings"][1].Values("DHCPEnabled"), ",")
	}

	cfg(NetworkStatic)
	if got := portFlags(simPort(t, r.dev, " 0")); got != "dhcp=false sync=true sharedstatic=true" {
		t.Fatalf("static: %s", got)
	}
	if w := wireless(); w != "true" {
		t.Fatalf("the wireless port changed: DHCPEnabled=%s", w)
	}
	cfg(NetworkDHCP)
	if got := portFlags(simPort(t, r.dev, " 0")); got != "dhcp=true sync=true sharedstatic=false" {
		t.Fatalf("dhcp: %s", got)
	}
	// Read back over a new session: the device answers with what it keeps.
	c, admin, err := r.engine.adminClient(ctx, r.target.UUID, r.target.host(), dial, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Wipe()
	var p wsman.AMTEthernetPortSettings
	if err := c.Get(ctx, "AMT_EthernetPortSettings", &p, wsman.Selector{Name: "InstanceID", Value: "Intel(r) AMT Ethernet Port Settings 0"}); err != nil {
		t.Fatal(err)
	}
	if !p.DHCPEnabled || !p.IpSyncEnabled || p.SharedStaticIp {
		t.Fatalf("read back %+v", p)
	}
	h := states(t, r.store, r.target.UUID)
	if last := h[len(h)-1]; last != StateConfigured+"/"+StepNetwork {
		t.Fatalf("history ends %s", last)
	}
}

// TestHelloAppliesNetworkProfile: end to end through the hello listener,
// the profile for the device's suffix gives its wired port a static,
// synchronised address after activation in ACM.
func TestHelloAppliesNetworkProfile(t *testing.T) {
	port := freePort(t)
	r := newHelloRig(t, HelloLimits{}, port)
	if err := r.store.Profiles().Put(context.Background(), store.Profile{Name: "static", Settings: json.RawMessage(`{"mode":"acm","network":"static"}`),
		MatchRules: json.RawMessage(`{"suffixes":["corp.example.com"]}`)}, "test", ""); err != nil {
		t.Fatal(err)
	}
	d := r.device("127.0.1.40", port, r.chain.rootHash())
	if _, err := d.SendHello(ctxT(t), 9971, 0); err != nil {
		t.Fatal(err)
	}
	uuid := d.UUID.String()
	waitFor(t, "the device configured", func() bool {
		rec, err := r.store.Devices().Get(context.Background(), uuid)
		return err == nil && rec.ProvisioningState == StateConfigured && r.hl.ActivationsRunning() == 0
	})
	if d.ControlMode() != amtsim.ModeACM {
		t.Fatalf("mode %d", d.ControlMode())
	}
	if got := portFlags(simPort(t, d, " 0")); got != "dhcp=false sync=true sharedstatic=true" {
		t.Fatalf("wired port: %s", got)
	}
}

func TestParseNetwork(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"dhcp", NetworkDHCP, ""},
		{"Static", NetworkStatic, ""},
		{"keep", NetworkKeep, ""},
		{"", NetworkKeep, ""},
		{"wifi", "", "Wi-Fi and 802.1X are not supported"},
		{"802.1x", "", "Wi-Fi and 802.1X are not supported"},
		{"bootp", "", "want dhcp, static or keep"},
	} {
		got, err := ParseNetwork(c.in)
		if got != c.want || (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("ParseNetwork(%q) = %q, %v", c.in, got, err)
		}
	}
}

// Stored settings asking for Wi-Fi or 802.1X (as an RPS profile would) are
// refused, not applied in part.
func TestProfileRefusesWireless(t *testing.T) {
	for _, js := range []string{`{"mode":"acm","wifi":{"ssid":"x"}}`, `{"mode":"acm","ieee8021x":{"authenticationProtocol":0}}`, `{"mode":"acm","network":"wifi"}`} {
		if _, _, err := ParseProfile(prof("w", js, `{}`)); err == nil {
			t.Errorf("%s accepted", js)
		}
	}
	if _, _, err := ParseProfile(prof("ok", `{"mode":"ccm","network":"dhcp"}`, `{}`)); err != nil {
		t.Error(err)
	}
}

func TestWiredPort(t *testing.T) {
	mk := func(id, typ string) wsman.Instance {
		var in wsman.Instance
		in.Set("InstanceID", id)
		if typ != "" {
			in.Set("PhysicalConnectionType", typ)
		}
		return in
	}
	if p, ok := wiredPort([]wsman.Instance{mk("Settings 1", "3"), mk("Settings 0", "0")}); !ok || p.Value("InstanceID") != "Settings 0" {
		t.Errorf("by type: %v %v", p, ok)
	}
	if p, ok := wiredPort([]wsman.Instance{mk("Settings 1", ""), mk("Settings 0", "")}); !ok || p.Value("InstanceID") != "Settings 0" {
		t.Errorf("by instance: %v %v", p, ok)
	}
	if _, ok := wiredPort([]wsman.Instance{mk("Settings 1", "3")}); ok {
		t.Error("a wireless-only device has a wired port")
	}
}

// TestAgentAppliesNetworkProfile: an rpc-go agent activating with a
// profile that sets the network gets it on the wired port, through the
// agent's relay, after activation in CCM.
func TestAgentAppliesNetworkProfile(t *testing.T) {
	r := newAgentRig(t)
	if err := r.store.Profiles().Put(context.Background(), store.Profile{Name: "ccm-static", Settings: json.RawMessage(`{"mode":"ccm","network":"static"}`)}, "test", ""); err != nil {
		t.Fatal(err)
	}
	d := newSimDevice(t)
	m := fakeRPC(t, r.url, "activate --profile ccm-static", enrolToken, d, nil)
	if m.Method != rps.MethodSuccess {
		t.Fatalf("got %s %q", m.Method, m.Message)
	}
	if d.ControlMode() != amtsim.ModeCCM {
		t.Fatalf("mode %d", d.ControlMode())
	}
	if got := portFlags(simPort(t, d, " 0")); got != "dhcp=false sync=true sharedstatic=true" {
		t.Fatalf("wired port: %s", got)
	}
	if v := r.reg.CounterVec("amtd_activations_started_total", "", "path").With("agent-ccm").Value(); v != 1 {
		t.Fatalf("agent-ccm activations started: %v", v)
	}
}
