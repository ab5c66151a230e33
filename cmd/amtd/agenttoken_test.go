package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"amtd/netsvc/provision"
)

func TestAgentTokenCLI(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent-token")
	code, out, errs := runCLI(t, "agent-token", "--out", p)
	if code != exitOK {
		t.Fatalf("%d %s", code, errs)
	}
	tok, err := provision.ReadAgentToken(p)
	if err != nil {
		t.Fatalf("the daemon would not read the file: %v", err)
	}
	if !strings.Contains(out, tok.RevealString()) || len(tok.RevealString()) < 40 {
		t.Fatalf("output %q does not show the %d-character token", out, tok.Len())
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %o", fi.Mode().Perm())
	}
	if code, _, errs := runCLI(t, "agent-token", "--out", p); code != exitFailure || !strings.Contains(errs, "--force") {
		t.Fatalf("overwrite without --force: %d %s", code, errs)
	}
	if code, _, _ := runCLI(t, "agent-token", "--out", p, "--force"); code != exitOK {
		t.Fatal("--force failed")
	}
	if again, _ := provision.ReadAgentToken(p); again.Equal(tok) {
		t.Fatal("--force wrote the same token")
	}
	if code, _, _ := runCLI(t, "agent-token"); code != exitUsage {
		t.Fatal("no --out accepted")
	}
}
