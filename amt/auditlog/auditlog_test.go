package auditlog

import (
	"bytes"
	"encoding/base64"
	"errors"
	"reflect"
	"testing"
)

// fixtureRecords are the EventRecords of the AMT_AuditLog ReadRecords
// fixture (shared/fixtures/wsman/amt/auditlog/readrecords.xml): two
// firmware updates by the local host.
var fixtureRecords = []string{"ABMAAAI/9M1uAgAQAAwAAAAoBZkADAAAACQFlA==", "ABMAAAI/9M1vAgAQAAwAAAAoBZkADAAAACQFlA=="}

func TestDecodeFixture(t *testing.T) {
	for i, s := range fixtureRecords {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Decode(b)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if r.AppID != 19 || r.EventID != 0 || r.App() != "Firmware Update Manager" || r.Event() != "Firmware Updated" {
			t.Errorf("record %d: app %d %q event %d %q", i, r.AppID, r.App(), r.EventID, r.Event())
		}
		if r.InitiatorType != InitiatorLocal || r.Initiator() != "Local" || r.MCLocationType != 2 || r.NetAddress != "" {
			t.Errorf("record %d: initiator %d %q, location %d, address %q", i, r.InitiatorType, r.Initiator(), r.MCLocationType, r.NetAddress)
		}
		if want := uint32(0x3ff4cd6e + i); r.Time != want || r.Timestamp().Unix() != int64(want) {
			t.Errorf("record %d: time %#x, want %#x", i, r.Time, want)
		}
		if s, ok := r.ExString(); !ok || s != "From 12.0.40.1433 to 12.0.36.1428" {
			t.Errorf("record %d: ExStr %q %v", i, s, ok)
		}
		enc, err := r.Encode()
		if err != nil || !bytes.Equal(enc, b) {
			t.Errorf("record %d: re-encoded %x (%v), want %x", i, enc, err, b)
		}
	}
}

func TestInitiatorsAndExtendedData(t *testing.T) {
	sid := []byte{1, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 0x10, 0x27, 0, 0, 0xe8, 0x03, 0, 0}
	cases := []struct {
		name      string
		r         Record
		initiator string
		event     string
		ex        string
		exOK      bool
	}{
		{"digest ACL added", Record{AppID: 16, EventID: 2, InitiatorType: InitiatorDigest, User: "admin", Time: 1700000000,
			NetAddress: "192.0.2.7", Ex: []byte{0, 4, 'o', 'p', 'e', 'r'}}, "admin", "ACL Entry Added", "oper", true},
		{"kerberos", Record{AppID: 17, EventID: 1, InitiatorType: InitiatorKerberos, UserInDomain: 7, SID: sid}, "S-1-5-21-10000-1000",
			"Performed Power Down", "", false},
		{"kvm port TLS", Record{AppID: 16, EventID: 7, InitiatorType: InitiatorKVM, Ex: []byte{1, 2}}, "KVM Default Port",
			"TLS State Changed", "Remote ServerAuth, Local MutualAuth", true},
		{"TLS out of range", Record{AppID: 16, EventID: 7, InitiatorType: InitiatorLocal, Ex: []byte{1, 9}}, "Local",
			"TLS State Changed", "Remote ServerAuth, Local ", false},
		{"consent", Record{AppID: 30, EventID: 1, InitiatorType: InitiatorDigest, User: "admin", Ex: []byte{0}}, "admin",
			"Send Consent Code Event", "Success", true},
		{"opt-in policy", Record{AppID: 30, EventID: 0, InitiatorType: InitiatorLocal, Ex: []byte{0, 2}}, "Local",
			"Opt-In Policy Change", "From None to All", true},
		{"realm", Record{AppID: 16, EventID: 17, InitiatorType: InitiatorLocal, Ex: []byte{0, 0, 0, 3, 1}}, "Local",
			"Set Realm Authentication Mode", "PT Administration, Auth", true},
		{"unprovision", Record{AppID: 16, EventID: 19, InitiatorType: InitiatorDigest, User: "admin", Ex: []byte{4}}, "admin",
			"Unprovisioning Started", "Remote WSMAN", true},
		{"time set", Record{AppID: 21, EventID: 0, InitiatorType: InitiatorDigest, User: "admin", Ex: []byte{0x65, 0x94, 0xad, 0xb3}}, "admin",
			"Intel(R) ME Time Set", "2024-01-03T00:43:31Z", true},
		{"unknown event", Record{AppID: 16, EventID: 99, InitiatorType: InitiatorLocal}, "Local", "#99", "", false},
		{"app below 16", Record{AppID: 0, EventID: 1602, InitiatorType: InitiatorLocal}, "Local", "#1602", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := c.r.Encode()
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(norm(got), norm(c.r)) {
				t.Fatalf("round trip: %+v, want %+v", got, c.r)
			}
			if got.Initiator() != c.initiator || got.Event() != c.event {
				t.Errorf("initiator %q event %q, want %q %q", got.Initiator(), got.Event(), c.initiator, c.event)
			}
			if ex, ok := got.ExString(); ok != c.exOK || (ok && ex != c.ex) {
				t.Errorf("ExString %q %v, want %q %v", ex, ok, c.ex, c.exOK)
			}
		})
	}
}

// norm makes nil and empty byte slices compare equal.
func norm(r Record) Record {
	if len(r.SID) == 0 {
		r.SID = nil
	}
	if len(r.Ex) == 0 {
		r.Ex = nil
	}
	return r
}

func TestDecodeRefusesBrokenRecords(t *testing.T) {
	good, _ := base64.StdEncoding.DecodeString(fixtureRecords[0])
	for name, b := range map[string][]byte{
		"empty":             nil,
		"4 bytes":           good[:4],
		"no time":           good[:7],
		"no ex length":      good[:len(good)-17],
		"ex cut":            good[:len(good)-1],
		"unknown initiator": append([]byte{0, 16, 0, 1, 9}, good[5:]...),
		"user cut":          {0, 16, 0, 1, 0, 200, 'a'},
		"kerberos cut":      {0, 16, 0, 1, 1, 0, 0},
	} {
		_, err := Decode(b)
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Offset < 0 || (len(b) > 0 && pe.Offset >= len(b)) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := (Record{InitiatorType: 0, User: string(make([]byte, 256))}).Encode(); err == nil {
		t.Error("a 256-byte user name encoded")
	}
}

// FuzzDecode: Decode never panics, errors are *ParseError inside the
// input, and what it decodes re-encodes to a prefix of the input that
// decodes the same.
func FuzzDecode(f *testing.F) {
	for _, s := range fixtureRecords {
		b, _ := base64.StdEncoding.DecodeString(s)
		f.Add(b)
	}
	f.Add([]byte{0, 16, 0, 2, 0, 5, 'a', 'd', 'm', 'i', 'n', 0x65, 0, 0, 0, 0, 9, '1', '9', '2', '.', '0', '.', '2', '.', '7', 2, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Offset < 0 || (len(b) > 0 && pe.Offset >= len(b)) {
				t.Fatalf("error %T %v for %d bytes", err, err, len(b))
			}
			return
		}
		enc, err := r.Encode()
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		if len(enc) > MaxRecord || !bytes.HasPrefix(b, enc) {
			t.Fatalf("re-encoded %x is not a prefix of %x", enc, b)
		}
		_ = r.Initiator()
		_, _ = r.ExString()
		_ = r.Event()
	})
}
