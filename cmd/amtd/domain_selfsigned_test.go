package main

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"amtd/provcert"
	"amtd/secret"
	"amtd/store"
)

// TestDomainSelfSigned adds a domain with --self-signed to a real store and
// checks what a device and the daemon would meet: the stored .pfx opens with
// provcert.Open and passes every check of spec/activation.md §12 for the
// suffix, its root is RSA 3072 and its leaf RSA 2048 with the AMT OID, OU
// and serverAuth, the root's key is sealed in the keys table, the printed
// hash is the root's, and no password or key material is printed or kept
// in the clear. Renewal and re-adding reuse the root.
func TestDomainSelfSigned(t *testing.T) {
	dir := t.TempDir()
	db, key := filepath.Join(dir, "amtd.db"), filepath.Join(dir, "master.key")
	if code, _, errs := runCLI(t, "store", "init", "--db", db, "--key-file", key, "--generate-key"); code != exitOK {
		t.Fatalf("store init: %d %s", code, errs)
	}
	var all strings.Builder
	run := func(want int, args ...string) (string, string) {
		t.Helper()
		code, out, errs := runCLIStdin(t, "", append(args, "--db", db, "--key-file", key)...)
		all.WriteString(out + errs)
		if code != want {
			t.Fatalf("amtd %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errs)
		}
		return out, errs
	}
	const suffix = "site.example.com"
	out, errs := run(exitOK, "domain", "add", "Site.Example.com", "--self-signed")
	if errs != "" {
		t.Errorf("add --self-signed wrote to stderr: %s", errs)
	}
	// The hash stands alone on its line, with what to do with it.
	m := regexp.MustCompile(`(?m)^\s+([0-9a-f]{64})\s*$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("add --self-signed: no root hash on a line of its own:\n%s", out)
	}
	printed := m[1]
	for _, want := range []string{"added domain " + suffix, "MEBx", "amtd usb-setup --domain " + suffix + " --out FILE", "provroot/" + suffix} {
		if !strings.Contains(out, want) {
			t.Errorf("add output lacks %q:\n%s", want, out)
		}
	}

	ctx := store.WithActor(context.Background(), "test")
	openStore := func() *store.Store {
		t.Helper()
		s, err := store.Open(ctx, store.Options{Path: db, KeyFile: key})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	type stored struct {
		pfx, pw  []byte
		rootPEM  []byte
		leaf     *x509.Certificate
		root     *x509.Certificate
		rootHash string
	}
	load := func() stored {
		t.Helper()
		s := openStore()
		defer s.Close()
		d, err := s.Domains().Get(ctx, suffix)
		if err != nil {
			t.Fatal(err)
		}
		st := stored{pfx: bytes.Clone(d.PFX.Reveal()), pw: bytes.Clone(d.PFXPassword.Reveal())}
		cert, root, err := provcert.Open(st.pfx, st.pw)
		if err != nil {
			t.Fatalf("provcert.Open of the stored domain: %v", err)
		}
		st.leaf, st.root = cert.Leaf, root
		b, err := provcert.Load(st.pfx, st.pw)
		if err != nil {
			t.Fatal(err)
		}
		ps := b.Check(provcert.Policy{Suffix: suffix, Now: time.Now()})
		if errs := ps.Errors(); len(errs) > 0 {
			t.Errorf("stored certificate fails the checks: %v", errs)
		}
		for _, p := range ps.Warnings() {
			if p.Check != provcert.CheckRoot { // not a default root: by design
				t.Errorf("unexpected warning: %s", p.Msg)
			}
		}
		if d.RootSHA256 != b.RootSHA256() {
			t.Errorf("store row root %s, certificate root %s", d.RootSHA256, b.RootSHA256())
		}
		st.rootHash = b.RootSHA256()
		if kind, err := s.Keys().Kind(ctx, "provroot/"+suffix); err != nil || kind != store.KeyCA {
			t.Fatalf("root key in the keys table: kind %q, %v", kind, err)
		}
		v, err := s.Keys().Get(ctx, "provroot/"+suffix)
		if err != nil {
			t.Fatal(err)
		}
		st.rootPEM = bytes.Clone(v.Reveal())
		return st
	}
	first := load()
	if first.rootHash != printed {
		t.Errorf("printed hash %s, stored root %s", printed, first.rootHash)
	}
	if sum := sha256.Sum256(first.root.Raw); hex.EncodeToString(sum[:]) != printed {
		t.Errorf("printed hash is not the SHA-256 of the root's DER")
	}

	// What the firmware checks (spec/activation.md §12).
	leaf, root := first.leaf, first.root
	if leaf.Subject.CommonName != suffix {
		t.Errorf("leaf CN %q", leaf.Subject.CommonName)
	}
	if !slices.Contains(leaf.Subject.OrganizationalUnit, provcert.OUClientSetup) {
		t.Errorf("leaf OU %v", leaf.Subject.OrganizationalUnit)
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || len(leaf.UnknownExtKeyUsage) != 1 || !leaf.UnknownExtKeyUsage[0].Equal(provcert.OIDAMTProvisioning) {
		t.Errorf("leaf EKU %v %v", leaf.ExtKeyUsage, leaf.UnknownExtKeyUsage)
	}
	if leaf.IsCA || !root.IsCA || !root.BasicConstraintsValid {
		t.Errorf("CA flags: leaf %v, root %v", leaf.IsCA, root.IsCA)
	}
	if leaf.SignatureAlgorithm != x509.SHA256WithRSA || root.SignatureAlgorithm != x509.SHA256WithRSA {
		t.Errorf("signatures: leaf %v, root %v", leaf.SignatureAlgorithm, root.SignatureAlgorithm)
	}
	if n := leaf.PublicKey.(*rsa.PublicKey).N.BitLen(); n != 2048 {
		t.Errorf("leaf key %d bits", n)
	}
	if n := root.PublicKey.(*rsa.PublicKey).N.BitLen(); n != 3072 {
		t.Errorf("root key %d bits", n)
	}
	if err := leaf.CheckSignatureFrom(root); err != nil {
		t.Errorf("leaf not signed by the root: %v", err)
	}
	// The sealed root is the root of the chain, with its key.
	r, err := parseProvRoot(secret.New(first.rootPEM))
	if err != nil {
		t.Fatal(err)
	}
	if !r.cert.Equal(root) {
		t.Errorf("the keys table holds another root than the chain's")
	}

	// Refusals change nothing.
	_, errs = run(exitFailure, "domain", "add", suffix, "--self-signed")
	if !strings.Contains(errs, "already in the store") || !strings.Contains(errs, "replace-cert "+suffix+" --self-signed") {
		t.Errorf("second add: %s", errs)
	}
	for _, args := range [][]string{
		{"domain", "add", "other.example.com", "--self-signed", "--pfx", filepath.Join(dir, "x.pfx")},
		{"domain", "add", "other.example.com", "--self-signed", "--password-file", filepath.Join(dir, "pw")},
		{"domain", "add", "other.example.com"},
		{"domain", "add", "com", "--self-signed"},
	} {
		code, _, errs := runCLIStdin(t, "", append(args, "--db", db, "--key-file", key)...)
		all.WriteString(errs)
		if code != exitUsage {
			t.Errorf("amtd %s: exit %d, want %d (%s)", strings.Join(args, " "), code, exitUsage, errs)
		}
	}
	if got := load(); !bytes.Equal(got.pfx, first.pfx) {
		t.Errorf("a refused command changed the stored certificate")
	}
	{
		s := openStore()
		ks, err := s.Keys().List(ctx, store.KeyCA)
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range ks {
			if strings.Contains(k.Name, "other.example.com") || k.Name == "provroot/com" {
				t.Errorf("a refused command left a root: %s", k.Name)
			}
		}
	}

	// Renewal: a new leaf under the same root, so devices need nothing new.
	out, _ = run(exitOK, "domain", "replace-cert", suffix, "--self-signed")
	renewed := load()
	if renewed.rootHash != first.rootHash || !strings.Contains(out, first.rootHash) || !strings.Contains(out, "need nothing new") {
		t.Errorf("replace-cert --self-signed: root %s, was %s\n%s", renewed.rootHash, first.rootHash, out)
	}
	if renewed.leaf.SerialNumber.Cmp(first.leaf.SerialNumber) == 0 || bytes.Equal(renewed.pw, first.pw) {
		t.Errorf("replace-cert --self-signed did not issue a new leaf under a new password")
	}
	// Removed and added again: the root devices trust is kept.
	out, _ = run(exitOK, "domain", "remove", suffix)
	if !strings.Contains(out, "provroot/"+suffix) {
		t.Errorf("remove does not say the root stays: %s", out)
	}
	run(exitOK, "domain", "add", suffix, "--self-signed")
	if again := load(); again.rootHash != first.rootHash {
		t.Errorf("re-added domain got a new root %s, devices trust %s", again.rootHash, first.rootHash)
	}
	// A bought certificate can be replaced by a self-signed one, which
	// then has a root of its own.
	td := filepath.Join("..", "..", "provcert", "testdata")
	run(exitOK, "domain", "add", "corp.example.com", "--pfx", filepath.Join(td, "modern.pfx"), "--password-file", filepath.Join(td, "password.txt"))
	out, _ = run(exitOK, "domain", "replace-cert", "corp.example.com", "--self-signed")
	if strings.Contains(out, first.rootHash) || !strings.Contains(out, "provroot/corp.example.com") {
		t.Errorf("replace-cert of a bought certificate: %s", out)
	}

	// No secret in any output, none in the clear in the database.
	keyBlk, _ := pem.Decode(first.rootPEM[bytes.Index(first.rootPEM, []byte("-----BEGIN PRIVATE KEY")):])
	if keyBlk == nil {
		t.Fatal("no key in the stored root")
	}
	text := all.String()
	if strings.Contains(text, "PRIVATE KEY") || strings.Contains(text, base64.StdEncoding.EncodeToString(keyBlk.Bytes)[:40]) {
		t.Errorf("root key material in the output")
	}
	for _, st := range []stored{first, renewed} {
		if strings.Contains(text, string(st.pw)) {
			t.Errorf("a .pfx password is in the output")
		}
	}
	raw, _ := os.ReadFile(db)
	wal, _ := os.ReadFile(db + "-wal")
	for _, secretBytes := range [][]byte{keyBlk.Bytes[len(keyBlk.Bytes)-64:], first.pw, renewed.pw, []byte("PRIVATE KEY")} {
		if bytes.Contains(raw, secretBytes) || bytes.Contains(wal, secretBytes) {
			t.Errorf("secret material in the database in the clear")
		}
	}
}
