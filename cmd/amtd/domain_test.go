package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"amtd/provcert"
)

// runCLIStdin is runCLI with standard input.
func runCLIStdin(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	code := c.main(args)
	return code, out.String(), errb.String()
}

// expiringPFX makes a provisioning chain (root and leaf for
// amt.lab.example.com) whose leaf expires in ten days.
func expiringPFX(t *testing.T, path, password string) {
	t.Helper()
	rootKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rootT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Expiring Test Root"}, NotBefore: now.AddDate(-1, 0, 0), NotAfter: now.AddDate(5, 0, 0),
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootT, rootT, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	leafT := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "amt.lab.example.com"}, NotBefore: now.AddDate(-1, 0, 0), NotAfter: now.Add(10*24*time.Hour + time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, UnknownExtKeyUsage: []asn1.ObjectIdentifier{provcert.OIDAMTProvisioning}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafT, root, &leafKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	pfx, err := pkcs12.Modern.Encode(leafKey, leaf, []*x509.Certificate{root}, password)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pfx, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDomainCLI drives amtd domain with the OpenSSL-made files of
// provcert/testdata and a real store: add (password file, standard input),
// refusals that leave the store as it was, list, show, replace-cert and
// remove; the .pfx password appears in no output and not in the database.
func TestDomainCLI(t *testing.T) {
	dir := t.TempDir()
	db, key := filepath.Join(dir, "amtd.db"), filepath.Join(dir, "master.key")
	if code, _, errs := runCLI(t, "store", "init", "--db", db, "--key-file", key, "--generate-key"); code != exitOK {
		t.Fatalf("store init: %d %s", code, errs)
	}
	td := filepath.Join("..", "..", "provcert", "testdata")
	pwFile := filepath.Join(td, "password.txt")
	pwBytes, err := os.ReadFile(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	pw := strings.TrimSpace(string(pwBytes))
	rootSHA, err := os.ReadFile(filepath.Join(td, "root.sha256"))
	if err != nil {
		t.Fatal(err)
	}
	root := strings.TrimSpace(string(rootSHA))
	soon := filepath.Join(dir, "soon.pfx")
	expiringPFX(t, soon, "soon-pass")

	var all strings.Builder
	run := func(want int, stdin string, args ...string) (string, string) {
		t.Helper()
		code, out, errs := runCLIStdin(t, stdin, append(args, "--db", db, "--key-file", key)...)
		all.WriteString(out + errs)
		if code != want {
			t.Fatalf("amtd %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errs)
		}
		return out, errs
	}
	suffixes := func() []string {
		t.Helper()
		out, _ := run(exitOK, "", "domain", "list", "--json")
		var l []struct {
			Suffix string `json:"suffix"`
		}
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatalf("list --json: %v\n%s", err, out)
		}
		var s []string
		for _, d := range l {
			s = append(s, d.Suffix)
		}
		return s
	}

	out, errs := run(exitOK, "", "domain", "add", "Corp.Example.com.", "--pfx", filepath.Join(td, "modern.pfx"), "--password-file", pwFile)
	flat := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{"added domain corp.example.com", "leaf CN: amtprov.corp.example.com",
		"chain: amtprov.corp.example.com ← amtd test intermediate ← amtd test root (self-signed root)", "root SHA-256: " + root, "root: " + provcert.NotDefaultRoot, "days left)"} {
		if !strings.Contains(flat, want) {
			t.Errorf("add output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errs, "warning: ") || !strings.Contains(errs, "not one Intel AMT trusts by default") {
		t.Errorf("add: no default-root warning: %s", errs)
	}
	// Password on standard input, legacy RC2 file, the parent domain.
	run(exitOK, pw+"\n", "domain", "add", "example.com", "--pfx", filepath.Join(td, "legacy.pfx"))
	run(exitOK, "soon-pass", "domain", "add", "lab.example.com", "--pfx", soon, "--password-file", "-")

	// Refusals: nothing changes.
	_, errs = run(exitFailure, pw, "domain", "add", "corp.example.com", "--pfx", filepath.Join(td, "3des.pfx"))
	if !strings.Contains(errs, "already in the store") || !strings.Contains(errs, "replace-cert") {
		t.Errorf("second add: %s", errs)
	}
	_, errs = run(exitFailure, "wrong\n", "domain", "add", "site.example.org", "--pfx", filepath.Join(td, "modern.pfx"))
	if !strings.Contains(errs, "password does not open the file") {
		t.Errorf("wrong password: %s", errs)
	}
	_, errs = run(exitFailure, pw, "domain", "add", "corp.example.net", "--pfx", filepath.Join(td, "modern.pfx"))
	if !strings.Contains(errs, `error: the leaf CN "amtprov.corp.example.com" is not in the domain corp.example.net`) || !strings.Contains(errs, "was not stored") {
		t.Errorf("other domain: %s", errs)
	}
	_, errs = run(exitFailure, pw, "domain", "add", "x.example.com", "--pfx", pwFile)
	if !strings.Contains(errs, "not a readable .pfx") {
		t.Errorf("not a pfx: %s", errs)
	}
	_, errs = run(exitFailure, pw, "domain", "replace-cert", "nope.example.com", "--pfx", filepath.Join(td, "3des.pfx"))
	if !strings.Contains(errs, "no domain nope.example.com in the store") {
		t.Errorf("replace absent: %s", errs)
	}
	if got := strings.Join(suffixes(), " "); got != "corp.example.com example.com lab.example.com" {
		t.Fatalf("domains after refusals: %s", got)
	}

	out, _ = run(exitOK, "", "domain", "list")
	if !strings.Contains(out, "amtprov.corp.example.com") || !strings.Contains(out, "days left: renew it now") || strings.Count(out, "days left") != 3 {
		t.Errorf("list:\n%s", out)
	}
	out, _ = run(exitOK, "", "domain", "show", "lab.example.com")
	flat = strings.Join(strings.Fields(out), " ")
	if !strings.Contains(flat, "leaf CN: amt.lab.example.com") || !strings.Contains(flat, "days left: renew it now") || !strings.Contains(flat, "checks: warning: the root \"Expiring Test Root\"") {
		t.Errorf("show:\n%s", out)
	}
	out, _ = run(exitOK, "", "domain", "show", "corp.example.com", "--json")
	var j struct {
		Suffix, LeafCN, RootSHA256 string
		DaysLeft                   int `json:"days_left"`
		Problems                   []string
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil || j.Suffix != "corp.example.com" || j.DaysLeft < 365 || len(j.Problems) != 1 {
		t.Errorf("show --json: %v %+v\n%s", err, j, out)
	}

	out, _ = run(exitOK, pw, "domain", "replace-cert", "corp.example.com", "--pfx", filepath.Join(td, "3des.pfx"))
	if !strings.Contains(out, "replaced the certificate of domain corp.example.com") {
		t.Errorf("replace-cert: %s", out)
	}
	out, _ = run(exitOK, "", "domain", "remove", "example.com")
	if !strings.Contains(out, "removed domain example.com") {
		t.Errorf("remove: %s", out)
	}
	_, errs = run(exitFailure, "", "domain", "remove", "example.com")
	if !strings.Contains(errs, "no domain example.com") {
		t.Errorf("remove again: %s", errs)
	}
	if got := strings.Join(suffixes(), " "); got != "corp.example.com lab.example.com" {
		t.Errorf("domains at the end: %s", got)
	}

	// Usage errors; a password never comes from the command line.
	for _, args := range [][]string{{"domain"}, {"domain", "frob"}, {"domain", "add", "corp.example.com"},
		{"domain", "add", "com", "--pfx", soon}, {"domain", "add", "a.example.com", "--pfx", soon, "--password", "x"}, {"domain", "show"}} {
		code, _, _ := runCLIStdin(t, "", append(args, "--db", db, "--key-file", key)...)
		if code != exitUsage {
			t.Errorf("amtd %s: exit %d, want %d", strings.Join(args, " "), code, exitUsage)
		}
	}
	if code, out, _ := runCLI(t, "domain", "-h"); code != exitOK || !strings.Contains(out, "replace-cert") {
		t.Errorf("domain -h: %d %s", code, out)
	}

	raw, _ := os.ReadFile(db)
	wal, _ := os.ReadFile(db + "-wal")
	for _, p := range []string{pw, "soon-pass"} {
		if strings.Contains(all.String(), p) {
			t.Errorf("a .pfx password is in the output")
		}
		if bytes.Contains(raw, []byte(p)) || bytes.Contains(wal, []byte(p)) {
			t.Errorf("a .pfx password is in the database in the clear")
		}
	}
}
