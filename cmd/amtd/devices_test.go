package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"amtd/store"
)

func TestDevicesCLI(t *testing.T) {
	dir := t.TempDir()
	db, key := filepath.Join(dir, "amtd.db"), filepath.Join(dir, "master.key")
	if code, _, errs := runCLI(t, "store", "init", "--db", db, "--key-file", key, "--generate-key"); code != exitOK {
		t.Fatalf("store init: %d %s", code, errs)
	}
	seedStore(t, db, key)
	ctx := context.Background()
	s, err := store.Open(ctx, store.Options{Path: db, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	devs := s.Devices()
	for _, st := range []struct{ to, step, detail string }{
		{"activating", "connect", "192.0.2.50:16993"},
		{"failed", "error", "commit: AMT_SetupAndConfigurationService.CommitChanges returned 1"},
	} {
		if err := devs.SetState(ctx, cliDev, st.to, st.step, st.detail, st.to == "failed"); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	flags := []string{"--db", db, "--key-file", key}

	code, out, errs := runCLI(t, append([]string{"devices"}, flags...)...)
	if code != exitOK || !strings.Contains(out, cliDev) || !strings.Contains(out, "failed") || !strings.Contains(out, "commit: AMT_Setup") {
		t.Fatalf("devices (list): %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = runCLI(t, append([]string{"devices", "show", strings.ToUpper(cliDev)}, flags...)...)
	if code != exitOK {
		t.Fatalf("show: %d %s", code, errs)
	}
	flat := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{"state: failed", "admin password: current, pending", "MEBx password: pending", "MPS password: pending", "last error: commit: AMT_SetupAndConfigurationService.CommitChanges returned 1"} {
		if !strings.Contains(flat, want) {
			t.Errorf("show lacks %q:\n%s%s", want, out, errs)
		}
	}
	code, out, _ = runCLI(t, append([]string{"devices", "show", cliDev, "--json"}, flags...)...)
	var j struct {
		UUID      string
		Passwords passwordStates
	}
	if code != exitOK || json.Unmarshal([]byte(out), &j) != nil || j.UUID != cliDev || len(j.Passwords.Admin) != 2 {
		t.Fatalf("show --json: %d %s", code, out)
	}
	code, out, _ = runCLI(t, append([]string{"devices", "history", cliDev}, flags...)...)
	if code != exitOK || !strings.Contains(strings.Join(strings.Fields(out), " "), "activating connect 192.0.2.50:16993") || !strings.Contains(out, "192.0.2.50:16993") || strings.Index(out, "activating") > strings.Index(out, "failed") {
		t.Fatalf("history: %d\n%s", code, out)
	}
	for _, args := range [][]string{{"devices"}, {"devices", "show", cliDev}, {"devices", "show", cliDev, "--json"}, {"devices", "--json"}} {
		_, out, errs := runCLI(t, append(args, flags...)...)
		for _, p := range plaintexts {
			if strings.Contains(out+errs, p) {
				t.Fatalf("%v prints a stored secret", args)
			}
		}
	}

	code, _, errs = runCLI(t, append([]string{"devices", "show", "00000000-0000-0000-0000-000000000001"}, flags...)...)
	if code != exitFailure || !strings.Contains(errs, "no device 00000000-0000-0000-0000-000000000001 in the store") {
		t.Fatalf("unknown device: %d %s", code, errs)
	}
	code, _, errs = runCLI(t, append([]string{"devices", "show", "not-a-uuid"}, flags...)...)
	if code != exitUsage {
		t.Fatalf("bad uuid: %d %s", code, errs)
	}
	if code, _, _ := runCLI(t, "devices", "frobnicate"); code != exitUsage {
		t.Fatalf("unknown subcommand: %d", code)
	}
}
