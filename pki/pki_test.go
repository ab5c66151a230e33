package pki

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"amtd/secret"
	"amtd/store"
)

func testStore(t *testing.T) (*store.Store, store.Options) {
	t.Helper()
	dir := t.TempDir()
	opts := store.Options{Path: filepath.Join(dir, "amtd.db"), KeyFile: filepath.Join(dir, "master.key")}
	if err := store.GenerateKeyFile(opts.KeyFile); err != nil {
		t.Fatal(err)
	}
	s, err := store.Init(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, opts
}

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func TestInitLoadAndVerify(t *testing.T) {
	ctx := context.Background()
	st, opts := testStore(t)
	ca, err := Init(ctx, st, t0, "corp.example.com", "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Init(ctx, st, t0, "corp.example.com", "test"); !errors.Is(err, ErrExists) {
		t.Fatalf("second Init: %v, want ErrExists", err)
	}
	root := ca.Root()
	if k := root.PublicKey.(*rsa.PublicKey); k.N.BitLen() != rootBits {
		t.Errorf("root key %d bits, want %d", k.N.BitLen(), rootBits)
	}
	if root.SignatureAlgorithm != x509.SHA384WithRSA || !root.IsCA {
		t.Errorf("root: alg %v, CA %v", root.SignatureAlgorithm, root.IsCA)
	}

	// Reopen the store from disk: the same root comes back.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st2, err := store.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	ca2, err := Load(ctx, st2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca2.RootDER(), ca.RootDER()) || ca2.Fingerprint() != ca.Fingerprint() {
		t.Fatal("loaded root differs from the created one")
	}

	// A server certificate from the reloaded root verifies, as AMT would
	// check it, by name and by address, against the root alone.
	now := time.Now()
	cert, err := ca2.IssueServer([]string{"amtd.corp.example.com"}, []netip.Addr{netip.MustParseAddr("192.0.2.10")}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.Certificate) != 2 || !bytes.Equal(cert.Certificate[1], ca.RootDER()) {
		t.Fatalf("chain has %d certificates, want leaf and root", len(cert.Certificate))
	}
	leaf := cert.Leaf
	pool := x509.NewCertPool()
	pool.AddCert(ca.Root())
	for _, name := range []string{"amtd.corp.example.com", "192.0.2.10"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.example.com", Roots: pool, CurrentTime: now}); err == nil {
		t.Error("certificate verified for a name it was not issued for")
	}
	if leaf.Subject.CommonName != "amtd.corp.example.com" {
		t.Errorf("CN %q", leaf.Subject.CommonName)
	}
	if k := leaf.PublicKey.(*rsa.PublicKey); k.N.BitLen() != serverBits {
		t.Errorf("leaf key %d bits", k.N.BitLen())
	}
	if leaf.SignatureAlgorithm != x509.SHA384WithRSA {
		t.Errorf("leaf signed with %v", leaf.SignatureAlgorithm)
	}
	if leaf.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		t.Error("leaf lacks keyEncipherment, which RSA key exchange (LegacyTLS) needs")
	}
	found := false
	for _, e := range leaf.Extensions {
		if e.Id.Equal(oidNSCertType) {
			found = bytes.Equal(e.Value, nsCertTypeServer)
		}
	}
	if !found {
		t.Error("leaf lacks nsCertType=server")
	}

	// A different root does not verify it.
	other, err := New(now, "")
	if err != nil {
		t.Fatal(err)
	}
	op := x509.NewCertPool()
	op.AddCert(other.Root())
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "amtd.corp.example.com", Roots: op, CurrentTime: now}); err == nil {
		t.Error("leaf verified against a foreign root")
	}

	// The key is sealed: neither the PEM key nor its DER is in the database file.
	db, err := os.ReadFile(opts.Path)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := ca.marshal()
	for rest := v.Reveal(); ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		if blk.Type == "PRIVATE KEY" && bytes.Contains(db, blk.Bytes[len(blk.Bytes)-64:]) {
			t.Fatal("root private key bytes found in the database file")
		}
	}
	if bytes.Contains(db, []byte("PRIVATE KEY")) {
		t.Fatal("PEM private key found in the database file")
	}
}

func TestLoadOrInit(t *testing.T) {
	ctx := context.Background()
	st, _ := testStore(t)
	if _, err := Load(ctx, st); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Load on a new store: %v, want ErrNotFound", err)
	}
	ca, created, err := LoadOrInit(ctx, st, t0, "", "test")
	if err != nil || !created {
		t.Fatalf("first LoadOrInit: created=%v err=%v", created, err)
	}
	ca2, created, err := LoadOrInit(ctx, st, t0, "", "test")
	if err != nil || created {
		t.Fatalf("second LoadOrInit: created=%v err=%v", created, err)
	}
	if ca.Fingerprint() != ca2.Fingerprint() {
		t.Fatal("LoadOrInit replaced an existing root")
	}
}

func TestParseRejects(t *testing.T) {
	a, err := New(t0, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(t0, "")
	if err != nil {
		t.Fatal(err)
	}
	va, _ := a.marshal()
	vb, _ := b.marshal()
	certA, rest := pem.Decode(va.Reveal())
	_, _ = pem.Decode(rest)
	_, restB := pem.Decode(vb.Reveal())
	keyB, _ := pem.Decode(restB)
	mixed := append(pem.EncodeToMemory(certA), pem.EncodeToMemory(keyB)...)
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"certificate only", pem.EncodeToMemory(certA)},
		{"key of another root", mixed},
		{"garbage", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parse(secretOf(tc.in)); err == nil {
				t.Fatal("parse accepted it")
			}
		})
	}
	if _, err := parse(va); err != nil {
		t.Fatalf("parse of a good root: %v", err)
	}
}

func TestServerCertRenews(t *testing.T) {
	ca, err := New(t0, "")
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	sc, err := NewServerCert(ca, []string{"amtd.example.com"}, nil, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	c1, _ := sc.GetCertificate(&tls.ClientHelloInfo{})
	now = now.Add(300 * 24 * time.Hour)
	c2, _ := sc.GetCertificate(&tls.ClientHelloInfo{})
	if c1 != c2 {
		t.Fatal("certificate re-issued long before expiry")
	}
	now = c1.Leaf.NotAfter.Add(-renewBefore + time.Hour)
	c3, err := sc.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if c3 == c1 || !c3.Leaf.NotAfter.After(c1.Leaf.NotAfter) {
		t.Fatal("certificate not renewed within 30 days of expiry")
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Root())
	if _, err := c3.Leaf.Verify(x509.VerifyOptions{DNSName: "amtd.example.com", Roots: pool, CurrentTime: now}); err != nil {
		t.Fatalf("renewed certificate: %v", err)
	}
}

// TestTLSHandshake serves the issued chain and connects as AMT would: trusting
// only the root, checking the name.
func TestTLSHandshake(t *testing.T) {
	ca, err := New(time.Now(), "")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := NewServerCert(ca, []string{"amtd.example.com"}, []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: sc.GetCertificate, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	pool := x509.NewCertPool()
	pool.AddCert(ca.Root())
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "amtd.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.ConnectionState().PeerCertificates); n != 2 {
		t.Errorf("server sent %d certificates, want leaf and root", n)
	}
	c.Close()
}

func secretOf(b []byte) secret.Value { return secret.New(b) }
