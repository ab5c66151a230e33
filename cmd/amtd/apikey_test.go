package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"amtd/secret"
	"amtd/store"
)

func TestAPIKeyCLI(t *testing.T) {
	dir := t.TempDir()
	db, key := filepath.Join(dir, "amtd.db"), filepath.Join(dir, "master.key")
	if code, _, errs := runCLI(t, "store", "init", "--db", db, "--key-file", key, "--generate-key"); code != exitOK {
		t.Fatalf("store init: %d %s", code, errs)
	}
	st := []string{"--db", db, "--key-file", key}
	run := func(args ...string) (int, string, string) {
		return runCLI(t, append(append([]string{"apikey"}, args...), st...)...)
	}
	// authenticate asks the store, as the API does, whether tok is live.
	authenticate := func(tok string) (store.APIKey, error) {
		t.Helper()
		s, err := store.Open(context.Background(), store.Options{Path: db, KeyFile: key})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		return s.APIKeys().Authenticate(context.Background(), secret.FromString(tok))
	}

	if code, out, _ := run("list"); code != exitOK || !strings.Contains(out, "no API keys") {
		t.Fatalf("empty list: %d %s", code, out)
	}
	code, out, errs := run("create", "--role", "Operator", "--name", "grafana")
	if code != exitOK || !strings.Contains(errs, "created API key grafana") {
		t.Fatalf("create: %d %s %s", code, out, errs)
	}
	tok := strings.TrimSpace(out)
	if !strings.HasPrefix(tok, "amtd_") || strings.Contains(tok, "\n") {
		t.Fatalf("create printed %q, want one token line", out)
	}
	if k, err := authenticate(tok); err != nil || k.Role != store.RoleOperator || k.Name != "grafana" {
		t.Fatalf("the printed token does not authenticate as operator grafana: %+v %v", k, err)
	}
	code, out2, _ := run("create", "--role", "viewer")
	if code != exitOK {
		t.Fatalf("create without name: %d", code)
	}
	tok2 := strings.TrimSpace(out2)

	code, out, _ = run("list")
	if code != exitOK || !strings.Contains(out, "grafana") || !strings.Contains(out, "operator") || !strings.Contains(out, "viewer") {
		t.Fatalf("list: %d %s", code, out)
	}
	if strings.Contains(out, tok) || strings.Contains(out, tok2) {
		t.Fatal("list shows a token")
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"create"}, exitUsage, "--role must be viewer, operator or admin"},
		{[]string{"create", "--role", "root"}, exitUsage, "--role must be viewer, operator or admin"},
		{[]string{"create", "--role", "viewer", "--name", "grafana"}, exitFailure, "already named grafana"},
		{[]string{"create", "--role", "viewer", "--name", "a\nb"}, exitUsage, "printable"},
		{[]string{"revoke", "nope"}, exitFailure, "no key named nope"},
		{[]string{"revoke"}, exitUsage, "want 1 argument"},
		{[]string{"frobnicate"}, exitUsage, "unknown command"},
	} {
		code, _, errs := run(c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("apikey %v: %d %q, want %d %q", c.args, code, errs, c.code, c.want)
		}
	}

	if code, out, errs := run("revoke", "grafana", "--reason", "dashboard retired"); code != exitOK || !strings.Contains(out, "revoked API key grafana") {
		t.Fatalf("revoke: %d %s %s", code, out, errs)
	}
	if _, err := authenticate(tok); !errors.Is(err, store.ErrUnauthorized) {
		t.Errorf("a revoked token still authenticates: %v", err)
	}
	if _, err := authenticate(tok2); err != nil {
		t.Errorf("revoking grafana ended the other key: %v", err)
	}
	if code, _, errs := run("revoke", "grafana"); code != exitOK || !strings.Contains(errs, "already revoked") {
		t.Errorf("revoke twice: %d %s", code, errs)
	}
	// The name is free again once its key is revoked.
	if code, _, errs := run("create", "--role", "admin", "--name", "grafana"); code != exitOK {
		t.Errorf("create after revoke: %d %s", code, errs)
	}

	// Only hashes are stored: no token in the database file.
	for _, f := range []string{db, db + "-wal"} {
		raw, err := os.ReadFile(f)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		for _, tk := range []string{tok, tok2} {
			if bytes.Contains(raw, []byte(tk)) {
				t.Errorf("a token is in %s", filepath.Base(f))
			}
		}
	}
}
