package eventlog

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"
)

// fixtureRecords are the RecordArray of the AMT_MessageLog GetRecords
// fixture (shared/fixtures/wsman/amt/messagelog/getrecords.xml), newest
// first as AMT sends them.
var fixtureRecords = []string{"Y8iYZf8GbwVoEP8mYaoKAAAAAAAA", "IgYBZf8PbwJoAf8iAEAHAAAAAAAA", "IgYBZf8PbwJoAf8iAEAHAAAAAAAA"}

func TestDecodeFixture(t *testing.T) {
	want := []struct {
		ts                               uint32
		sensor, typ, offset, sev, entity uint8
		entityName, desc                 string
	}{
		{0x6598c863, 6, 0x6f, 5, 0x10, 38, "Intel(r) ME", "Authentication failed 10 times. The system may be under attack."},
		{0x65010622, 15, 0x6f, 2, 1, 34, "BIOS", "PCI resource configuration"},
	}
	for i, s := range fixtureRecords[:2] {
		b, _ := base64.StdEncoding.DecodeString(s)
		r, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		w := want[i]
		if r.TimeStamp != w.ts || r.EventSensorType != w.sensor || r.EventType != w.typ || r.EventOffset != w.offset ||
			r.EventSeverity != w.sev || r.Entity != w.entity || r.DeviceAddress != 0xff {
			t.Errorf("record %d: %+v", i, r)
		}
		if tm, ok := r.Time(); !ok || tm.Unix() != int64(w.ts) {
			t.Errorf("record %d: time %v %v", i, tm, ok)
		}
		if r.EntityName() != w.entityName {
			t.Errorf("record %d: entity %q, want %q", i, r.EntityName(), w.entityName)
		}
		if d, ok := r.Description(); !ok || d != w.desc {
			t.Errorf("record %d: description %q %v, want %q", i, d, ok, w.desc)
		}
		if !bytes.Equal(r.Encode(), b) {
			t.Errorf("record %d: re-encoded %x, want %x", i, r.Encode(), b)
		}
	}
}

func TestDescriptions(t *testing.T) {
	cases := []struct {
		r    Record
		desc string
		ok   bool
	}{
		{Record{EventSensorType: 15, EventOffset: 0, EventData: [8]byte{0, 8}}, "Removable boot media not found.", true},
		{Record{EventSensorType: 15, EventOffset: 2, EventData: [8]byte{235}}, "Invalid Data", true},
		{Record{EventSensorType: 15, EventOffset: 2, EventData: [8]byte{0, 200}}, "", false},
		{Record{EventSensorType: 18, EventData: [8]byte{170, 0x44, 0x33, 0x22, 0x11, 0x66, 0x55, 4}}, "Agent watchdog 11223344-5566-... changed to Running", true},
		{Record{EventSensorType: 18, EventData: [8]byte{1}}, "", false},
		{Record{EventSensorType: 37}, "System firmware started (at least one CPU is properly executing).", true},
		{Record{EventSensorType: 99}, "Unknown Sensor Type #99", true},
	}
	for _, c := range cases {
		if d, ok := c.r.Description(); d != c.desc || ok != c.ok {
			t.Errorf("%+v: %q %v, want %q %v", c.r, d, ok, c.desc, c.ok)
		}
	}
	if (Record{Entity: 200}).EntityName() != "Unknown" || (Record{Entity: 52}).EntityName() != "Processor front side bus" {
		t.Error("entity names")
	}
	if _, ok := (Record{TimeStamp: 0xFFFFFFFF}).Time(); ok {
		t.Error("0xFFFFFFFF is a time")
	}
	var se *ShortError
	if _, err := Decode(make([]byte, 20)); !errors.As(err, &se) || se.Len != 20 {
		t.Errorf("20 bytes: %v", err)
	}
}

// FuzzDecode: Decode never panics, refuses exactly the short inputs, and
// re-encodes to the first RecordSize bytes.
func FuzzDecode(f *testing.F) {
	for _, s := range fixtureRecords {
		b, _ := base64.StdEncoding.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if (err != nil) != (len(b) < RecordSize) {
			t.Fatalf("%d bytes: %v", len(b), err)
		}
		if err != nil {
			return
		}
		if !bytes.Equal(r.Encode(), b[:RecordSize]) {
			t.Fatalf("re-encoded %x, want %x", r.Encode(), b[:RecordSize])
		}
		_, _ = r.Description()
		_ = r.EntityName()
		_, _ = r.Time()
	})
}
