package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"amtd/amtsim"
	"amtd/store"
)

// settingsCall is one API call in a scenario; every body is kept for the
// password check.
type settingsCall struct {
	t      *testing.T
	ce     *ciraEnv
	bodies []string
}

func (sc *settingsCall) do(method, path, tok, body string) (int, string) {
	sc.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	st, b := sc.ce.do(method, path, bearer(tok), r)
	sc.bodies = append(sc.bodies, string(b))
	return st, string(b)
}

// json calls and decodes a 200 answer into v.
func (sc *settingsCall) json(method, path, tok, body string, v any) {
	sc.t.Helper()
	st, b := sc.do(method, path, tok, body)
	if st != 200 {
		sc.t.Fatalf("%s %s: %d %s", method, path, st, b)
	}
	if err := json.Unmarshal([]byte(b), v); err != nil {
		sc.t.Fatalf("%s %s: body %s: %v", method, path, b, err)
	}
}

type powerResult struct {
	Body struct {
		ReturnValue    *int
		ReturnValueStr string
	}
}

// TestAMTSettingsReadOverCIRA: general settings, hardware, capabilities,
// boot sources and network settings of a simulated device read through a
// real CIRA link, in MPS's shapes, with the device's values.
func TestAMTSettingsReadOverCIRA(t *testing.T) {
	ce := newCIRAEnv(t)
	ce.addDevice(simUUID)
	d := ce.device(t, simUUID)
	viewer := ce.key(store.RoleViewer, "viewer")
	sc := &settingsCall{t: t, ce: ce}
	base := "/api/v1/amt/"

	var gs struct{ Body map[string]any }
	sc.json("GET", base+"generalSettings/"+simUUID, viewer, "", &gs)
	if gs.Body["DigestRealm"] != d.Realm() || gs.Body["InstanceID"] != "Intel(r) AMT: General Settings" {
		t.Fatalf("general settings %v: want the device's realm %s", gs.Body, d.Realm())
	}

	type one struct {
		Response map[string]any `json:"response"`
		Status   string         `json:"status"`
	}
	type list struct {
		Responses []map[string]any `json:"responses"`
		Status    string           `json:"status"`
	}
	var hw struct {
		CSP       one  `json:"CIM_ComputerSystemPackage"`
		Chassis   one  `json:"CIM_Chassis"`
		Card      one  `json:"CIM_Card"`
		BIOS      one  `json:"CIM_BIOSElement"`
		Processor list `json:"CIM_Processor"`
		Memory    list `json:"CIM_PhysicalMemory"`
		Media     list `json:"CIM_MediaAccessDevice"`
		Package   list `json:"CIM_PhysicalPackage"`
		Packaging list `json:"CIM_SystemPackaging"`
		Chip      list `json:"CIM_Chip"`
	}
	sc.json("GET", base+"hardwareInfo/"+simUUID, viewer, "", &hw)
	for name, o := range map[string]one{"CIM_ComputerSystemPackage": hw.CSP, "CIM_Chassis": hw.Chassis, "CIM_Card": hw.Card, "CIM_BIOSElement": hw.BIOS} {
		if o.Status != "200" || len(o.Response) == 0 {
			t.Errorf("hardwareInfo %s: %+v", name, o)
		}
	}
	for name, l := range map[string]list{"CIM_Processor": hw.Processor, "CIM_PhysicalMemory": hw.Memory, "CIM_MediaAccessDevice": hw.Media,
		"CIM_PhysicalPackage": hw.Package, "CIM_SystemPackaging": hw.Packaging, "CIM_Chip": hw.Chip} {
		if l.Status != "200" || len(l.Responses) == 0 {
			t.Errorf("hardwareInfo %s: %+v", name, l)
		}
	}
	// The fixture has two DIMMs and two disks; the packaging lists carry
	// their classes' properties.
	if len(hw.Memory.Responses) != 2 || len(hw.Media.Responses) != 2 {
		t.Errorf("hardwareInfo: %d memory modules and %d disks, want 2 and 2", len(hw.Memory.Responses), len(hw.Media.Responses))
	}
	if hw.Packaging.Responses[0]["PlatformGUID"] == nil || hw.Package.Responses[0]["CreationClassName"] != "CIM_Card" {
		t.Errorf("hardwareInfo packaging %v, package %v", hw.Packaging.Responses, hw.Package.Responses)
	}

	var caps map[string]int
	sc.json("GET", base+"power/capabilities/"+simUUID, viewer, "", &caps)
	for name, n := range map[string]int{"Power up": 2, "Power cycle": 5, "Power down": 8, "Reset": 10, "Soft-off": 12, "Soft-reset": 14,
		"Sleep": 4, "Hibernate": 7, "Power up to BIOS": 100, "Reset to BIOS": 101, "Reset to IDE-R Floppy": 200,
		"Power on to IDE-R CDROM": 203, "Reset to PXE": 400, "Power on to PXE": 401} {
		if caps[name] != n {
			t.Errorf("capabilities %q = %d, want %d (all: %v)", name, caps[name], n, caps)
		}
	}
	for _, n := range caps {
		if n == 104 || n == 300 || n == 301 {
			t.Errorf("capabilities list %d, which the fixture's AMT_BootCapabilities lacks: %v", n, caps)
		}
	}

	var sources []map[string]any
	sc.json("GET", base+"power/bootSources/"+simUUID, viewer, "", &sources)
	ids := []string{}
	for _, s := range sources {
		ids = append(ids, s["instanceID"].(string))
		if s["failThroughSupported"] != float64(2) {
			t.Errorf("boot source %v: failThroughSupported not the number 2", s)
		}
	}
	if strings.Join(ids, "|") != "Intel(r) AMT: Force Hard-drive Boot|Intel(r) AMT: Force PXE Boot|Intel(r) AMT: Force CD/DVD Boot" {
		t.Errorf("boot sources %v", ids)
	}

	var ns struct {
		Wired, Wireless map[string]any
	}
	sc.json("GET", base+"networkSettings/"+simUUID, viewer, "", &ns)
	if ns.Wired["instanceID"] != "Intel(r) AMT Ethernet Port Settings 0" || ns.Wired["macAddress"] != "c8-d9-d2-7a-1e-33" ||
		ns.Wired["dhcpEnabled"] != true || ns.Wired["physicalConnectionType"] != "Integrated LAN NIC" {
		t.Errorf("wired %v", ns.Wired)
	}
	if lp, _ := json.Marshal(ns.Wired["linkPolicy"]); string(lp) != `["S0 AC","Sx AC"]` {
		t.Errorf("wired linkPolicy %s", lp)
	}
	if x, _ := ns.Wired["ieee8021x"].(map[string]any); x == nil {
		t.Errorf("wired has no ieee8021x: %v", ns.Wired)
	}
	if ns.Wireless["linkPreference"] != "Host" || ns.Wireless["physicalConnectionType"] != "Wireless LAN" ||
		ns.Wireless["consoleTCPMaxRetransmissions"] != float64(5) {
		t.Errorf("wireless %v", ns.Wireless)
	}
	nets, _ := ns.Wireless["wifiNetworks"].([]any)
	if len(nets) != 1 || nets[0].(map[string]any)["ssid"] != "testSSID" || nets[0].(map[string]any)["authenticationMethod"] != "OpenSystem" {
		t.Errorf("wireless networks %v", nets)
	}

	// Each read is audited with the device.
	es, err := ce.st.AuditList(context.Background(), store.AuditQuery{Object: "device/" + simUUID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range es {
		seen[e.Action+" "+e.Result] = true
	}
	for _, a := range []string{"generalSettings", "hardwareInfo", "power.capabilities", "power.bootSources", "networkSettings"} {
		if !seen["api.amt."+a+" ok"] {
			t.Errorf("no audit row api.amt.%s ok: %v", a, seen)
		}
	}
	noPasswords(t, ce, sc.bodies)
}

// noPasswords checks the scenario's passwords appear in no response, log
// line, audit row or the database file.
func noPasswords(t *testing.T, ce *ciraEnv, bodies []string) {
	t.Helper()
	var audit strings.Builder
	all, _ := ce.st.AuditList(context.Background(), store.AuditQuery{Limit: 1000})
	for _, e := range all {
		audit.WriteString(e.Actor + e.Action + e.Object + e.Reason + e.Result + "\n")
	}
	db, err := os.ReadFile(ce.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{simAdminPass, simMPSPass} {
		for what, text := range map[string]string{"API responses": strings.Join(bodies, "\n"), "API log": ce.logs.String(),
			"CIRA log": ce.ciraLog.String(), "audit trail": audit.String(), "database file": string(db)} {
			if strings.Contains(text, pw) {
				t.Errorf("a password appears in the %s", what)
			}
		}
	}
}

// TestAMTFeaturesAndBootOverCIRA: an operator turns redirection features
// on and boots the simulated host to BIOS setup with SOL, to PXE and to
// IDE-R; amtsim's state and what its host booted into follow. Bad input
// and what the device cannot do are refused with 400 (or 409 for a
// disabled feature) and change nothing; a viewer may read but not act.
func TestAMTFeaturesAndBootOverCIRA(t *testing.T) {
	ce := newCIRAEnv(t)
	ce.addDevice(simUUID)
	d := ce.device(t, simUUID)
	viewer, op := ce.key(store.RoleViewer, "viewer"), ce.key(store.RoleOperator, "op")
	sc := &settingsCall{t: t, ce: ce}
	features := "/api/v1/amt/features/" + simUUID
	boot := "/api/v1/amt/power/bootOptions/" + simUUID

	type feat struct {
		UserConsent  *string `json:"userConsent"`
		Redirection  bool    `json:"redirection"`
		KVM, SOL     bool
		IDER         bool
		OCR          bool `json:"ocr"`
		KVMAvailable bool `json:"kvmAvailable"`
		OptInState   *int `json:"optInState"`
	}
	var f feat
	sc.json("GET", features, viewer, "", &f)
	snap := d.Snapshot()
	if f.UserConsent == nil || *f.UserConsent != "all" || snap.OptInRequired != 4294967295 || f.SOL || f.IDER || f.KVM ||
		!f.KVMAvailable || f.OptInState == nil || f.Redirection != snap.RedirListener {
		t.Fatalf("features at start %+v, device %+v", f, snap)
	}

	// Bad bodies and what CCM forbids change nothing.
	for _, body := range []string{`{}`, `not json`, `{"userConsent": "some", "enableSOL": true, "enableIDER": false, "enableKVM": false}`,
		`{"userConsent": "all", "enableSOL": "yes", "enableIDER": false, "enableKVM": false}`,
		`{"userConsent": "all", "enableSOL": true, "enableIDER": false}`,
		`{"userConsent": "all", "enableSOL": true, "enableIDER": false, "enableKVM": false, "x": 1}`,
		`{"userConsent": "none", "enableSOL": true, "enableIDER": false, "enableKVM": false}`,
		`{"userConsent": "KVM", "enableSOL": true, "enableIDER": false, "enableKVM": false}`} {
		st, b := sc.do("POST", features, op, body)
		if st != 400 || !strings.Contains(b, "userConsent") {
			t.Errorf("features %s: %d %s", body, st, b)
		}
	}
	if got := d.Snapshot(); got.RedirectionState != snap.RedirectionState || got.KVMState != snap.KVMState ||
		got.RedirListener != snap.RedirListener || got.OptInRequired != snap.OptInRequired {
		t.Fatalf("refused feature changes changed the device: %+v → %+v", snap, got)
	}
	if st, b := sc.do("POST", features, viewer, `{"userConsent": "all", "enableSOL": true, "enableIDER": false, "enableKVM": true}`); st != 403 {
		t.Fatalf("viewer set features: %d %s", st, b)
	}

	// SOL and KVM on, IDE-R off, One Click Recovery on.
	var res map[string]string
	sc.json("POST", features, op, `{"userConsent": "ALL", "enableSOL": true, "enableIDER": false, "enableKVM": true, "ocr": true}`, &res)
	if res["status"] == "" {
		t.Fatalf("set features answer %v", res)
	}
	if s := d.Snapshot(); s.RedirectionState != 32770 || !s.RedirListener || s.KVMState != 2 {
		t.Fatalf("device after set features: redirection %d listener %v KVM %d", s.RedirectionState, s.RedirListener, s.KVMState)
	}
	sc.json("GET", features, viewer, "", &f)
	if !f.SOL || f.IDER || !f.KVM || !f.Redirection || !f.OCR {
		t.Fatalf("features after set %+v", f)
	}

	lastBoot := d.LastBoot()
	// Boot options the API refuses before asking the device.
	for _, body := range []string{`{}`, `{"action": 104}`, `{"action": 105}`, `{"action": 300}`, `{"action": 8}`, `{"action": 500}`,
		`{"action": 999}`, `{"action": 101, "x": 1}`, `{"action": 101, "useSOL": "yes"}`,
		`{"action": 105, "bootDetails": {"url": "https://boot.example.com/x.iso", "password": "Secr3t-Boot!"}}`,
		`{"action": 101, "bootDetails": {"bootPath": "\\EFI\\x.efi"}}`} {
		if st, b := sc.do("POST", boot, op, body); st != 400 {
			t.Errorf("bootOptions %s: %d %s", body, st, b)
		}
	}
	// IDE-R is off: refused with what to do.
	if st, b := sc.do("POST", boot, op, `{"action": 202}`); st != 409 || !strings.Contains(b, "enableIDER") {
		t.Errorf("IDE-R boot with IDE-R off: %d %s", st, b)
	}
	// The host is on: powering it on to BIOS is refused with the reset to use.
	if st, b := sc.do("POST", boot, op, `{"action": 100}`); st != 409 || !strings.Contains(b, "use 101") {
		t.Errorf("power on to BIOS while on: %d %s", st, b)
	}
	if st, b := sc.do("POST", boot, viewer, `{"action": 101}`); st != 403 {
		t.Errorf("viewer bootOptions: %d %s", st, b)
	}
	if got := d.LastBoot(); got != lastBoot || d.PowerState() != 2 {
		t.Fatalf("refused boot options booted the host: %+v → %+v, power %d", lastBoot, got, d.PowerState())
	}

	bootOK := func(body string) amtsim.Boot {
		t.Helper()
		var pr powerResult
		sc.json("POST", boot, op, body, &pr)
		if pr.Body.ReturnValue == nil || *pr.Body.ReturnValue != 0 || pr.Body.ReturnValueStr != "SUCCESS" {
			t.Fatalf("bootOptions %s: %+v", body, pr.Body)
		}
		b := d.LastBoot()
		if b.Count != lastBoot.Count+1 {
			t.Fatalf("bootOptions %s: the host did not boot (%+v after %+v)", body, b, lastBoot)
		}
		lastBoot = b
		return b
	}
	// Reset to BIOS setup with SOL.
	if b := bootOK(`{"action": 101, "useSOL": true}`); !b.BIOSSetup || !b.UseSOL || b.UseIDER || b.Source != "" {
		t.Fatalf("reset to BIOS with SOL booted %+v", b)
	}
	// Reset to PXE, no SOL: nothing of the last boot stays.
	if b := bootOK(`{"action": 400, "useSOL": false, "bootDetails": {}}`); b.BIOSSetup || b.UseSOL || b.Source != "Intel(r) AMT: Force PXE Boot" {
		t.Fatalf("reset to PXE booted %+v", b)
	}
	// Off, then power on to PXE.
	var pr powerResult
	sc.json("POST", "/api/v1/amt/power/action/"+simUUID, op, `{"action": 8}`, &pr)
	if d.PowerState() != 8 {
		t.Fatalf("power state %d after off", d.PowerState())
	}
	if b := bootOK(`{"action": 401}`); b.Source != "Intel(r) AMT: Force PXE Boot" || d.PowerState() != 2 {
		t.Fatalf("power on to PXE booted %+v, power %d", b, d.PowerState())
	}
	// IDE-R on, then reset to the IDE-R CD with SOL.
	sc.json("POST", features, op, `{"userConsent": "all", "enableSOL": true, "enableIDER": true, "enableKVM": true}`, &res)
	if s := d.Snapshot(); s.RedirectionState != 32771 {
		t.Fatalf("redirection state %d after enabling IDE-R", s.RedirectionState)
	}
	if b := bootOK(`{"action": 202, "useSOL": true}`); !b.UseIDER || b.IDERBootDevice != 1 || !b.UseSOL || b.BIOSSetup ||
		b.Source != "Intel(r) AMT: Force CD/DVD Boot" {
		t.Fatalf("reset to IDE-R CD booted %+v", b)
	}
	// Everything off: the listener goes off too.
	sc.json("POST", features, op, `{"userConsent": "all", "enableSOL": false, "enableIDER": false, "enableKVM": false}`, &res)
	if s := d.Snapshot(); s.RedirectionState != 32768 || s.RedirListener || s.KVMState != 3 {
		t.Fatalf("device after turning features off: %d %v %d", s.RedirectionState, s.RedirListener, s.KVMState)
	}
	// SOL is off now: a boot with SOL is refused.
	if st, b := sc.do("POST", boot, op, `{"action": 101, "useSOL": true}`); st != 409 || !strings.Contains(b, "enableSOL") {
		t.Errorf("boot with SOL off: %d %s", st, b)
	}

	// OS power saving (500/501) through power/action.
	osState := func() int {
		t.Helper()
		var ps map[string]int
		sc.json("GET", "/api/v1/amt/power/state/"+simUUID, viewer, "", &ps)
		return ps["OSPowerSavingState"]
	}
	for _, c := range []struct{ action, want int }{{501, 3}, {501, 3}, {500, 2}} {
		var pr powerResult
		sc.json("POST", "/api/v1/amt/power/action/"+simUUID, op, `{"action": `+itoa(c.action)+`}`, &pr)
		if pr.Body.ReturnValue == nil || *pr.Body.ReturnValue != 0 || osState() != c.want {
			t.Fatalf("action %d: %+v, OSPowerSavingState %d, want %d", c.action, pr.Body, osState(), c.want)
		}
	}

	es, err := ce.st.AuditList(context.Background(), store.AuditQuery{Object: "device/" + simUUID, Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range es {
		seen[e.Action+" "+e.Result]++
	}
	for _, want := range []string{"api.amt.features ok", "api.amt.features.set ok", "api.amt.power.bootOptions ok",
		"api.amt.power.bootOptions 409 Conflict", "api.amt.features.set 400 Bad Request"} {
		if seen[want] == 0 {
			t.Errorf("no audit row %q: %v", want, seen)
		}
	}
	if seen["api.amt.power.bootOptions ok"] != 4 {
		t.Errorf("%d successful boots audited, want 4", seen["api.amt.power.bootOptions ok"])
	}
	noPasswords(t, ce, sc.bodies)
	for _, b := range sc.bodies {
		if strings.Contains(b, "Secr3t-Boot!") {
			t.Errorf("a bootDetails password came back: %s", b)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestAMTDisconnectAndDeactivate: an operator drops a device's CIRA link
// (it reconnects by itself); an admin deactivates it over CIRA: amtsim is
// back in pre-provisioning, the store says deactivated and still holds
// its passwords.
func TestAMTDisconnectAndDeactivate(t *testing.T) {
	ce := newCIRAEnv(t)
	ce.addDevice(simUUID)
	d := ce.device(t, simUUID)
	viewer, op, admin := ce.key(store.RoleViewer, "viewer"), ce.key(store.RoleOperator, "op"), ce.key(store.RoleAdmin, "admin")
	sc := &settingsCall{t: t, ce: ce}
	ctx := context.Background()

	before, err := ce.st.Devices().Get(ctx, simUUID)
	if err != nil {
		t.Fatal(err)
	}
	if st, b := sc.do("DELETE", "/api/v1/devices/disconnect/"+simUUID, viewer, ""); st != 403 {
		t.Fatalf("viewer disconnect: %d %s", st, b)
	}
	var res map[string]any
	sc.json("DELETE", "/api/v1/devices/disconnect/"+strings.ToUpper(simUUID), op, "", &res)
	if res["success"] != float64(200) || !strings.Contains(res["description"].(string), simUUID) {
		t.Fatalf("disconnect answer %v", res)
	}
	// The link went and the device made a new one.
	waitUntil(t, "a new CIRA link after the disconnect", func() bool {
		dev, err := ce.st.Devices().Get(ctx, simUUID)
		return err == nil && dev.CIRA.Connected && dev.CIRA.ConnectedSince.After(before.CIRA.ConnectedSince)
	})
	if st, b := sc.do("DELETE", "/api/v1/devices/disconnect/4c4c4544-0042-3510-8052-b4c04f4e7fff", op, ""); st != 404 {
		t.Fatalf("disconnect of an unknown device: %d %s", st, b)
	}
	ce.addDevice(simOffUUID)
	if st, b := sc.do("DELETE", "/api/v1/devices/disconnect/"+simOffUUID, op, ""); st != 404 || !strings.Contains(b, "not found/connected") {
		t.Fatalf("disconnect of a device without a link: %d %s", st, b)
	}

	// Deactivation is for admins.
	waitUntil(t, "the device's link forwarding WS-Man again", func() bool { return ce.cira.ConnectedDevices() == 1 && d.CIRAConnected() })
	if st, b := sc.do("DELETE", "/api/v1/amt/deactivate/"+simUUID, op, ""); st != 403 || d.ControlMode() == 0 {
		t.Fatalf("operator deactivate: %d %s, mode %d", st, b, d.ControlMode())
	}
	var out map[string]string
	sc.json("DELETE", "/api/v1/amt/deactivate/"+simUUID, admin, "", &out)
	if out["status"] != "SUCCESS" || d.ControlMode() != 0 {
		t.Fatalf("deactivate: %v, device mode %d", out, d.ControlMode())
	}
	dev, err := ce.st.Devices().Get(ctx, simUUID)
	if err != nil {
		t.Fatal(err)
	}
	if dev.ControlMode != 0 || dev.ProvisioningState != "deactivated" {
		t.Fatalf("store after deactivate: mode %d state %q", dev.ControlMode, dev.ProvisioningState)
	}
	hist, err := ce.st.Devices().History(ctx, simUUID)
	if err != nil || len(hist) == 0 || hist[len(hist)-1].To != "deactivated" || !strings.Contains(hist[len(hist)-1].Detail, "API key") {
		t.Fatalf("history %+v (%v)", hist, err)
	}
	// The passwords stay: nothing may lock the device out.
	for _, kind := range []store.SecretKind{store.AMTAdmin, store.MPS} {
		if pw, err := ce.st.Secrets().Current(ctx, simUUID, kind); err != nil || pw.IsZero() {
			t.Fatalf("%v password after deactivate: %v", kind, err)
		}
	}
	// With its MPS settings gone the device drops CIRA; the API says so.
	waitUntil(t, "the unprovisioned device's link gone", func() bool { return ce.cira.ConnectedDevices() == 0 })
	if st, b := sc.do("DELETE", "/api/v1/amt/deactivate/"+simUUID, admin, ""); st != 404 || !strings.Contains(b, "not found/connected") {
		t.Fatalf("deactivate without a link: %d %s", st, b)
	}

	es, err := ce.st.AuditList(ctx, store.AuditQuery{Object: "device/" + simUUID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range es {
		seen[e.Action+" "+e.Result] = true
	}
	for _, want := range []string{"api.devices.disconnect ok", "api.amt.deactivate ok", "api.amt.deactivate 404 Not Found"} {
		if !seen[want] {
			t.Errorf("no audit row %q: %v", want, seen)
		}
	}
	noPasswords(t, ce, sc.bodies)
}

// TestAMTSettingsWithoutCIRA: with [CIRA] off the new routes say so.
func TestAMTSettingsWithoutCIRA(t *testing.T) {
	e := newEnv(t, false)
	e.putDevice(uuidA, "a", true)
	tok := e.key(store.RoleAdmin, "admin")
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/v1/amt/generalSettings/" + uuidA, ""},
		{"GET", "/api/v1/amt/hardwareInfo/" + uuidA, ""},
		{"GET", "/api/v1/amt/power/capabilities/" + uuidA, ""},
		{"GET", "/api/v1/amt/power/bootSources/" + uuidA, ""},
		{"POST", "/api/v1/amt/power/bootOptions/" + uuidA, `{"action": 101}`},
		{"GET", "/api/v1/amt/features/" + uuidA, ""},
		{"POST", "/api/v1/amt/features/" + uuidA, `{"userConsent": "all", "enableSOL": true, "enableIDER": false, "enableKVM": false}`},
		{"GET", "/api/v1/amt/networkSettings/" + uuidA, ""},
		{"DELETE", "/api/v1/amt/deactivate/" + uuidA, ""},
		{"DELETE", "/api/v1/devices/disconnect/" + uuidA, ""},
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

// TestAMTDeactivateRefusedByDevice: a device that answers Unprovision
// with a non-zero ReturnValue gives 200 with that code, as MPS; it stays
// activated and the store's record is unchanged.
func TestAMTDeactivateRefusedByDevice(t *testing.T) {
	ce := newCIRAEnv(t)
	ce.addDevice(simUUID)
	d := startSimDevice(t, ce.st, ce.ciraAddr, simUUID, &amtsim.Faults{FailMethod: "Unprovision", FailCode: 16})
	waitUntil(t, "the device's CIRA link", func() bool { return ce.cira.ConnectedDevices() == 1 })
	before, err := ce.st.Devices().Get(context.Background(), simUUID)
	if err != nil {
		t.Fatal(err)
	}
	st, b := ce.do("DELETE", "/api/v1/amt/deactivate/"+simUUID, bearer(ce.key(store.RoleAdmin, "admin")), nil)
	if st != 200 || !strings.Contains(string(b), `"ReturnValue":16`) {
		t.Fatalf("deactivate the device refuses: %d %s", st, b)
	}
	after, err := ce.st.Devices().Get(context.Background(), simUUID)
	if err != nil {
		t.Fatal(err)
	}
	if d.ControlMode() == 0 || after.ProvisioningState != before.ProvisioningState || after.ControlMode != before.ControlMode {
		t.Fatalf("a refused deactivate changed things: device mode %d, store %q/%d → %q/%d", d.ControlMode(),
			before.ProvisioningState, before.ControlMode, after.ProvisioningState, after.ControlMode)
	}
}

// FuzzSettingsBodies sends arbitrary bodies to the routes that take one,
// as an operator, with [CIRA] off: every answer is a JSON error, 400 for
// what the API refuses and 404 ([CIRA] is off) for what it would send on.
func FuzzSettingsBodies(f *testing.F) {
	f.Add(uint8(0), []byte(`{"action": 101, "useSOL": true}`))
	f.Add(uint8(0), []byte(`{"action": 105, "bootDetails": {"url": "https://x/y.iso"}}`))
	f.Add(uint8(1), []byte(`{"userConsent": "all", "enableSOL": true, "enableIDER": false, "enableKVM": true, "ocr": false}`))
	f.Add(uint8(1), []byte(`{"userConsent": "\u00ff", "enableSOL": null}`))
	f.Add(uint8(2), []byte(`{"action": 501}`))
	f.Add(uint8(2), []byte(`{"action": 8} {"action": 2}`))
	e := newEnv(f, false)
	e.putDevice(uuidA, "a", true)
	tok := e.key(store.RoleOperator, "op")
	h := e.svc.Handler()
	paths := []string{"/api/v1/amt/power/bootOptions/", "/api/v1/amt/features/", "/api/v1/amt/power/action/"}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		req := httptest.NewRequest("POST", paths[int(route)%len(paths)]+uuidA, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var msg apiError
		if err := json.Unmarshal(w.Body.Bytes(), &msg); err != nil || msg.Message == "" {
			t.Fatalf("answer %q to %q", w.Body.String(), body)
		}
		if w.Code != 400 && !(w.Code == 404 && strings.Contains(msg.Message, "[CIRA] is off")) {
			t.Fatalf("status %d %q for %q", w.Code, msg.Message, body)
		}
	})
}
