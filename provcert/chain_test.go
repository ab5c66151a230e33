package provcert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// testNow is the clock of the Go-made chains: every certificate is valid
// from a year before to a year after.
var testNow = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

type keys struct{ root, inter, leaf, other, small *rsa.PrivateKey }

var (
	keysOnce sync.Once
	keysVal  keys
	keysErr  error
)

// testKeys makes the RSA keys once per test binary: 2048-bit generation is
// the slow part of these tests under -race.
func testKeys(t testing.TB) keys {
	t.Helper()
	keysOnce.Do(func() {
		gen := func(bits int) *rsa.PrivateKey {
			k, err := rsa.GenerateKey(rand.Reader, bits)
			if err != nil && keysErr == nil {
				keysErr = err
			}
			return k
		}
		keysVal = keys{gen(2048), gen(2048), gen(2048), gen(2048), gen(1024)}
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keysVal
}

type certSpec struct {
	cn, ou    string
	ca        bool
	eku       []x509.ExtKeyUsage
	unknown   []asn1.ObjectIdentifier
	sig       x509.SignatureAlgorithm
	notBefore time.Time
	notAfter  time.Time
}

func goodLeaf() certSpec {
	return certSpec{cn: "amtprov.corp.example.com", eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, unknown: []asn1.ObjectIdentifier{OIDAMTProvisioning}}
}

var serial int64

// mkcert signs a certificate for key's public half by parent (self-signed
// when parent is nil).
func mkcert(t testing.TB, s certSpec, key crypto.Signer, parent *x509.Certificate, parentKey crypto.Signer) *x509.Certificate {
	t.Helper()
	serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: s.cn, Organization: []string{"amtd test"}},
		NotBefore:             testNow.AddDate(-1, 0, 0),
		NotAfter:              testNow.AddDate(1, 0, 0),
		BasicConstraintsValid: true,
		IsCA:                  s.ca,
		ExtKeyUsage:           s.eku,
		UnknownExtKeyUsage:    s.unknown,
		SignatureAlgorithm:    s.sig,
	}
	if s.ou != "" {
		tmpl.Subject.OrganizationalUnit = []string{s.ou}
	}
	if !s.notBefore.IsZero() {
		tmpl.NotBefore = s.notBefore
	}
	if !s.notAfter.IsZero() {
		tmpl.NotAfter = s.notAfter
	}
	if s.ca {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// encode writes a .pfx with key and certs in the order given: go-pkcs12
// keeps it, so the leaf need not come first.
func encode(t testing.TB, key crypto.Signer, certs ...*x509.Certificate) []byte {
	t.Helper()
	pfx, err := pkcs12.Modern.Encode(key, certs[0], certs[1:], "pw")
	if err != nil {
		t.Fatal(err)
	}
	return pfx
}

// TestChecks builds one chain per failure of spec/activation.md §12 and
// checks that Check reports exactly that failure, as an error.
func TestChecks(t *testing.T) {
	k := testKeys(t)
	root := mkcert(t, certSpec{cn: "Test Root", ca: true}, k.root, nil, nil)
	inter := mkcert(t, certSpec{cn: "Test Intermediate", ca: true}, k.inter, root, k.root)
	leafWith := func(mod func(*certSpec)) *x509.Certificate {
		s := goodLeaf()
		if mod != nil {
			mod(&s)
		}
		return mkcert(t, s, k.leaf, inter, k.inter)
	}
	leaf := leafWith(nil)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		pfx    func() []byte
		suffix string
		now    time.Time
		want   []Check // the error checks expected, in order
		msg    string  // and a phrase of theirs, if given
	}{
		{"good", func() []byte { return encode(t, k.leaf, leaf, inter, root) }, "corp.example.com", testNow, nil, ""},
		{"root first, leaf last", func() []byte { return encode(t, k.leaf, root, inter, leaf) }, "corp.example.com", testNow, nil, ""},
		{"OU instead of the OID", func() []byte {
			return encode(t, k.leaf, leafWith(func(s *certSpec) { s.unknown, s.ou = nil, OUClientSetup }), inter, root)
		}, "corp.example.com", testNow, nil, ""},
		{"OU in the wrong case", func() []byte {
			return encode(t, k.leaf, leafWith(func(s *certSpec) { s.unknown, s.ou = nil, "intel(r) client setup certificate" }), inter, root)
		}, "corp.example.com", testNow, []Check{CheckPurpose}, ""},
		{"no AMT purpose", func() []byte {
			return encode(t, k.leaf, leafWith(func(s *certSpec) { s.unknown = nil }), inter, root)
		}, "corp.example.com", testNow, []Check{CheckPurpose}, ""},
		{"no serverAuth", func() []byte {
			return encode(t, k.leaf, leafWith(func(s *certSpec) { s.eku = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} }), inter, root)
		}, "corp.example.com", testNow, []Check{CheckServerAuth}, ""},
		{"SHA-1 leaf", func() []byte {
			return encode(t, k.leaf, leafWith(func(s *certSpec) { s.sig = x509.SHA1WithRSA }), inter, root)
		}, "corp.example.com", testNow, []Check{CheckSignature}, ""},
		{"SHA-1 root", func() []byte {
			r := mkcert(t, certSpec{cn: "Test Root", ca: true, sig: x509.SHA1WithRSA}, k.root, nil, nil)
			return encode(t, k.leaf, leaf, inter, r)
		}, "corp.example.com", testNow, []Check{CheckSignature}, ""},
		{"1024-bit intermediate", func() []byte {
			i := mkcert(t, certSpec{cn: "Small Intermediate", ca: true}, k.small, root, k.root)
			l := mkcert(t, goodLeaf(), k.leaf, i, k.small)
			return encode(t, k.leaf, l, i, root)
		}, "corp.example.com", testNow, []Check{CheckKeySize}, ""},
		{"ECDSA key", func() []byte {
			l := mkcert(t, goodLeaf(), ecKey, inter, k.inter)
			return encode(t, ecKey, l, inter, root)
		}, "corp.example.com", testNow, []Check{CheckKey}, ""},
		{"expired", func() []byte { return encode(t, k.leaf, leaf, inter, root) }, "corp.example.com", testNow.AddDate(2, 0, 0), []Check{CheckValidity, CheckValidity, CheckValidity}, ""},
		{"not yet valid", func() []byte { return encode(t, k.leaf, leaf, inter, root) }, "corp.example.com", testNow.AddDate(-2, 0, 0), []Check{CheckValidity, CheckValidity, CheckValidity}, ""},
		{"no root", func() []byte { return encode(t, k.leaf, leaf, inter) }, "corp.example.com", testNow, []Check{CheckChain}, "up to the root"},
		{"no intermediate", func() []byte { return encode(t, k.leaf, leaf, root) }, "corp.example.com", testNow, []Check{CheckChain}, "which is not in the file"},
		{"intermediate signed by another key", func() []byte {
			fake := mkcert(t, certSpec{cn: "Test Root", ca: true}, k.other, nil, nil) // same name, other key
			i := mkcert(t, certSpec{cn: "Test Intermediate", ca: true}, k.inter, fake, k.other)
			return encode(t, k.leaf, leaf, i, root)
		}, "corp.example.com", testNow, []Check{CheckChain}, "does not verify with the key of"},
		{"other domain", func() []byte { return encode(t, k.leaf, leaf, inter, root) }, "corp.example.net", testNow, []Check{CheckDomain}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Load(tc.pfx(), []byte("pw"))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if b.Leaf.PublicKey == nil || !b.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(b.Leaf.PublicKey) {
				t.Fatal("leaf is not the key's certificate")
			}
			ps := b.Check(Policy{Suffix: tc.suffix, Now: tc.now})
			var got []Check
			for _, p := range ps.Errors() {
				got = append(got, p.Check)
				if !strings.Contains(p.Msg, ":") || strings.Contains(p.Msg, "\n") {
					t.Errorf("problem is not one sentence saying what and what to do: %q", p.Msg)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("errors = %v, want %v\n%v", got, tc.want, ps)
			}
			if tc.msg != "" && !strings.Contains(ps.Error(), tc.msg) {
				t.Errorf("problems lack %q: %v", tc.msg, ps)
			}
			if (ps.Err() == nil) != (len(tc.want) == 0) {
				t.Errorf("Err() = %v", ps.Err())
			}
		})
	}
}

