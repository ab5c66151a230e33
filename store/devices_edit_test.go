package store

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"amtd/secret"
)

const editUUID = "4c4c4544-0042-3510-8052-b4c04f4e9001"

// editDevice stores a device as provisioning and the relay leave it:
// activated, with a live CIRA link, tags and passwords.
func editDevice(t *testing.T, s *Store) Device {
	t.Helper()
	ctx := context.Background()
	d := Device{UUID: editUUID, Hostname: "pc-1", DNSSuffix: "corp.example.com", ControlMode: 2, ProvisioningState: "configured",
		NextAction: "wait", Tags: []string{"a"}, FriendlyName: "old", AMTVersion: "16.1.25",
		Addresses: []netip.Addr{netip.MustParseAddr("10.0.0.9")}, CIRA: CIRAState{MPSUsername: "mpsuser"}}
	if err := s.Devices().Put(ctx, d); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	if err := s.Devices().PutCIRALinks(ctx, []CIRALink{{UUID: editUUID, Connected: true, ConnectedSince: now, LastSeen: now,
		Owner: "amtd-1", BoundPorts: []uint16{16992}, RemoteAddr: "10.0.0.9:4000"}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Devices().Get(ctx, editUUID)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// sameExcept reports the first field other than those named that differs.
func sameExcept(a, b Device, except ...string) string {
	fields := map[string][2]any{
		"Hostname": {a.Hostname, b.Hostname}, "FriendlyName": {a.FriendlyName, b.FriendlyName}, "DNSSuffix": {a.DNSSuffix, b.DNSSuffix},
		"Addresses": {slices.Equal(a.Addresses, b.Addresses), true}, "AMTVersion": {a.AMTVersion, b.AMTVersion},
		"ControlMode": {a.ControlMode, b.ControlMode}, "ProvisioningState": {a.ProvisioningState, b.ProvisioningState},
		"LastError": {a.LastError, b.LastError}, "NextAction": {a.NextAction, b.NextAction},
		"CIRA.MPSUsername": {a.CIRA.MPSUsername, b.CIRA.MPSUsername}, "CIRA.Connected": {a.CIRA.Connected, b.CIRA.Connected},
		"CIRA.ConnectedSince": {a.CIRA.ConnectedSince.UnixNano(), b.CIRA.ConnectedSince.UnixNano()},
		"CIRA.Owner":          {a.CIRA.OwnerInstance, b.CIRA.OwnerInstance}, "CIRA.BoundPorts": {slices.Equal(a.CIRA.BoundPorts, b.CIRA.BoundPorts), true},
		"CIRA.RemoteAddr": {a.CIRA.RemoteAddr, b.CIRA.RemoteAddr}, "Tags": {strings.Join(a.Tags, "\x00"), strings.Join(b.Tags, "\x00")},
	}
	for name, v := range fields {
		if slices.Contains(except, name) {
			continue
		}
		if v[0] != v[1] {
			return name
		}
	}
	return ""
}

// TestDeviceEdit: Edit changes the name and tags only, audits old and new
// values, writes nothing when nothing changes, and knows unknown devices.
func TestDeviceEdit(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := context.Background()
	before := editDevice(t, s)

	name, tags := "Front desk", []string{"floor:2", "lab"}
	got, err := s.Devices().Edit(ctx, editUUID, DeviceEdit{FriendlyName: &name, Tags: &tags}, "api:key:k1")
	if err != nil {
		t.Fatal(err)
	}
	after, err := s.Devices().Get(ctx, editUUID)
	if err != nil {
		t.Fatal(err)
	}
	if after.FriendlyName != name || !slices.Equal(after.Tags, tags) || got.FriendlyName != name || !slices.Equal(got.Tags, tags) {
		t.Fatalf("after edit: stored %q %v, returned %q %v", after.FriendlyName, after.Tags, got.FriendlyName, got.Tags)
	}
	if f := sameExcept(before, after, "FriendlyName", "Tags"); f != "" {
		t.Fatalf("edit changed %s", f)
	}
	es, err := s.AuditList(ctx, AuditQuery{Object: "device/" + editUUID, Limit: 10})
	if err != nil || len(es) != 1 || es[0].Action != "device.edit" || es[0].Actor != "api:key:k1" ||
		!strings.Contains(es[0].Reason, `friendlyName "old" -> "Front desk"`) || !strings.Contains(es[0].Reason, `tags ["a"] -> ["floor:2","lab"]`) {
		t.Fatalf("audit %+v %v", es, err)
	}

	// Only tags; the name stays. Then an edit to the same values writes
	// no row.
	none := []string{}
	if _, err := s.Devices().Edit(ctx, editUUID, DeviceEdit{Tags: &none}, "api:key:k1"); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.Devices().Get(ctx, editUUID); d.FriendlyName != name || len(d.Tags) != 0 {
		t.Fatalf("tags-only edit: %q %v", d.FriendlyName, d.Tags)
	}
	if _, err := s.Devices().Edit(ctx, editUUID, DeviceEdit{FriendlyName: &name, Tags: &none}, "api:key:k1"); err != nil {
		t.Fatal(err)
	}
	if es, _ := s.AuditList(ctx, AuditQuery{Object: "device/" + editUUID, Limit: 10}); len(es) != 2 {
		t.Fatalf("%d audit rows after a no-op edit, want 2", len(es))
	}

	if _, err := s.Devices().Edit(ctx, "4c4c4544-0042-3510-8052-b4c04f4e9fff", DeviceEdit{FriendlyName: &name}, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown device: %v", err)
	}
}

// TestDeviceSetModeKeepsLink: SetMode writes the mode, the state (with a
// history row) and clears the next action; a link the relay wrote after
// the caller last read the device stays, which a Put made from that read
// would have undone.
func TestDeviceSetModeKeepsLink(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := context.Background()
	stale := editDevice(t, s)
	// The relay flushes a disconnect after the caller's read.
	disc := time.Now().Truncate(time.Second)
	if err := s.Devices().PutCIRALinks(ctx, []CIRALink{{UUID: editUUID, Connected: false, LastSeen: disc, LastDisconnected: disc}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Devices().SetMode(ctx, editUUID, 0, "deactivated", "unprovision", "by API key k1"); err != nil {
		t.Fatal(err)
	}
	d, err := s.Devices().Get(ctx, editUUID)
	if err != nil {
		t.Fatal(err)
	}
	if d.ControlMode != 0 || d.ProvisioningState != "deactivated" || d.NextAction != "" {
		t.Fatalf("after SetMode: mode %d state %q next %q", d.ControlMode, d.ProvisioningState, d.NextAction)
	}
	if d.CIRA.Connected || !d.CIRA.LastDisconnected.Equal(disc) {
		t.Fatalf("the relay's disconnect was lost: %+v", d.CIRA)
	}
	if f := sameExcept(stale, d, "ControlMode", "ProvisioningState", "NextAction", "CIRA.Connected", "CIRA.ConnectedSince",
		"CIRA.Owner", "CIRA.BoundPorts", "CIRA.RemoteAddr"); f != "" {
		t.Fatalf("SetMode changed %s", f)
	}
	h, err := s.Devices().History(ctx, editUUID)
	if err != nil || len(h) == 0 || h[len(h)-1].From != "configured" || h[len(h)-1].To != "deactivated" || h[len(h)-1].Detail != "by API key k1" {
		t.Fatalf("history %+v %v", h, err)
	}
	if err := s.Devices().SetMode(ctx, editUUID, 3, "x", "", ""); err == nil {
		t.Fatal("mode 3 accepted")
	}
	if err := s.Devices().SetMode(ctx, "4c4c4544-0042-3510-8052-b4c04f4e9fff", 0, "x", "", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown device: %v", err)
	}
}

// TestDeviceDeleteChecked: the check sees the device and the passwords
// held (kinds and states, no values); a refusal deletes nothing; a
// delete takes the passwords with it and audits which.
func TestDeviceDeleteChecked(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := context.Background()
	editDevice(t, s)
	for _, k := range []SecretKind{AMTAdmin, MPS} {
		if err := s.Secrets().SetPending(ctx, editUUID, k, secret.FromString("Pw-"+string(k)+"-12345!"), "test"); err != nil {
			t.Fatal(err)
		}
		if err := s.Secrets().Promote(ctx, editUUID, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Secrets().SetPending(ctx, editUUID, AMTAdmin, secret.FromString("Pw-next-12345!"), "test"); err != nil {
		t.Fatal(err)
	}
	var seen []HeldSecret
	var seenMode int
	no := errors.New("refused by the check")
	err := s.Devices().DeleteChecked(ctx, editUUID, "api:key:k1", "test", func(d Device, held []HeldSecret) error {
		seen, seenMode = held, d.ControlMode
		return no
	})
	if err != no {
		t.Fatalf("refusal returned %v", err)
	}
	want := []HeldSecret{{AMTAdmin, StateCurrent}, {AMTAdmin, StatePending}, {MPS, StateCurrent}}
	if !slices.Equal(seen, want) || seenMode != 2 {
		t.Fatalf("check saw %v mode %d, want %v mode 2", seen, seenMode, want)
	}
	if _, err := s.Devices().Get(ctx, editUUID); err != nil {
		t.Fatalf("device gone after a refusal: %v", err)
	}
	if _, err := s.Secrets().Current(ctx, editUUID, AMTAdmin); err != nil {
		t.Fatalf("password gone after a refusal: %v", err)
	}

	if err := s.Devices().DeleteChecked(ctx, editUUID, "api:key:k1", "by test", func(Device, []HeldSecret) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Devices().Get(ctx, editUUID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("device after delete: %v", err)
	}
	if _, err := s.Secrets().Candidates(ctx, editUUID, AMTAdmin); !errors.Is(err, ErrNotFound) {
		t.Fatalf("passwords after delete: %v", err)
	}
	es, _ := s.AuditList(ctx, AuditQuery{Object: "device/" + editUUID, Limit: 10})
	if len(es) == 0 || es[0].Action != "device.delete" || !strings.Contains(es[0].Reason, "by test; passwords deleted with it: amt_admin/current, amt_admin/pending, mps/current") {
		t.Fatalf("audit %+v", es)
	}
	if err := s.Devices().DeleteChecked(ctx, editUUID, "x", "", func(Device, []HeldSecret) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

// TestDevicePutKeepsOthersFields: provisioning reads a device and writes it
// back; a console edit and a relay flush that land in between survive the
// write, while provisioning's own fields take the new values.
func TestDevicePutKeepsOthersFields(t *testing.T) {
	s, _ := newTestStore(t)
	ctx := context.Background()
	stale := editDevice(t, s)
	name, tags := "front desk", []string{"lobby", "floor-1"}
	if _, err := s.Devices().Edit(ctx, editUUID, DeviceEdit{FriendlyName: &name, Tags: &tags}, "api key k1"); err != nil {
		t.Fatal(err)
	}
	seen := time.Now().Truncate(time.Second)
	if err := s.Devices().PutCIRALinks(ctx, []CIRALink{{UUID: editUUID, Connected: true, ConnectedSince: seen, LastSeen: seen,
		Owner: "amtd-2", BoundPorts: []uint16{16993, 16995}, RemoteAddr: "198.51.100.9:50123"}}); err != nil {
		t.Fatal(err)
	}
	stale.ControlMode, stale.ProvisioningState, stale.Hostname = 2, "configured", "pc-17"
	if err := s.Devices().Put(ctx, stale); err != nil {
		t.Fatal(err)
	}
	d, err := s.Devices().Get(ctx, editUUID)
	if err != nil {
		t.Fatal(err)
	}
	if d.FriendlyName != name || !slices.Equal(d.Tags, tags) {
		t.Errorf("the console's edit was lost: name %q tags %q", d.FriendlyName, d.Tags)
	}
	if !d.CIRA.Connected || !d.CIRA.LastSeen.Equal(seen) || d.CIRA.OwnerInstance != "amtd-2" || d.CIRA.RemoteAddr != "198.51.100.9:50123" ||
		!slices.Equal(d.CIRA.BoundPorts, []uint16{16993, 16995}) {
		t.Errorf("the relay's flush was lost: %+v", d.CIRA)
	}
	if d.ControlMode != 2 || d.ProvisioningState != "configured" || d.Hostname != "pc-17" {
		t.Errorf("provisioning's write did not land: mode %d state %q host %q", d.ControlMode, d.ProvisioningState, d.Hostname)
	}
}
