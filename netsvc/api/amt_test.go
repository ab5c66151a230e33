package api

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"amtd/amt/guid"
	"amtd/amtsim"
	"amtd/daemon/config"
	"amtd/metrics"
	"amtd/netsvc"
	"amtd/netsvc/cira"
	"amtd/pki"
	"amtd/secret"
	"amtd/store"
)

// Passwords the CIRA scenario creates; none may leave the store.
const (
	simAdminPass = "Adm!n-Sim-Pass-7731"
	simMPSUser   = "amtapisim0001"
	simMPSPass   = "Mps!SimPass-0042"
	simUUID      = "4c4c4544-0042-3510-8052-b4c04f4e7001"
	simOffUUID   = "4c4c4544-0042-3510-8052-b4c04f4e7002"
)

// ciraEnv is the API over HTTPS with a real CIRA service on loopback TLS
// and the same store, as the daemon wires them.
type ciraEnv struct {
	*env
	cira     *cira.Service
	ciraAddr string
	ciraLog  *logBuf
}

func newCIRAEnv(t testing.TB) *ciraEnv {
	t.Helper()
	ce := &ciraEnv{ciraLog: &logBuf{}}
	ce.env = newEnvDevices(t, false, func(st *store.Store, lns *netsvc.Listeners) DeviceDialer {
		cfg := &config.Config{
			Site: config.Site{Hostname: "amtd.corp.example.com", Domains: []string{"corp.example.com"},
				Addresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")}},
			CIRA: config.CIRA{Enable: true, Listen: "127.0.0.1:0", KeepAlive: 30 * time.Second, IdleTimeout: 90 * time.Second},
		}
		svc, err := cira.New(cfg, netsvc.Deps{Log: slog.New(slog.NewTextHandler(ce.ciraLog, nil)), Store: st,
			Metrics: metrics.NewRegistry(), Listeners: lns})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := svc.Close(ctx); err != nil {
				t.Errorf("cira close: %v", err)
			}
		})
		f, err := lns.File("cira")
		if err != nil || f == nil {
			t.Fatalf("cira socket: %v", err)
		}
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		ce.ciraAddr = ln.Addr().String()
		ln.Close()
		ce.cira = svc
		return svc
	})
	return ce
}

func (ce *ciraEnv) addDevice(uuid string) { addSimDevice(ce.t, ce.st, uuid) }

// device starts a simulated device for the CIRA service and waits until
// its link forwards WS-Man.
func (ce *ciraEnv) device(t *testing.T, uuid string) *amtsim.Device {
	t.Helper()
	d := startSimDevice(t, ce.st, ce.ciraAddr, uuid, nil)
	waitUntil(t, "the device's CIRA link", func() bool { return ce.cira.ConnectedDevices() == 1 })
	return d
}

// addSimDevice stores a device as amtd's activation leaves it: a row with
// its MPS user, and current MPS and AMT admin passwords.
func addSimDevice(t testing.TB, st *store.Store, uuid string) {
	t.Helper()
	ctx := context.Background()
	if err := st.Devices().Put(ctx, store.Device{UUID: uuid, CIRA: store.CIRAState{MPSUsername: simMPSUser}}); err != nil {
		t.Fatal(err)
	}
	for kind, pw := range map[store.SecretKind]string{store.MPS: simMPSPass, store.AMTAdmin: simAdminPass} {
		if err := st.Secrets().SetPending(ctx, uuid, kind, secret.FromString(pw), "test"); err != nil {
			t.Fatal(err)
		}
		if err := st.Secrets().Promote(ctx, uuid, kind); err != nil {
			t.Fatal(err)
		}
	}
}

