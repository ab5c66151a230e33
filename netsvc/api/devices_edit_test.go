package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"amtd/amt/wsman"
	"amtd/amtsim"
	"amtd/secret"
	"amtd/store"
)

// recordOf reads a device from the store, failing the test if it is gone.
func (e *env) recordOf(uuid string) store.Device {
	e.t.Helper()
	d, err := e.st.Devices().Get(context.Background(), uuid)
	if err != nil {
		e.t.Fatalf("device %s: %v", uuid, err)
	}
	return d
}

func sameRecord(a, b store.Device) bool {
	return a.FriendlyName == b.FriendlyName && slices.Equal(a.Tags, b.Tags) && a.Hostname == b.Hostname &&
		a.ControlMode == b.ControlMode && a.ProvisioningState == b.ProvisioningState && a.Updated.Equal(b.Updated)
}

func body(s string) io.Reader {
	if s == "" {
		return nil
	}
	return strings.NewReader(s)
}

// TestDeviceEditRoutes: an operator renames and tags a device with MPS's
// PATCH (and POST, which edits a known device); the answer and GET show
// it, the rest of the record is unchanged, the change is audited with old
// and new values. Viewers may not edit; every bad body is a 400 with a
// sentence and changes nothing; POST for an unknown device creates
// nothing and says how devices come into amtd.
func TestDeviceEditRoutes(t *testing.T) {
	e := newEnv(t, false)
	e.putDevice(uuidA, "pc-a", true, "old")
	viewer, op := e.key(store.RoleViewer, "v"), e.key(store.RoleOperator, "op")
	before := e.recordOf(uuidA)

	if st, b := e.do("PATCH", "/api/v1/devices", bearer(viewer), body(`{"guid":"`+uuidA+`","tags":["x"]}`)); st != 403 || !sameRecord(before, e.recordOf(uuidA)) {
		t.Fatalf("viewer PATCH: %d %s", st, b)
	}

	st, b := e.do("PATCH", "/api/v1/devices", bearer(op), body(`{"guid":"`+strings.ToUpper(uuidA)+`","friendlyName":"Front desk ☎","tags":["lab","floor:2","lab"]}`))
	if st != 200 {
		t.Fatalf("PATCH: %d %s", st, b)
	}
	var got Device
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.GUID != uuidA || got.FriendlyName != "Front desk ☎" || !slices.Equal(got.Tags, []string{"lab", "floor:2"}) || got.Hostname != "pc-a" ||
		got.DeviceInfo.CurrentMode != "2" || !got.ConnectionStatus {
		t.Fatalf("PATCH answer %+v", got)
	}
	after := e.recordOf(uuidA)
	if after.FriendlyName != "Front desk ☎" || !slices.Equal(after.Tags, []string{"lab", "floor:2"}) || after.ControlMode != 2 ||
		after.Hostname != "pc-a" || !after.CIRA.Connected || after.CIRA.MPSUsername != "admin" {
		t.Fatalf("stored after PATCH: %+v", after)
	}

	// A console sending back the whole record, as GET gave it, with one
	// field changed: the provisioned fields are unchanged, the reported
	// ones ignored.
	_, raw := e.do("GET", "/api/v1/devices/"+uuidA, bearer(viewer), nil)
	var whole map[string]any
	if err := json.Unmarshal(raw, &whole); err != nil {
		t.Fatal(err)
	}
	whole["tags"] = []string{"lab"}
	whole["connectionStatus"] = false
	echo, _ := json.Marshal(whole)
	if st, b := e.do("PATCH", "/api/v1/devices", bearer(op), body(string(echo))); st != 200 || !slices.Equal(e.recordOf(uuidA).Tags, []string{"lab"}) ||
		!e.recordOf(uuidA).CIRA.Connected {
		t.Fatalf("PATCH of the whole record: %d %s", st, b)
	}

	// Bad bodies: 400 with a sentence, nothing written.
	before = e.recordOf(uuidA)
	long := strings.Repeat("x", 65)
	many := `["t0"` + strings.Repeat(`,"t"`, 32) + `]`
	for _, c := range []struct{ body, want string }{
		{`{"guid":"` + uuidA + `","tags":` + many + `}`, "at most 32"},
		{`{"guid":"` + uuidA + `","tags":["` + long + `"]}`, "at most 64"},
		{`{"guid":"` + uuidA + `","tags":["a,b"]}`, "no commas"},
		{`{"guid":"` + uuidA + `","tags":["<script>"]}`, "holds '<'"},
		{`{"guid":"` + uuidA + `","tags":[""]}`, "empty tag"},
		{`{"guid":"` + uuidA + `","tags":[" x"]}`, "starts or ends with a space"},
		{`{"guid":"` + uuidA + `","tags":"lab"}`, "list of strings"},
		{`{"guid":"` + uuidA + `","tags":[1]}`, "list of strings"},
		{`{"guid":"` + uuidA + `","friendlyName":"a\nb"}`, "control or invisible"},
		{`{"guid":"` + uuidA + `","friendlyName":"` + strings.Repeat("é", 256) + `"}`, "at most 255"},
		{`{"guid":"` + uuidA + `","friendlyName":7}`, "must be a string"},
		{`{"guid":"` + uuidA + `","hostname":"other"}`, "hostname cannot be changed"},
		{`{"guid":"` + uuidA + `","mpsusername":"other"}`, "mpsusername cannot be changed"},
		{`{"guid":"` + uuidA + `","tenantId":"t1"}`, "no tenants"},
		{`{"guid":"` + uuidA + `","powerOn":true,"tags":["ok"]}`, `"powerOn" is not a field`},
		{`{"friendlyName":"x"}`, "must name the device"},
		{`{"guid":"not-a-guid","friendlyName":"x"}`, "guid:"},
		{`not json`, "JSON object"},
		{`{"guid":"` + uuidA + `"} {}`, "JSON object"},
		{``, "JSON object"},
	} {
		for _, method := range []string{"PATCH", "POST"} {
			st, b := e.do(method, "/api/v1/devices", bearer(op), body(c.body))
			var ae apiError
			_ = json.Unmarshal(b, &ae)
			if st != 400 || !strings.Contains(ae.Message, c.want) {
				t.Errorf("%s %s: %d %s, want 400 saying %q", method, truncate(c.body, 60), st, b, c.want)
			}
		}
		if !sameRecord(before, e.recordOf(uuidA)) {
			t.Fatalf("body %s changed the record", truncate(c.body, 60))
		}
	}

	// null clears; POST edits a known device, as MPS's upsert.
	if st, b := e.do("POST", "/api/v1/devices", bearer(op), body(`{"guid":"`+uuidA+`","friendlyName":null,"tags":null}`)); st != 200 {
		t.Fatalf("POST to a known device: %d %s", st, b)
	}
	if d := e.recordOf(uuidA); d.FriendlyName != "" || len(d.Tags) != 0 {
		t.Fatalf("after null: %q %v", d.FriendlyName, d.Tags)
	}

	// Unknown devices: PATCH 404 as MPS; POST 404 saying why, and no record.
	if st, b := e.do("PATCH", "/api/v1/devices", bearer(op), body(`{"guid":"`+uuidB+`","tags":["x"]}`)); st != 404 || !strings.Contains(string(b), "not found") {
		t.Fatalf("PATCH unknown: %d %s", st, b)
	}
	st, b = e.do("POST", "/api/v1/devices", bearer(op), body(`{"guid":"`+uuidB+`","hostname":"new","tags":["x"]}`))
	if st != 404 || !strings.Contains(string(b), "does not add devices through the API") || !strings.Contains(string(b), "activates it") {
		t.Fatalf("POST unknown: %d %s", st, b)
	}
	if _, err := e.st.Devices().Get(context.Background(), uuidB); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("POST made a record: %v", err)
	}

	// Audited: the API call and the store's edit with old and new values.
	es, err := e.st.AuditList(context.Background(), store.AuditQuery{Object: "device/" + uuidA, Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var edit string
	for _, a := range es {
		seen[a.Action+" "+a.Result]++
		if a.Action == "device.edit" && strings.Contains(a.Reason, `friendlyName "" -> "Front desk ☎"`) {
			edit = a.Reason
		}
	}
	for _, want := range []string{"api.devices.update ok", "api.devices.create ok", "api.devices.update 400 Bad Request"} {
		if seen[want] == 0 {
			t.Errorf("no audit row %q in %v", want, seen)
		}
	}
	if seen["device.edit ok"] != 3 || !strings.Contains(edit, `tags ["old"] -> ["lab","floor:2"]`) {
		t.Errorf("device.edit rows %d (want 3), the first edit's %q", seen["device.edit ok"], edit)
	}
}

// putSecrets gives a device current admin and MPS passwords, and a
// pending admin password when pending is true.
func (e *env) putSecrets(uuid string, pending bool) {
	e.t.Helper()
	ctx := context.Background()
	for _, k := range []store.SecretKind{store.AMTAdmin, store.MPS} {
		if err := e.st.Secrets().SetPending(ctx, uuid, k, secret.FromString("Pw-"+string(k)+"-1!aA"), "test"); err != nil {
			e.t.Fatal(err)
		}
		if err := e.st.Secrets().Promote(ctx, uuid, k); err != nil {
			e.t.Fatal(err)
		}
	}
	if pending {
		if err := e.st.Secrets().SetPending(ctx, uuid, store.AMTAdmin, secret.FromString("Pw-next-1!aA"), "test"); err != nil {
			e.t.Fatal(err)
		}
	}
}

// TestDeviceDeleteNeverLocksOut: DELETE /devices/{guid} refuses, with the
// reason and what to do, every record whose passwords a device may still
// use (activated, connected, a pending password, a state other than
// deactivated), whatever isSecretToBeDeleted says, and then nothing is
// deleted; a deactivated device's record and one without passwords go,
// 204. Admin only.
func TestDeviceDeleteNeverLocksOut(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	admin, op := e.key(store.RoleAdmin, "admin"), e.key(store.RoleOperator, "op")
	const (
		uActivated   = "51111111-2222-3333-4444-555555555555"
		uFailed      = "61111111-2222-3333-4444-555555555555"
		uPending     = "71111111-2222-3333-4444-555555555555"
		uConnected   = "81111111-2222-3333-4444-555555555555"
		uDeactivated = "91111111-2222-3333-4444-555555555555"
		uSeen        = "a1111111-2222-3333-4444-555555555555"
	)
	put := func(u string, mode int, state string, connected, secrets, pending bool) {
		e.putDevice(u, "h", connected)
		if err := e.st.Devices().SetMode(ctx, u, mode, state, "test", ""); err != nil {
			t.Fatal(err)
		}
		if secrets {
			e.putSecrets(u, pending)
		}
	}
	put(uActivated, 2, "configured", false, true, false)
	put(uFailed, 0, "failed", false, true, false)
	put(uPending, 0, "deactivated", false, true, true)
	put(uConnected, 0, "deactivated", true, true, false)
	put(uDeactivated, 0, "deactivated", false, true, false)
	put(uSeen, 0, "waiting", false, false, false)

	gone := func(u string) bool {
		_, err := e.st.Devices().Get(ctx, u)
		return errors.Is(err, store.ErrNotFound)
	}
	if st, b := e.do("DELETE", "/api/v1/devices/"+uDeactivated, bearer(op), nil); st != 403 || gone(uDeactivated) {
		t.Fatalf("operator delete: %d %s", st, b)
	}
	for _, c := range []struct{ uuid, want string }{
		{uActivated, "activated in admin control mode"},
		{uFailed, `says "failed", not deactivated`},
		{uPending, "under way or was interrupted"},
		{uConnected, "connected over CIRA"},
	} {
		for _, q := range []string{"", "?isSecretToBeDeleted=true", "?isSecretToBeDeleted=false"} {
			st, b := e.do("DELETE", "/api/v1/devices/"+c.uuid+q, bearer(admin), nil)
			var ae apiError
			_ = json.Unmarshal(b, &ae)
			if st != 409 || !strings.Contains(ae.Message, c.want) || !strings.Contains(ae.Message, "lock the device out") {
				t.Errorf("delete %s%s: %d %s, want 409 saying %q", c.uuid, q, st, b, c.want)
			}
		}
		if gone(c.uuid) {
			t.Fatalf("refused delete removed %s", c.uuid)
		}
		if _, err := e.st.Secrets().Current(ctx, c.uuid, store.AMTAdmin); err != nil {
			t.Fatalf("refused delete of %s lost its admin password: %v", c.uuid, err)
		}
	}
	if st, b := e.do("DELETE", "/api/v1/devices/"+uDeactivated+"?isSecretToBeDeleted=maybe", bearer(admin), nil); st != 400 || gone(uDeactivated) {
		t.Fatalf("bad isSecretToBeDeleted: %d %s", st, b)
	}
	if st, b := e.do("DELETE", "/api/v1/devices/"+uDeactivated+"?isSecretToBeDeleted=true", bearer(admin), nil); st != 204 || len(b) != 0 || !gone(uDeactivated) {
		t.Fatalf("delete deactivated: %d %s", st, b)
	}
	if _, err := e.st.Secrets().Candidates(ctx, uDeactivated, store.AMTAdmin); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("passwords of a deleted device: %v", err)
	}
	if st, b := e.do("DELETE", "/api/v1/devices/"+uSeen, bearer(admin), nil); st != 204 || !gone(uSeen) {
		t.Fatalf("delete a device without passwords: %d %s", st, b)
	}
	if st, b := e.do("DELETE", "/api/v1/devices/"+uSeen, bearer(admin), nil); st != 404 {
		t.Fatalf("delete again: %d %s", st, b)
	}
	if st, b := e.do("DELETE", "/api/v1/devices/nope", bearer(admin), nil); st != 400 {
		t.Fatalf("bad guid: %d %s", st, b)
	}

	// The store's row says which passwords went.
	es, _ := e.st.AuditList(ctx, store.AuditQuery{Object: "device/" + uDeactivated, Limit: 50})
	found := false
	for _, a := range es {
		found = found || a.Action == "device.delete" && strings.Contains(a.Reason, "isSecretToBeDeleted=true") && strings.Contains(a.Reason, "amt_admin/current")
	}
	if !found {
		t.Errorf("no device.delete audit row naming the passwords: %+v", es)
	}
}

