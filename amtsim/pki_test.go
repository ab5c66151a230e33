package amtsim

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"math/big"
	"sync"
	"testing"
	"time"
)

// Test keys are generated once per test binary: RSA generation is slow.
var (
	keysOnce sync.Once
	testKeys []*rsa.PrivateKey
	smallKey *rsa.PrivateKey
)

func key(t testing.TB, i int) *rsa.PrivateKey {
	if t != nil {
		t.Helper()
	}
	keysOnce.Do(func() {
		for range 3 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			testKeys = append(testKeys, k)
		}
		k, err := rsa.GenerateKey(rand.Reader, 1024) //nolint:gosec // the weak key is the point of the test
		if err != nil {
			panic(err)
		}
		smallKey = k
	})
	return testKeys[i]
}

// chainOpts describe a provisioning chain; the zero value is a good one
// for suffix "corp.example.com".
type chainOpts struct {
	leafCN    string
	noOID     bool
	useOU     bool
	noServer  bool
	sha1      bool
	smallLeaf bool
	expired   bool
}

type provChain struct {
	root, inter, leaf *x509.Certificate
	leafKey           *rsa.PrivateKey
}

func (p provChain) certs() []*x509.Certificate { return []*x509.Certificate{p.leaf, p.inter, p.root} }

func (p provChain) rootHash() RootHash {
	s := sha256.Sum256(p.root.Raw)
	return RootHash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:]), Name: "test root"}
}

func (p provChain) tlsCert() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{p.leaf.Raw, p.inter.Raw, p.root.Raw}, PrivateKey: p.leafKey, Leaf: p.leaf}
}

func (p provChain) sign(t testing.TB, nonce, mc []byte) []byte {
	t.Helper()
	h := sha256.Sum256(append(append([]byte(nil), nonce...), mc...))
	sig, err := rsa.SignPKCS1v15(rand.Reader, p.leafKey, crypto.SHA256, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func makeChain(t testing.TB, o chainOpts) provChain {
	t.Helper()
	now := time.Now()
	alg := x509.SHA256WithRSA
	if o.sha1 {
		alg = x509.SHA1WithRSA
	}
	serial := func() *big.Int { n, _ := rand.Int(rand.Reader, big.NewInt(1<<62)); return n }
	rootTmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "Test Provisioning Root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(5, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, SignatureAlgorithm: alg}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &key(t, 0).PublicKey, key(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	interTmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "Test Provisioning CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(4, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, SignatureAlgorithm: alg}
	interDER, err := x509.CreateCertificate(rand.Reader, interTmpl, root, &key(t, 1).PublicKey, key(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	inter, _ := x509.ParseCertificate(interDER)
	cn := o.leafCN
	if cn == "" {
		cn = "amtd.corp.example.com"
	}
	leafTmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, SignatureAlgorithm: alg}
	if o.expired {
		leafTmpl.NotBefore, leafTmpl.NotAfter = now.AddDate(-2, 0, 0), now.AddDate(-1, 0, 0)
	}
	if !o.noServer {
		leafTmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	if !o.noOID && !o.useOU {
		leafTmpl.UnknownExtKeyUsage = []asn1.ObjectIdentifier{OIDIntelSetup}
	}
	if o.useOU {
		leafTmpl.Subject.OrganizationalUnit = []string{OUIntelSetup}
	}
	lk := key(t, 2)
	if o.smallLeaf {
		key(t, 0)
		lk = smallKey
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, inter, &lk.PublicKey, key(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	return provChain{root: root, inter: inter, leaf: leaf, leafKey: lk}
}

type x509Cert = x509.Certificate

func sha1Sum(b []byte) []byte   { s := sha1.Sum(b); return s[:] }
func sha384Sum(b []byte) []byte { s := sha512.Sum384(b); return s[:] }
func hexSum(b []byte) string    { return hex.EncodeToString(b) }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// signServerCert issues a server certificate over a PKCS#1 public key as
// AMT_PublicPrivateKeyPair.DERKey reports it (spec/activation.md §3 step 7).
func signServerCert(t testing.TB, derKey string) []byte {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(derKey)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.ParsePKCS1PublicKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	ca := makeChain(t, chainOpts{})
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "AMT-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.root, pub, key(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	return der
}
