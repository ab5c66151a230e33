package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"amtd/amt/setupbin"
)

func TestDebugDecodeSetupBin(t *testing.T) {
	sum := sha256.Sum256([]byte("appliance root"))
	var recs []setupbin.Record
	for _, pw := range []string{"N3w-Pass!1", "N3w-Pass!2"} {
		vs, err := setupbin.Settings{CurrentMEBxPassword: "admin", NewMEBxPassword: pw, PKIDNSSuffix: "site.example.com",
			ConfigServerFQDN: "site.example.com", RootHash: &setupbin.RootHash{Algorithm: 2, Hash: sum[:], Name: "amtd"},
			ServerAddr: netip.MustParseAddr("192.0.2.10"), ServerPort: 9971, Start: true}.Vars()
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, setupbin.Record{Flags: setupbin.RecordValid | setupbin.RecordScrambled, Vars: vs})
	}
	f := &setupbin.File{Records: recs}
	f.Consume()
	b, err := setupbin.Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	p := writeTemp(t, "setup.bin", b)

	out, errs, code := runDebug(t, nil, "decode", "setupbin", p)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"setup.bin v3 (3.0), 2 records, 1 consumed, 1536 bytes",
		"next machine takes record 2",
		"record 1 (consumed, scrambled)",
		"record 2 (unused, scrambled)",
		"MEBx password: current set, new set",
		"PKI DNS suffix: site.example.com",
		"user root hash: " + hex.EncodeToString(sum[:]) + ` "amtd" (not a default root)`,
		"provisioning server: 192.0.2.10 port 9971",
		"start provisioning: true",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "N3w-Pass") || strings.Contains(out, "admin") {
		t.Errorf("a MEBx password is printed:\n%s", out)
	}

	out, _, code = runDebug(t, nil, "decode", "setupbin", p, "--json")
	var j struct {
		Consumed uint32
		Records  []setupBinRecordJSON
	}
	if code != exitOK || json.Unmarshal([]byte(out), &j) != nil || j.Consumed != 1 || len(j.Records) != 2 || !j.Records[1].Next || j.Records[0].Valid || j.Records[1].ServerPort != 9971 {
		t.Fatalf("json (exit %d): %s", code, out)
	}
	if strings.Contains(out, "N3w-Pass") {
		t.Error("a MEBx password is in the JSON")
	}

	_, errs, code = runDebug(t, nil, "decode", "setupbin", writeTemp(t, "bad.bin", b[:600]))
	if code != exitFailure || !strings.Contains(errs, "whole number of 512-byte chunks") || !strings.Contains(errs, "is this the file from the USB key?") {
		t.Fatalf("truncated file: exit %d, %s", code, errs)
	}
}
