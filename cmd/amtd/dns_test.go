package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"amtd/store"
)

// runDNS runs `amtd dns ARGS` in-process.
func runDNS(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	code := cmdDNS(c, args)
	return code, out.String(), errb.String()
}

func TestDNSTSIGCLI(t *testing.T) {
	dir := t.TempDir()
	db, key := filepath.Join(dir, "amtd.db"), filepath.Join(dir, "master.key")
	if code, out, errs := runCLI(t, "store", "init", "--generate-key", "--db", db, "--key-file", key); code != exitOK {
		t.Fatalf("store init: %d\n%s%s", code, out, errs)
	}
	base := []string{"--db", db, "--key-file", key}
	var seen strings.Builder
	run := func(want int, stdin string, args ...string) string {
		t.Helper()
		code, out, errs := runDNS(t, stdin, args...)
		if code != want {
			t.Fatalf("amtd dns %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errs)
		}
		seen.WriteString(errs)
		return out + errs
	}

	run(exitUsage, "")
	run(exitUsage, "", "tsig")
	if out := run(exitOK, "", "tsig", "add", "-h"); !strings.Contains(out, "--secret-file") || !strings.Contains(out, "amtd dns tsig add") {
		t.Fatalf("help: %s", out)
	}
	if out := run(exitOK, "", append([]string{"tsig", "list"}, base...)...); !strings.Contains(out, "no TSIG keys") {
		t.Fatalf("empty list: %s", out)
	}
	run(exitUsage, "", append([]string{"tsig", "add", "both"}, append(base, "--generate", "--secret-file", "x")...)...)
	run(exitUsage, "", append([]string{"tsig", "add", "neither"}, base...)...)
	run(exitUsage, "", append([]string{"tsig", "add", "bad name!", "--generate"}, base...)...)

	// --generate prints the secret once, as a key clause BIND accepts.
	out := run(exitOK, "", append([]string{"tsig", "add", "amtd-reg", "--generate"}, base...)...)
	m := regexp.MustCompile(`key "amtd-reg" \{\n\talgorithm hmac-sha256;\n\tsecret "([A-Za-z0-9+/=]+)";\n\};`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no key clause in:\n%s", out)
	}
	generated, _ := base64.StdEncoding.DecodeString(m[1])
	if len(generated) != 32 {
		t.Fatalf("generated secret is %d bytes", len(generated))
	}

	// --secret-file takes tsig-keygen's output, or a bare secret on stdin.
	clause := filepath.Join(dir, "ddns.key")
	fromFile := []byte("a secret from tsig-keygen 32b...")
	os.WriteFile(clause, []byte("key \"ddns\" {\n\talgorithm hmac-sha256;\n\tsecret \""+base64.StdEncoding.EncodeToString(fromFile)+"\";\n};\n"), 0o600)
	if out := run(exitOK, "", append([]string{"tsig", "add", "ddns", "--secret-file", clause}, base...)...); strings.Contains(out, base64.StdEncoding.EncodeToString(fromFile)) {
		t.Fatal("the secret from the file was printed")
	}
	fromStdin := []byte("another secret via stdin, 32 b..")
	if out := run(exitOK, base64.StdEncoding.EncodeToString(fromStdin)+"\n", append([]string{"tsig", "add", "ddns", "--secret-file", "-"}, base...)...); !strings.Contains(out, "replaced TSIG key ddns") {
		t.Fatalf("replacing: %s", out)
	}
	short := filepath.Join(dir, "short.key")
	os.WriteFile(short, []byte(base64.StdEncoding.EncodeToString([]byte("short"))), 0o600)
	if out := run(exitFailure, "", append([]string{"tsig", "add", "weak", "--secret-file", short}, base...)...); !strings.Contains(out, "at least 16") {
		t.Fatalf("short secret: %s", out)
	}

	out = run(exitOK, "", append([]string{"tsig", "list"}, base...)...)
	if !strings.Contains(out, "amtd-reg") || !strings.Contains(out, "ddns") || strings.Contains(out, "weak") {
		t.Fatalf("list:\n%s", out)
	}

	// What the DNS service will read: the raw bytes, sealed.
	s, err := store.Open(context.Background(), store.Options{Path: db, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for name, want := range map[string][]byte{"amtd-reg": generated, "ddns": fromStdin} {
		v, err := s.Keys().Get(context.Background(), name)
		if err != nil || !bytes.Equal(v.Reveal(), want) {
			t.Fatalf("key %s in the store: err %v, wrong value %v", name, err, !bytes.Equal(v.Reveal(), want))
		}
	}
	raw, _ := os.ReadFile(db)
	for _, secretBytes := range [][]byte{generated, fromFile, fromStdin} {
		if bytes.Contains(raw, secretBytes) || strings.Contains(seen.String(), base64.StdEncoding.EncodeToString(secretBytes)) {
			t.Fatal("a TSIG secret is in the database file unsealed or in stderr")
		}
	}
}
