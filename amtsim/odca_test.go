package amtsim

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

func TestODCAChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "odca.pem")
	o, err := LoadODCA(path)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadODCA(path)
	if err != nil || !bytes.Equal(again.Root.Raw, o.Root.Raw) {
		t.Fatalf("reload: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v %v", fi.Mode(), err)
	}
	if crt, err := os.ReadFile(path + ".crt"); err != nil || bytes.Contains(crt, []byte("PRIVATE KEY")) {
		t.Fatalf("certificate file: %v", err)
	}
	d, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := again.Chain(d)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Certificate) != 6 {
		t.Fatalf("%d certificates", len(c.Certificate))
	}
	certs := make([]*x509.Certificate, 6)
	inter := x509.NewCertPool()
	for i, der := range c.Certificate {
		if certs[i], err = x509.ParseCertificate(der); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			inter.AddCert(certs[i])
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(o.Root)
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatal(err)
	}
	if certs[0].Subject.CommonName != "iAMT CSME IDevID RCFG" || certs[3].Issuer.OrganizationalUnit[0] != "ODCA 2 CSME P MTL" {
		t.Fatalf("shape: leaf %s, ROM CA issuer %s", certs[0].Subject, certs[3].Issuer)
	}
	if c2, _ := again.Chain(d); c2 != c {
		t.Fatal("a device's chain changed")
	}
}
