package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"amtd/secret"
)

func TestUSBRecords(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	sum := sha256.Sum256([]byte("a setup.bin"))
	file := hex.EncodeToString(sum[:])
	pws := []secret.Value{secret.FromString("Usb!Rec0rd-1"), secret.FromString("Usb!Rec0rd-2"), secret.FromString("Usb!Rec0rd-3")}
	must(t, s.USBRecords().Put(ctx, file, "0123456789", "corp.example.com", pws, "test", "usb-setup"))
	recs, err := s.USBRecords().List(ctx, file)
	if err != nil || len(recs) != 3 || recs[2].Record != 3 || recs[0].Domain != "corp.example.com" {
		t.Fatalf("list %+v %v", recs, err)
	}
	v, err := s.USBRecords().Export(ctx, file, 2, "alice", "typing it in MEBx")
	if err != nil || !v.Equal(pws[1]) {
		t.Fatalf("export record 2: %v", err)
	}
	if _, err := s.USBRecords().Export(ctx, file, 4, "alice", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("record 4: %v", err)
	}
	// The same file twice is refused, and nothing of the second try stays.
	if err := s.USBRecords().Put(ctx, file, "0123456789", "corp.example.com", pws[:1], "test", ""); err == nil {
		t.Fatal("a file's records were stored twice")
	}
	if recs, _ := s.USBRecords().List(ctx, ""); len(recs) != 3 {
		t.Fatalf("%d records after the refused put", len(recs))
	}
	// The device that reports a record's host name is matched to it, once.
	rec, ok, err := s.USBRecords().MatchHostName(ctx, USBHostName("0123456789", 2), dev1)
	if err != nil || !ok || rec.Record != 2 || rec.Device != dev1 {
		t.Fatalf("match: %+v %v %v", rec, ok, err)
	}
	if _, ok, _ := s.USBRecords().MatchHostName(ctx, USBHostName("0123456789", 2), dev2); ok {
		t.Fatal("a record was matched to a second device")
	}
	for _, name := range []string{"amtsim-1234", "amt-0123456789-r9", "amt-01234-r1", "desk42"} {
		if _, ok, err := s.USBRecords().MatchHostName(ctx, name, dev2); ok || err != nil {
			t.Fatalf("%s matched: %v", name, err)
		}
	}
	// Verify opens them; the audit trail names the export.
	n, fails, err := s.Verify(ctx)
	if err != nil || len(fails) != 0 || n < 3 {
		t.Fatalf("verify: %d checked, %v, %v", n, fails, err)
	}
	entries, err := s.AuditList(ctx, AuditQuery{})
	must(t, err)
	var exported bool
	for _, e := range entries {
		exported = exported || (e.Action == "usb.export" && e.Actor == "alice" && strings.HasSuffix(e.Object, "/2"))
		if strings.Contains(e.Reason, "Usb!Rec0rd") {
			t.Fatal("a password is in the audit trail")
		}
	}
	if !exported {
		t.Fatal("the export is not audited")
	}
}