// TestDeviceRefresh: MPS's refresh answers success for a known device
// (amtd reads credentials per call), 404 for an unknown one; operators.
func TestDeviceRefresh(t *testing.T) {
	e := newEnv(t, false)
	e.putDevice(uuidA, "a", false)
	viewer, op := e.key(store.RoleViewer, "v"), e.key(store.RoleOperator, "op")
	st, b := e.do("DELETE", "/api/v1/devices/refresh/"+uuidA, bearer(op), nil)
	if st != 200 || string(b) != `{"description":"Device info refreshed : `+uuidA+`","success":200}`+"\n" {
		t.Fatalf("refresh: %d %s", st, b)
	}
	if st, b := e.do("DELETE", "/api/v1/devices/refresh/"+uuidB, bearer(op), nil); st != 404 {
		t.Fatalf("refresh unknown: %d %s", st, b)
	}
	if st, b := e.do("DELETE", "/api/v1/devices/refresh/"+uuidA, bearer(viewer), nil); st != 403 {
		t.Fatalf("viewer refresh: %d %s", st, b)
	}
	if st, _ := e.do("GET", "/api/v1/devices/refresh/"+uuidA, bearer(op), nil); st != 405 {
		t.Fatalf("GET refresh: %d", st)
	}
}

// TestDeviceDeleteAfterDeactivate: the whole path an administrator takes
// with a device amtd activated, over a real CIRA link: delete is refused
// while it is activated; deactivate over CIRA; the device drops its link;
// delete then succeeds. The record's tags survive the deactivate (which
// writes mode and state only).
func TestDeviceDeleteAfterDeactivate(t *testing.T) {
	ce := newCIRAEnv(t)
	ce.addDevice(simUUID)
	if err := ce.st.Devices().SetMode(context.Background(), simUUID, 2, "configured", "test", ""); err != nil {
		t.Fatal(err)
	}
	d := ce.device(t, simUUID)
	admin, op := ce.key(store.RoleAdmin, "admin"), ce.key(store.RoleOperator, "op")
	if st, b := ce.do("PATCH", "/api/v1/devices", bearer(op), body(`{"guid":"`+simUUID+`","tags":["keep"]}`)); st != 200 {
		t.Fatalf("PATCH: %d %s", st, b)
	}
	if st, b := ce.do("DELETE", "/api/v1/devices/"+simUUID+"?isSecretToBeDeleted=true", bearer(admin), nil); st != 409 ||
		!strings.Contains(string(b), "DELETE /api/v1/amt/deactivate/"+simUUID) {
		t.Fatalf("delete while activated: %d %s", st, b)
	}
	if st, b := ce.do("DELETE", "/api/v1/amt/deactivate/"+simUUID, bearer(admin), nil); st != 200 || d.ControlMode() != 0 {
		t.Fatalf("deactivate: %d %s, device mode %d", st, b, d.ControlMode())
	}
	waitUntil(t, "the deactivated device's link down in the store", func() bool {
		dev, err := ce.st.Devices().Get(context.Background(), simUUID)
		return err == nil && !dev.CIRA.Connected
	})
	rec, _ := ce.st.Devices().Get(context.Background(), simUUID)
	if rec.ControlMode != 0 || rec.ProvisioningState != "deactivated" || !slices.Equal(rec.Tags, []string{"keep"}) {
		t.Fatalf("record after deactivate: mode %d state %q tags %v", rec.ControlMode, rec.ProvisioningState, rec.Tags)
	}
	if st, b := ce.do("DELETE", "/api/v1/devices/"+simUUID+"?isSecretToBeDeleted=true", bearer(admin), nil); st != 204 {
		t.Fatalf("delete after deactivate: %d %s", st, b)
	}
	if _, err := ce.st.Devices().Get(context.Background(), simUUID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("record after delete: %v", err)
	}
}

