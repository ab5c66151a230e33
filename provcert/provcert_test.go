package provcert

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// testPassword is the password of the files testdata/gen.sh makes.
func testPassword(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/password.txt")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(b)
}

// TestLoadEncodings opens the same chain exported by OpenSSL as AES
// (PBES2), 3DES and legacy RC2-40: all three are found in the field.
func TestLoadEncodings(t *testing.T) {
	pw := testPassword(t)
	wantRoot, err := os.ReadFile("testdata/root.sha256")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"modern.pfx", "3des.pfx", "legacy.pfx"} {
		t.Run(file, func(t *testing.T) {
			pfx, err := os.ReadFile(filepath.Join("testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			b, err := Load(pfx, pw)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if b.Leaf.Subject.CommonName != "amtprov.corp.example.com" {
				t.Errorf("leaf = %q", b.Leaf.Subject.CommonName)
			}
			var names []string
			for _, c := range b.Chain {
				names = append(names, c.Subject.CommonName)
			}
			if got := strings.Join(names, " > "); got != "amtprov.corp.example.com > amtd test intermediate > amtd test root" {
				t.Errorf("chain = %s", got)
			}
			if b.Root == nil || b.RootSHA256() != strings.TrimSpace(string(wantRoot)) {
				t.Errorf("root sha256 = %q, want %s", b.RootSHA256(), wantRoot)
			}
			if RootVerdict(b.RootSHA256()) != NotDefaultRoot {
				t.Errorf("verdict = %q", RootVerdict(b.RootSHA256()))
			}
			now := b.Leaf.NotBefore.Add(time.Hour)
			ps := b.Check(Policy{Suffix: "corp.example.com", Now: now})
			if len(ps.Errors()) != 0 {
				t.Errorf("errors on a good chain: %v", ps.Errors())
			}
			// A test root is not a default AMT root: the one warning.
			if w := ps.Warnings(); len(w) != 1 || w[0].Check != CheckRoot || !strings.Contains(w[0].Msg, b.RootSHA256()) {
				t.Errorf("warnings = %v", w)
			}
			tc := b.TLSCertificate()
			if len(tc.Certificate) != 3 || !bytes.Equal(tc.Certificate[0], b.Leaf.Raw) || !bytes.Equal(tc.Certificate[2], b.Root.Raw) || tc.PrivateKey == nil {
				t.Errorf("TLSCertificate: %d certs", len(tc.Certificate))
			}
			cert, root, err := Open(pfx, pw)
			if err != nil || root == nil || !bytes.Equal(root.Raw, b.Root.Raw) || len(cert.Certificate) != 3 {
				t.Errorf("Open: %v", err)
			}

			// The same file a day after the leaf expires, and for another domain.
			ps = b.Check(Policy{Suffix: "other.example.net", Now: b.Leaf.NotAfter.Add(24 * time.Hour)})
			if !ps.Errors().Has(CheckValidity) || !ps.Errors().Has(CheckDomain) {
				t.Errorf("expired, other domain: %v", ps)
			}

			_, err = Load(pfx, []byte("not the password"))
			var p Problem
			if !errors.As(err, &p) || p.Check != CheckDecode || !strings.Contains(p.Msg, "password does not open") {
				t.Errorf("wrong password: %v", err)
			}
			if strings.Contains(err.Error(), string(pw)) {
				t.Error("error holds the password")
			}
		})
	}
}

func TestLoadRefusesNonPFX(t *testing.T) {
	pem := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"pem", pem, "PEM text"},
		{"garbage", []byte{0x30, 0x03, 0x02, 0x01, 0x03}, "not a readable .pfx"},
		{"huge", make([]byte, MaxPFXSize+1), "KiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.data, []byte("x"))
			var p Problem
			if !errors.As(err, &p) || p.Check != CheckDecode || !strings.Contains(p.Msg, tc.want) {
				t.Errorf("Load = %v, want a decode problem with %q", err, tc.want)
			}
		})
	}
}

// TestIterationBound: a file asking for millions of key-derivation rounds
// is refused before the decoder spends them.
func TestIterationBound(t *testing.T) {
	k := testKeys(t)
	root := mkcert(t, certSpec{cn: "r", ca: true}, k.root, nil, nil)
	leaf := mkcert(t, goodLeaf(), k.leaf, root, k.root)
	pfx, err := pkcs12.Modern.WithIterations(1<<16).Encode(k.leaf, leaf, nil, "pw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(pfx, []byte("pw")); err != nil {
		t.Fatalf("65536 iterations: %v", err)
	}
	// Every INTEGER 65536 (02 03 01 00 00) becomes 8388607.
	n := bytes.Count(pfx, []byte{2, 3, 1, 0, 0})
	if n < 3 {
		t.Fatalf("%d iteration counts found in the encoding", n)
	}
	bad := bytes.ReplaceAll(pfx, []byte{2, 3, 1, 0, 0}, []byte{2, 3, 0x7f, 0xff, 0xff})
	_, err = Load(bad, []byte("pw"))
	var p Problem
	if !errors.As(err, &p) || !strings.Contains(p.Msg, "8388607 key-derivation iterations") {
		t.Fatalf("Load = %v", err)
	}
}