// TestChainOrder: the chain is built by issuer links whatever the file
// order, and a stray certificate is left out with a warning.
func TestChainOrder(t *testing.T) {
	k := testKeys(t)
	root := mkcert(t, certSpec{cn: "Test Root", ca: true}, k.root, nil, nil)
	inter := mkcert(t, certSpec{cn: "Test Intermediate", ca: true}, k.inter, root, k.root)
	leaf := mkcert(t, goodLeaf(), k.leaf, inter, k.inter)
	stray := mkcert(t, certSpec{cn: "Stray Root", ca: true}, k.other, nil, nil)
	b, err := Load(encode(t, k.leaf, stray, root, leaf, inter), []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Chain) != 3 || b.Chain[0] != b.Leaf || b.Chain[1].Subject.CommonName != "Test Intermediate" || b.Root.Subject.CommonName != "Test Root" {
		t.Fatalf("chain %v", b.Chain)
	}
	ps := b.Check(Policy{Suffix: "corp.example.com", Now: testNow})
	if ps.Err() != nil || len(b.Unused) != 1 || !strings.Contains(ps.Warnings().Error(), "Stray Root") {
		t.Errorf("stray: %v", ps)
	}
}

// TestKeyMatchesNoCertificate: a key exported with someone else's
// certificate is refused at Load.
func TestKeyMatchesNoCertificate(t *testing.T) {
	k := testKeys(t)
	root := mkcert(t, certSpec{cn: "Test Root", ca: true}, k.root, nil, nil)
	leaf := mkcert(t, goodLeaf(), k.leaf, root, k.root)
	_, err := Load(encode(t, k.other, leaf, root), []byte("pw"))
	var p Problem
	if err == nil || !errorsAs(err, &p) || p.Check != CheckKey || !strings.Contains(p.Msg, "belongs to none of its 2 certificate(s)") {
		t.Fatalf("Load = %v", err)
	}
	if _, _, err := Open(encode(t, k.leaf, leaf), []byte("pw")); err == nil || !strings.Contains(err.Error(), "no self-signed root") {
		t.Errorf("Open without root = %v", err)
	}
}
