package main

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"amtd/secret"
	"amtd/store"
)

const cliDev = "33221100-5544-7766-8899-aabbccddeeff"

// runCLI runs amtd in-process with args and returns exit code, stdout, stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &cli{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string {
		if k == "CREDENTIALS_DIRECTORY" || k == "JOURNAL_STREAM" {
			return ""
		}
		return os.Getenv(k)
	}}
	code := c.main(args)
	return code, out.String(), errb.String()
}

// plaintexts are the secrets the CLI test writes; none may appear anywhere
// but export-secret's standard output.
var plaintexts = []string{"Adm1n!first-pass", "Adm1n!second-pass", "MEBx!pass-9876", "Mps0123456789!@#", "tsig-secret-bytes-base64", "pfx-password-xyzzy"}

func seedStore(t *testing.T, db, key string) {
	t.Helper()
	ctx := store.WithActor(context.Background(), "test")
	s, err := store.Open(ctx, store.Options{Path: db, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	x := s.Secrets()
	for _, step := range []error{
		x.SetPending(ctx, cliDev, store.AMTAdmin, secret.FromString(plaintexts[0]), "activation"),
		x.Promote(ctx, cliDev, store.AMTAdmin),
		x.SetPending(ctx, cliDev, store.AMTAdmin, secret.FromString(plaintexts[1]), "changepassword"),
		x.SetPending(ctx, cliDev, store.MEBx, secret.FromString(plaintexts[2]), "activation"),
		x.SetPending(ctx, cliDev, store.MPS, secret.FromString(plaintexts[3]), "cira"),
		s.Keys().Put(ctx, "ddns", store.KeyTSIG, secret.FromString(plaintexts[4]), "test", "setup"),
		s.Domains().Put(ctx, store.Domain{Suffix: "corp.example.com", PFX: secret.FromString("pfx-der-bytes"), PFXPassword: secret.FromString(plaintexts[5])}, "test", "upload"),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
}

func TestStoreCLI(t *testing.T) {
	dir := t.TempDir()
	db, key, newKey := filepath.Join(dir, "amtd.db"), filepath.Join(dir, "master.key"), filepath.Join(dir, "new.key")
	var logs strings.Builder // every stream of every command but export-secret's stdout
	run := func(wantCode int, args ...string) (string, string) {
		t.Helper()
		code, out, errs := runCLI(t, args...)
		if code != wantCode {
			t.Fatalf("amtd %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out, errs)
		}
		logs.WriteString(errs)
		if len(args) < 2 || args[1] != "export-secret" {
			logs.WriteString(out)
		}
		return out, errs
	}
	base := []string{"--db", db, "--key-file", key}

	run(exitUsage, "store")
	out, _ := run(exitOK, "store", "-h")
	if !strings.Contains(out, "rotate-key") {
		t.Errorf("store -h: %s", out)
	}
	out, _ = run(exitOK, "store", "export-secret", "-h")
	if !strings.Contains(out, "--reason") && !strings.Contains(out, "-reason") {
		t.Errorf("export-secret -h: %s", out)
	}
	run(exitUsage, "store", "init", "--db", db, "--generate-key") // no key file named
	out, _ = run(exitOK, append([]string{"store", "init", "--generate-key"}, base...)...)
	if !strings.Contains(out, "created the appliance CA") {
		t.Errorf("init does not report the appliance CA: %s", out)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	_, errs := run(exitFailure, append([]string{"store", "init"}, base...)...)
	if !strings.Contains(errs, "already exists") {
		t.Errorf("second init: %s", errs)
	}
	seedStore(t, db, key)

	out, _ = run(exitOK, append([]string{"store", "verify"}, base...)...)
	if !strings.Contains(out, "all 8 sealed values open") {
		t.Errorf("verify: %s", out)
	}
	_, errs = run(exitUsage, append([]string{"store", "export-secret", cliDev, "amt_admin"}, base...)...)
	if !strings.Contains(errs, "--reason") {
		t.Errorf("export without reason: %s", errs)
	}
	out, _ = run(exitOK, append([]string{"store", "export-secret", strings.ToUpper(cliDev), "amt_admin", "--reason", "ticket 7"}, base...)...)
	if out != plaintexts[0]+"\n" {
		t.Errorf("export current: got %d bytes, want the first admin password", len(out))
	}
	out, _ = run(exitOK, append([]string{"store", "export-secret", cliDev, "amt_admin", "--state", "pending", "--reason", "ticket 8"}, base...)...)
	if out != plaintexts[1]+"\n" {
		t.Error("export pending: wrong value")
	}
	run(exitFailure, append([]string{"store", "export-secret", cliDev, "root", "--reason", "x"}, base...)...)

	backup := filepath.Join(dir, "copy.db")
	run(exitOK, append([]string{"store", "backup", backup}, base...)...)
	run(exitOK, "store", "verify", "--db", backup, "--key-file", key)

	if err := store.GenerateKeyFile(newKey); err != nil {
		t.Fatal(err)
	}
	run(exitUsage, append([]string{"store", "rotate-key"}, base...)...)
	out, _ = run(exitOK, append([]string{"store", "rotate-key", "--new-key-file", newKey, "--reason", "test"}, base...)...)
	if !strings.Contains(out, "re-sealed 8 values") {
		t.Errorf("rotate-key: %s", out)
	}
	_, errs = run(exitFailure, append([]string{"store", "verify"}, base...)...)
	if !strings.Contains(errs, "wrong master key") || !strings.Contains(errs, "retired") {
		t.Errorf("verify with the retired key: %s", errs)
	}
	run(exitOK, "store", "verify", "--db", db, "--key-file", newKey)

	// Move one sealed value onto another row: verify names it and fails.
	raw, err := sql.Open("sqlite3", "file:"+db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`UPDATE device_secrets SET value_sealed = (SELECT value_sealed FROM device_secrets WHERE kind = 'mebx') WHERE kind = 'mps'`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	out, _ = run(exitFailure, "store", "verify", "--db", db, "--key-file", newKey)
	if !strings.Contains(out, "FAIL device_secrets.value_sealed of "+cliDev+"/mps/") || !strings.Contains(out, "copied or swapped") ||
		!strings.Contains(out, "1 of 8 sealed values failed") {
		t.Errorf("verify of a swapped value: %s", out)
	}

	// No plaintext in any log line or output, nor in the database files.
	for _, p := range plaintexts {
		if strings.Contains(logs.String(), p) {
			t.Errorf("a password appears in the command output or logs")
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.db*"))
	if len(files) < 2 {
		t.Fatalf("database files: %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range plaintexts {
			if bytes.Contains(b, []byte(p)) {
				t.Errorf("%s holds a plaintext password", filepath.Base(f))
			}
		}
	}
}

func TestStoreCLIRefusesGroupReadableKey(t *testing.T) {
	dir := t.TempDir()
	db, key := filepath.Join(dir, "amtd.db"), filepath.Join(dir, "k")
	if code, _, errs := runCLI(t, "store", "init", "--generate-key", "--db", db, "--key-file", key); code != exitOK {
		t.Fatalf("init: %s", errs)
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI(t, "store", "verify", "--db", db, "--key-file", key)
	if code != exitFailure || !strings.Contains(errs, "chmod 600 "+key) {
		t.Errorf("group-readable key: exit %d: %s", code, errs)
	}
}
