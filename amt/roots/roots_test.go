package roots

import (
	"encoding/hex"
	"testing"
)

func TestDefaultTable(t *testing.T) {
	d := Default()
	if len(d) != 23 {
		t.Fatalf("%d default roots, spec/activation.md §14 lists 23", len(d))
	}
	seen := map[string]bool{}
	for i, r := range d {
		if r.Index != i {
			t.Errorf("root %d has Index %d", i, r.Index)
		}
		b, err := hex.DecodeString(r.SHA256)
		if err != nil || len(b) != 32 {
			t.Errorf("root %d (%s): not a SHA-256 in hex: %q", i, r.CA, r.SHA256)
		}
		if seen[r.SHA256] {
			t.Errorf("root %d duplicated", i)
		}
		seen[r.SHA256] = true
		if r.CA == "" {
			t.Errorf("root %d has no CA name", i)
		}
	}
	if d[14].CA != "DigiCert Global Root CA" || d[14].SHA256[:6] != "4348a0" {
		t.Errorf("entry 14 = %+v", d[14])
	}
	d[0].CA = "changed"
	if Default()[0].CA != "Go Daddy Class 2 CA" {
		t.Error("Default returns a shared slice")
	}
}

func TestLookup(t *testing.T) {
	b, _ := hex.DecodeString("cb3ccbb76031e5e0138f8dd39a23f9de47ffc35e43c1144cea27d46a5ab1cb5f")
	r, ok := Lookup(b)
	if !ok || r.CA != "DigiCert Global Root G2" || r.Index != 15 {
		t.Errorf("Lookup = %+v, %v", r, ok)
	}
	if _, ok := LookupHex("CB3CCBB76031E5E0138F8DD39A23F9DE47FFC35E43C1144CEA27D46A5AB1CB5F"); !ok {
		t.Error("upper-case hex not found")
	}
	if _, ok := Lookup(make([]byte, 32)); ok {
		t.Error("zero hash found")
	}
}