// TestKVMDisplaysOverCIRA: GET /amt/kvm/displays reads the simulated
// device's screens in MPS's shape; an operator moves KVM's default screen
// with PUT (and MPS's swagger path /amt/screen); the device's
// IPS_KVMRedirectionSettingData changes; a display the device lacks or
// that is dark is refused before anything is written; viewers read only.
func TestKVMDisplaysOverCIRA(t *testing.T) {
	ce := newCIRAEnv(t)
	ce.addDevice(simUUID)
	d := ce.device(t, simUUID)
	viewer, op := ce.key(store.RoleViewer, "v"), ce.key(store.RoleOperator, "op")
	sc := &settingsCall{t: t, ce: ce}
	path := "/api/v1/amt/kvm/displays/" + simUUID

	var got struct{ Displays []KVMDisplay }
	sc.json("GET", path, viewer, "", &got)
	// The fixture: two 1920x1080 screens side by side, two inactive;
	// DefaultScreen 0; PrimaryIndex 1 .. QuadraryIndex 4 (roles by MPS's
	// 0-based comparison).
	want := []KVMDisplay{
		{DisplayIndex: 0, IsActive: true, ResolutionX: 1920, ResolutionY: 1080, IsDefault: true},
		{DisplayIndex: 1, IsActive: true, UpperLeftX: 1920, ResolutionX: 1920, ResolutionY: 1080, Role: "primary"},
		{DisplayIndex: 2, UpperLeftX: -1, UpperLeftY: -1, Role: "secondary"},
		{DisplayIndex: 3, UpperLeftX: -1, UpperLeftY: -1, Role: "tertiary"},
	}
	if !slices.Equal(got.Displays, want) {
		t.Fatalf("displays\n got %+v\nwant %+v", got.Displays, want)
	}

	if st, b := sc.do("PUT", path, viewer, `{"displayIndex": 1}`); st != 403 || d.DefaultScreen() != 0 {
		t.Fatalf("viewer PUT: %d %s", st, b)
	}
	for _, c := range []struct {
		body string
		st   int
		want string
	}{
		{`{"displayIndex": 2}`, 409, "not active"},
		{`{"displayIndex": 4}`, 400, "reports 4 displays"},
		{`{"displayIndex": 99}`, 400, "not a display index"},
		{`{"displayIndex": -1}`, 400, "not a display index"},
		{`{"displayIndex": "1"}`, 400, "displayIndex"},
		{`{}`, 400, "displayIndex"},
		{`{"displayIndex": 1, "x": 2}`, 400, "displayIndex"},
	} {
		st, b := sc.do("PUT", path, op, c.body)
		if st != c.st || !strings.Contains(b, c.want) || d.DefaultScreen() != 0 {
			t.Errorf("PUT %s: %d %s (device default %d), want %d saying %q", c.body, st, b, d.DefaultScreen(), c.st, c.want)
		}
	}

	var put struct {
		KVM map[string]any `json:"IPS_KVMRedirectionSettingData"`
	}
	sc.json("PUT", path, op, `{"displayIndex": 1}`, &put)
	if put.KVM["DefaultScreen"] != float64(1) || d.DefaultScreen() != 1 {
		t.Fatalf("PUT 1: answer %v, device default %d", put.KVM, d.DefaultScreen())
	}
	if pw, has := put.KVM["RFBPassword"]; has && pw != "" {
		t.Errorf("PUT answer carries an RFB password: %v", put.KVM)
	}
	sc.json("GET", path, viewer, "", &got)
	if got.Displays[0].IsDefault || !got.Displays[1].IsDefault {
		t.Fatalf("after PUT 1: %+v", got.Displays)
	}

	// A monitor plugged in makes display 2 a choice; the swagger path works.
	d.SetDisplays([]amtsim.Display{{Active: true, ResolutionX: 1920, ResolutionY: 1080}, {Active: true, UpperLeftX: 1920, ResolutionX: 1920, ResolutionY: 1080},
		{Active: true, UpperLeftX: 3840, ResolutionX: 1280, ResolutionY: 1024}})
	sc.json("PUT", "/api/v1/amt/screen/"+simUUID, op, `{"displayIndex": 2}`, &put)
	if d.DefaultScreen() != 2 {
		t.Fatalf("PUT /amt/screen 2: device default %d", d.DefaultScreen())
	}

	es, _ := ce.st.AuditList(context.Background(), store.AuditQuery{Object: "device/" + simUUID, Limit: 100})
	seen := map[string]int{}
	for _, a := range es {
		seen[a.Action+" "+a.Result]++
	}
	if seen["api.amt.kvm.displays ok"] != 2 || seen["api.amt.kvm.displays.set ok"] != 2 || seen["api.amt.kvm.displays.set 409 Conflict"] != 1 {
		t.Errorf("audit rows %v", seen)
	}
	for _, pw := range []string{simAdminPass, simMPSPass} {
		if strings.Contains(strings.Join(sc.bodies, "\n"), pw) || strings.Contains(ce.logs.String(), pw) {
			t.Errorf("a device password appears in an API response or log line")
		}
	}
}

