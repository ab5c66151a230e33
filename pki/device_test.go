package pki

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"testing"
	"time"
)

func TestIssueDevice(t *testing.T) {
	now := time.Now()
	ca, err := New(now, "test site")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, err := ca.IssueDevice(&key.PublicKey, "AMT-1234", now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Root())
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("the device certificate does not chain to the root: %v", err)
	}
	if c.Subject.CommonName != "AMT-1234" || c.SignatureAlgorithm != x509.SHA256WithRSA || !c.PublicKey.(*rsa.PublicKey).Equal(&key.PublicKey) {
		t.Fatalf("certificate %v %v", c.Subject, c.SignatureAlgorithm)
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := ca.IssueDevice(&small.PublicKey, "AMT-x", now); err == nil {
		t.Fatal("a 1024-bit device key was certified")
	}
}