// startSimDevice starts an amtsim AMT activated with simAdminPass and
// configured for CIRA to ciraAddr (spec/activation.md §9 step 4), and
// waits until the store shows its link forwarding 16992 (the CIRA service
// writes links every few seconds).
func startSimDevice(t *testing.T, st *store.Store, ciraAddr, uuid string, faults *amtsim.Faults) *amtsim.Device {
	t.Helper()
	u, err := guid.Parse(uuid)
	if err != nil {
		t.Fatal(err)
	}
	v, err := amtsim.ParseVersion("16")
	if err != nil {
		t.Fatal(err)
	}
	d, err := amtsim.New(amtsim.Config{UUID: u, Version: v, Net: amtsim.NetIdentity{Suffix: "corp.example.com"},
		Logger: slog.New(slog.DiscardHandler), Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	ha1 := md5.Sum([]byte("admin:" + d.Realm() + ":" + simAdminPass))
	if code := d.Setup(2, hex.EncodeToString(ha1[:])); code != 0 {
		t.Fatalf("Setup: %d", code)
	}
	ca, err := pki.Load(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	if _, code := d.AddTrustedRootCertificate(base64.StdEncoding.EncodeToString(ca.RootDER())); code != 0 {
		t.Fatalf("AddTrustedRootCertificate: %d", code)
	}
	sap, code := d.AddMpServer(amtsim.MPServer{AccessInfo: "amtd.corp.example.com", InfoFormat: 201, Port: 4433, AuthMethod: 2,
		Username: simMPSUser, Password: simMPSPass, CN: "amtd.corp.example.com"})
	if code != 0 {
		t.Fatalf("AddMpServer: %d", code)
	}
	if _, code := d.AddRemoteAccessPolicyRule(2, 0, "AAAAAAAAABk=", sap); code != 0 {
		t.Fatalf("AddRemoteAccessPolicyRule: %d", code)
	}
	d.EnableCIRA(amtsim.CIRAOptions{DialAddr: ciraAddr, BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	t.Cleanup(d.StopCIRA)
	waitUntil(t, "the device's CIRA link forwarding 16992", func() bool {
		dev, err := st.Devices().Get(context.Background(), uuid)
		return err == nil && d.CIRAConnected() && dev.CIRA.Connected && slices.Contains(dev.CIRA.BoundPorts, 16992)
	})
	return d
}

// waitUntil polls cond; the deadline is generous (2 cores shared, -race).
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (ce *ciraEnv) powerState(tok, uuid string) int {
	ce.t.Helper()
	st, b := ce.do("GET", "/api/v1/amt/power/state/"+uuid, bearer(tok), nil)
	if st != 200 {
		ce.t.Fatalf("power state: %d %s", st, b)
	}
	var got map[string]int
	if err := json.Unmarshal(b, &got); err != nil {
		ce.t.Fatalf("power state body %s: %v", b, err)
	}
	n, ok := got["powerstate"]
	if _, os := got["OSPowerSavingState"]; !ok || !os {
		ce.t.Fatalf("power state body %s: want powerstate and OSPowerSavingState", b)
	}
	return n
}

// TestAMTOverCIRA: the console API reads and changes a simulated device's
// power state and reads its versions through a real CIRA link, with the
// admin password only amtd's store holds; roles, unknown and disconnected
// devices answer clear errors; every call is audited with the device; the
// passwords appear in no response, log line or audit row.
func TestAMTOverCIRA(t *testing.T) {
	ce := newCIRAEnv(t)
	ce.addDevice(simUUID)
	d := ce.device(t, simUUID)
	viewer, operator := ce.key(store.RoleViewer, "viewer"), ce.key(store.RoleOperator, "op")
	var bodies []string
	call := func(method, path, tok, body string) (int, string) {
		t.Helper()
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		st, b := ce.do(method, path, bearer(tok), r)
		bodies = append(bodies, string(b))
		return st, string(b)
	}

	// Read: the device starts on (2). The GUID in upper case works too.
	if n := ce.powerState(viewer, strings.ToUpper(simUUID)); n != 2 || d.PowerState() != 2 {
		t.Fatalf("powerstate %d, device %d; want 2", n, d.PowerState())
	}

	// An operator powers it off (8, off-soft): amtsim's state changes and
	// the API reads it back.
	st, b := call("POST", "/api/v1/amt/power/action/"+simUUID, operator, `{"action": 8}`)
	if st != 200 {
		t.Fatalf("power action: %d %s", st, b)
	}
	var res struct {
		Body struct {
			ReturnValue    *int
			ReturnValueStr string
		}
	}
	if err := json.Unmarshal([]byte(b), &res); err != nil || res.Body.ReturnValue == nil || *res.Body.ReturnValue != 0 || res.Body.ReturnValueStr != "SUCCESS" {
		t.Fatalf("power action body %s (%v)", b, err)
	}
	if d.PowerState() != 8 {
		t.Fatalf("device power state %d after action 8", d.PowerState())
	}
	if n := ce.powerState(viewer, simUUID); n != 8 {
		t.Fatalf("powerstate %d after action 8", n)
	}
	// Power cycle (5) brings it back on.
	if st, b := call("POST", "/api/v1/amt/power/action/"+simUUID, operator, `{"action": 5}`); st != 200 || d.PowerState() != 2 {
		t.Fatalf("power cycle: %d %s, device %d", st, b, d.PowerState())
	}

	// A viewer may not act; nothing changes.
	if st, b := call("POST", "/api/v1/amt/power/action/"+simUUID, viewer, `{"action": 8}`); st != 403 || d.PowerState() != 2 {
		t.Fatalf("viewer power action: %d %s, device %d", st, b, d.PowerState())
	}
	// Bad actions are refused before the device is asked.
	for _, body := range []string{`{"action": 1}`, `{"action": 9}`, `{"action": 18}`, `{"action": 101}`, `{"action": 502}`, `{}`, `{"action": "8"}`, `not json`, `{"action": 8, "x": 1}`} {
		if st, b := call("POST", "/api/v1/amt/power/action/"+simUUID, operator, body); st != 400 || d.PowerState() != 2 {
			t.Fatalf("action body %s: %d %s, device %d", body, st, b, d.PowerState())
		}
	}

	// Versions: CIM_SoftwareIdentity with the AMT entry, and the setup service.
	st, b = call("GET", "/api/v1/amt/version/"+simUUID, viewer, "")
	if st != 200 {
		t.Fatalf("version: %d %s", st, b)
	}
	var ver struct {
		SW struct {
			Responses []map[string]any `json:"responses"`
			Status    int              `json:"status"`
		} `json:"CIM_SoftwareIdentity"`
		Setup struct {
			Response  map[string]any `json:"response"`
			Responses struct {
				Body map[string]any
			} `json:"responses"`
			Status int `json:"status"`
		} `json:"AMT_SetupAndConfigurationService"`
	}
	if err := json.Unmarshal([]byte(b), &ver); err != nil {
		t.Fatalf("version body %s: %v", b, err)
	}
	amtVer := ""
	for _, r := range ver.SW.Responses {
		if r["InstanceID"] == "AMT" {
			amtVer, _ = r["VersionString"].(string)
		}
	}
	if !strings.HasPrefix(amtVer, "16.") || ver.SW.Status != 200 {
		t.Fatalf("version: AMT entry %q, want the device's 16.x, in %s", amtVer, b)
	}
	if ver.Setup.Status != 200 || ver.Setup.Response["ProvisioningState"] != float64(2) || ver.Setup.Responses.Body["ProvisioningState"] != float64(2) {
		t.Fatalf("version: AMT_SetupAndConfigurationService %v, want ProvisioningState 2 (post)", ver.Setup.Response)
	}

	// Unknown device: 404 naming it.
	unknown := "4c4c4544-0042-3510-8052-b4c04f4e7fff"
	if st, b := call("GET", "/api/v1/amt/power/state/"+unknown, viewer, ""); st != 404 || !strings.Contains(b, "not found") {
		t.Fatalf("unknown device: %d %s", st, b)
	}
	// Known but not connected: MPS's 404 "Device not found/connected".
	ce.addDevice(simOffUUID)
	if st, b := call("GET", "/api/v1/amt/power/state/"+simOffUUID, viewer, ""); st != 404 || !strings.Contains(b, "not found/connected") {
		t.Fatalf("disconnected device: %d %s", st, b)
	}
	// The device drops its link: the same clear error.
	d.StopCIRA()
	waitUntil(t, "the link gone", func() bool { return ce.cira.ConnectedDevices() == 0 })
	if st, b := call("POST", "/api/v1/amt/power/action/"+simUUID, operator, `{"action": 8}`); st != 404 || !strings.Contains(b, "not found/connected") || d.PowerState() != 2 {
		t.Fatalf("power action after the link dropped: %d %s, device %d", st, b, d.PowerState())
	}
	// A malformed GUID is a 400.
	if st, b := call("GET", "/api/v1/amt/version/not-a-guid", viewer, ""); st != 400 {
		t.Fatalf("bad guid: %d %s", st, b)
	}

	// Every call is audited with the device and its outcome.
	es, err := ce.st.AuditList(context.Background(), store.AuditQuery{Object: "device/" + simUUID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range es {
		seen[e.Action+" "+e.Result]++
	}
	for _, want := range []string{"api.amt.power.state ok", "api.amt.power.action ok", "api.amt.version ok",
		"api.amt.power.action 404 Not Found"} {
		if seen[want] == 0 {
			t.Errorf("no audit row %q for the device in %v", want, seen)
		}
	}
	if seen["api.amt.power.action ok"] != 2 {
		t.Errorf("%d successful power actions audited, want 2: %v", seen["api.amt.power.action ok"], seen)
	}

	// The passwords are nowhere a person sees.
	noPasswords(t, ce, bodies)
}

// TestAMTPowerActionRefusedByDevice: a device that answers
// RequestPowerStateChange with a non-zero ReturnValue gives 200 with that
// code, as MPS, and its power state is unchanged.
func TestAMTPowerActionRefusedByDevice(t *testing.T) {
	ce := newCIRAEnv(t)
	ce.addDevice(simUUID)
	startSimDevice(t, ce.st, ce.ciraAddr, simUUID, &amtsim.Faults{FailMethod: "RequestPowerStateChange", FailCode: 6})
	waitUntil(t, "the device's CIRA link", func() bool { return ce.cira.ConnectedDevices() == 1 })
	op := ce.key(store.RoleOperator, "op")
	st, b := ce.do("POST", "/api/v1/amt/power/action/"+simUUID, bearer(op), strings.NewReader(`{"action": 8}`))
	if st != 200 || !strings.Contains(string(b), `"ReturnValue":6`) || !strings.Contains(string(b), `"ReturnValueStr":"IN_USE"`) {
		t.Fatalf("power action the device refuses: %d %s", st, b)
	}
	if n := ce.powerState(ce.key(store.RoleViewer, "v"), simUUID); n != 2 {
		t.Fatalf("powerstate %d after a refused action, want 2", n)
	}
}

// TestAMTWithoutCIRA: with [CIRA] off the /amt routes say so.
func TestAMTWithoutCIRA(t *testing.T) {
	e := newEnv(t, false)
	e.putDevice(uuidA, "a", true)
	tok := e.key(store.RoleOperator, "op")
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/v1/amt/power/state/" + uuidA, ""},
		{"POST", "/api/v1/amt/power/action/" + uuidA, `{"action": 2}`},
		{"GET", "/api/v1/amt/version/" + uuidA, ""},
	} {
		var r io.Reader
		if c.body != "" {
			r = strings.NewReader(c.body)
		}
		st, b := e.do(c.method, c.path, bearer(tok), r)
		if st != 404 || !strings.Contains(string(b), "[CIRA] is off") {
			t.Errorf("%s %s: %d %s", c.method, c.path, st, b)
		}
	}
}