// TestDisplaysOfHostileDevice: what a broken or hostile device reports
// about its screens gives an error naming the value, or a bounded answer;
// missing arrays read as zero, as MPS's mapper.
func TestDisplaysOfHostileDevice(t *testing.T) {
	screen := func(props ...string) wsman.Instance {
		in := wsman.Instance{Class: "IPS_ScreenSettingData"}
		for i := 0; i+1 < len(props); i += 2 {
			in.Add(props[i], props[i+1])
		}
		return in
	}
	kvm := func(def string) *wsman.Instance {
		in := &wsman.Instance{Class: "IPS_KVMRedirectionSettingData"}
		if def != "" {
			in.Add("DefaultScreen", def)
		}
		return in
	}
	many := []string{}
	for range maxDisplays + 1 {
		many = append(many, "IsActive", "true")
	}
	for _, c := range []struct {
		name  string
		items []wsman.Instance
		kvm   *wsman.Instance
		want  string // error text, "" none
		count int
	}{
		{"resolution not a number", []wsman.Instance{screen("IsActive", "true", "ResolutionX", "wide")}, kvm("0"), `ResolutionX "wide" is not a number`, 0},
		{"default not a number", []wsman.Instance{screen("IsActive", "true")}, kvm("first"), `DefaultScreen "first"`, 0},
		{"role not a number", []wsman.Instance{screen("IsActive", "true", "PrimaryIndex", "0x1")}, kvm("0"), `PrimaryIndex "0x1"`, 0},
		{"too many displays", []wsman.Instance{screen(many...)}, kvm("0"), "more than 16 displays", 0},
		{"too many across items", []wsman.Instance{screen(many[:20]...), screen(many[:20]...)}, kvm("0"), "more than 16 displays", 0},
		{"missing arrays", []wsman.Instance{screen("IsActive", "true", "IsActive", "false", "UpperLeftX", "5")}, kvm(""), "", 2},
		{"no screens", nil, kvm("0"), "", 0},
	} {
		ds, err := displaysOf(c.items, c.kvm)
		switch {
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		case c.want == "" && (err != nil || len(ds) != c.count || ds == nil):
			t.Errorf("%s: %v %+v, want %d displays", c.name, err, ds, c.count)
		}
	}
	ds, _ := displaysOf([]wsman.Instance{screen("IsActive", "true", "IsActive", "false", "UpperLeftX", "5")}, kvm(""))
	if want := []KVMDisplay{{DisplayIndex: 0, IsActive: true, UpperLeftX: 5}, {DisplayIndex: 1}}; !slices.Equal(ds, want) {
		t.Errorf("missing arrays: %+v, want %+v", ds, want)
	}
}

