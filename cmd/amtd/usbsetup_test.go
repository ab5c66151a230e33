package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amtd/amt/setupbin"
	"amtd/amtsim"
	"amtd/secret"
	"amtd/store"
)

func TestUSBSetupCLI(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "amtd.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[Site]\nDomain=corp.example.com\nAddress=192.0.2.10\n[Store]\nPath=%s/amtd.db\nKeyFile=%s/master.key\n[Provisioning]\nHelloListen=0.0.0.0:9971\n", dir, dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI(t, "store", "init", "-c", conf, "--generate-key"); code != exitOK {
		t.Fatalf("store init: %s", errs)
	}
	sum := sha256.Sum256([]byte("the domain's root"))
	root := hex.EncodeToString(sum[:])
	st, err := store.Open(context.Background(), store.Options{Path: filepath.Join(dir, "amtd.db"), KeyFile: filepath.Join(dir, "master.key")})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Domains().Put(context.Background(), store.Domain{Suffix: "corp.example.com", PFX: secret.FromString("pfx"), PFXPassword: secret.FromString("pw"),
		RootSHA256: root, LeafExpiry: time.Now().AddDate(1, 0, 0)}, "test", ""); err != nil {
		t.Fatal(err)
	}
	st.Close()

	key := filepath.Join(dir, "setup.bin")
	code, out, errs := runCLI(t, "usb-setup", "--domain", "corp.example.com", "--out", key, "--records", "3", "-c", conf)
	if code != exitOK || !strings.Contains(out, "3 record(s) for domain corp.example.com") || !strings.Contains(out, "hello to:       192.0.2.10 port 9971") {
		t.Fatalf("usb-setup: %d %s %s", code, out, errs)
	}
	b, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	f, err := setupbin.Decode(b)
	if err != nil || len(f.Records) != 3 {
		t.Fatalf("decode: %v", err)
	}
	idSum := sha256.Sum256(b)
	id := hex.EncodeToString(idSum[:])
	seen := map[string]bool{}
	for i, r := range f.Records {
		s, _, err := setupbin.SettingsOf(r)
		if err != nil || s.CurrentMEBxPassword != "admin" || s.PKIDNSSuffix != "corp.example.com" || s.ServerAddr.String() != "192.0.2.10" ||
			s.ServerPort != 9971 || !s.Start || hex.EncodeToString(s.RootHash.Hash) != root {
			t.Fatalf("record %d: %+v %v", i+1, s, err)
		}
		code, out, errs := runCLI(t, "usb-setup", "export", id, fmt.Sprint(i+1), "--reason", "test", "-c", conf)
		if code != exitOK || strings.TrimSpace(out) != s.NewMEBxPassword {
			t.Fatalf("export record %d: %d %q %s", i+1, code, out, errs)
		}
		seen[s.NewMEBxPassword] = true
	}
	if len(seen) != 3 {
		t.Fatal("records share a MEBx password")
	}
	code, out, _ = runCLI(t, "usb-setup", "list", "-c", conf)
	if code != exitOK || strings.Count(out, id) != 3 {
		t.Fatalf("list: %s", out)
	}
	for p := range seen {
		if strings.Contains(out, p) {
			t.Fatal("list prints a password")
		}
	}
	// A factory machine takes record 1 and trusts the domain's root.
	d, err := amtsim.New(amtsim.Config{Net: amtsim.NetIdentity{Suffix: "corp.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := d.ApplySetupBinFile(key); err != nil || res.Record != 1 {
		t.Fatalf("amtsim: %v", err)
	}
	if s := d.Snapshot(); s.TrustedDNSSuffix != "corp.example.com" || s.UserHashes[len(s.UserHashes)-1].Hex != root {
		t.Fatalf("device %+v", s.UserHashes)
	}

	weak := filepath.Join(dir, "weak")
	_ = os.WriteFile(weak, []byte("password\n"), 0o600)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"usb-setup", "--domain", "other.example", "--out", filepath.Join(dir, "x.bin")}, exitFailure, "no domain other.example in the store"},
		{[]string{"usb-setup", "--domain", "corp.example.com", "--out", filepath.Join(dir, "x.bin"), "--records", "0"}, exitUsage, "a key holds 1 to"},
		{[]string{"usb-setup", "--domain", "corp.example.com", "--out", filepath.Join(dir, "x.bin"), "--mebx-password-file", weak}, exitUsage, "breaks AMT's rule"},
		{[]string{"usb-setup", "--domain", "corp.example.com", "--out", filepath.Join(dir, "x.bin"), "--server", "2001:db8::1"}, exitUsage, "want an IPv4 address"},
		{[]string{"usb-setup", "--out", filepath.Join(dir, "x.bin")}, exitUsage, "--domain SUFFIX and --out FILE are required"},
		{[]string{"usb-setup", "export", id, "1"}, exitUsage, "--reason is required"},
	} {
		code, _, errs := runCLI(t, append(c.args, "-c", conf)...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: %d %q, want %d %q", c.args, code, errs, c.code, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.bin")); err == nil {
		t.Fatal("a refused usb-setup wrote a file")
	}
}