// FuzzDeviceBody: whatever a client sends as a PATCH or POST /devices
// body, parseDeviceBody refuses it or returns an edit within the bounds
// (a normalized guid; at most maxTags distinct valid tags; a valid
// friendlyName), never panics.
func FuzzDeviceBody(f *testing.F) {
	f.Add([]byte(`{"guid":"11111111-2222-3333-4444-555555555555","friendlyName":"Front desk","tags":["lab","floor:2","lab"]}`))
	f.Add([]byte(`{"guid":"11111111-2222-3333-4444-555555555555","friendlyName":null,"tags":null,"hostname":"pc"}`))
	f.Add([]byte(`{"guid":"11111111-2222-3333-4444-555555555555","tags":["a,b"],"deviceInfo":{"fwVersion":"16"}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r := httptest.NewRequest("PATCH", "/api/v1/devices", bytes.NewReader(raw))
		b, err := parseDeviceBody(r)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an empty error sentence")
			}
			return
		}
		if u, err := store.NormalizeUUID(b.uuid); err != nil || u != b.uuid {
			t.Fatalf("guid %q not normalized", b.uuid)
		}
		if n := b.edit.FriendlyName; n != nil && checkFriendlyName(*n) != nil {
			t.Fatalf("friendlyName %q passed", *n)
		}
		if tags := b.edit.Tags; tags != nil {
			if len(*tags) > maxTags {
				t.Fatalf("%d tags passed", len(*tags))
			}
			for i, tag := range *tags {
				if checkTag(tag) != nil || slices.Contains((*tags)[:i], tag) {
					t.Fatalf("tag %q passed (or twice) in %q", tag, *tags)
				}
			}
		}
	})
}
