package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// TestDevicesCIRA: what the CIRA relay writes to the store (PutCIRALinks)
// shows in list and show: up since, last seen, where from and the ports
// forwarded for a connected device; down since for one that left.
func TestDevicesCIRA(t *testing.T) {
	dir := t.TempDir()
	db, key := filepath.Join(dir, "amtd.db"), filepath.Join(dir, "master.key")
	if code, _, errs := runCLI(t, "store", "init", "--db", db, "--key-file", key, "--generate-key"); code != exitOK {
		t.Fatalf("store init: %d %s", code, errs)
	}
	ctx := context.Background()
	s, err := store.Open(ctx, store.Options{Path: db, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	const up, down, never = "4c4c4544-0042-3510-8052-b4c04f4e0701", "4c4c4544-0042-3510-8052-b4c04f4e0702", "4c4c4544-0042-3510-8052-b4c04f4e0703"
	for _, u := range []string{up, down, never} {
		if err := s.Devices().Put(ctx, store.Device{UUID: u, CIRA: store.CIRAState{MPSUsername: "amtuser" + u[len(u)-4:]}}); err != nil {
			t.Fatal(err)
		}
	}
	since := time.Date(2026, 11, 23, 9, 15, 0, 0, time.UTC)
	err = s.Devices().PutCIRALinks(ctx, []store.CIRALink{
		{UUID: up, Connected: true, ConnectedSince: since, LastSeen: since.Add(2 * time.Hour), Owner: "amtd.corp.example.com",
			BoundPorts: []uint16{16993, 664, 16995, 5900}, RemoteAddr: "198.51.100.7:50123"},
		{UUID: down, ConnectedSince: since, LastSeen: since.Add(time.Minute), LastDisconnected: since.Add(90 * time.Second),
			RemoteAddr: "198.51.100.8:40000"},
	})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	flags := []string{"--db", db, "--key-file", key}

	code, out, errs := runCLI(t, append([]string{"devices", "list"}, flags...)...)
	if code != exitOK {
		t.Fatalf("list: %d %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	header := strings.Join(strings.Fields(lines[0]), " ")
	if !strings.Contains(header, "CIRA LAST SEEN CIRA FROM PORTS") {
		t.Fatalf("list header %q", lines[0])
	}
	row := func(uuid string) string {
		for _, l := range lines {
			if strings.HasPrefix(l, uuid) {
				return strings.Join(strings.Fields(l), " ")
			}
		}
		t.Fatalf("list has no row for %s:\n%s", uuid, out)
		return ""
	}
	for uuid, want := range map[string]string{
		up:    "up since 2026-11-23 09:15:00 2026-11-23 11:15:00 198.51.100.7:50123 664,5900,16993,16995",
		down:  "down since 2026-11-23 09:16:30 2026-11-23 09:16:00 198.51.100.8:40000 -",
		never: "- - - -",
	} {
		if r := row(uuid); !strings.Contains(r, want) {
			t.Errorf("list row %q lacks %q", r, want)
		}
	}

	code, out, errs = runCLI(t, append([]string{"devices", "show", up}, flags...)...)
	flat := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{"CIRA: up since 2026-11-23 09:15:00", "CIRA last seen: 2026-11-23 11:15:00", "CIRA from: 198.51.100.7:50123",
		"CIRA ports: 664,5900,16993,16995", "CIRA relay: amtd.corp.example.com", "MPS user: amtuser0701"} {
		if code != exitOK || !strings.Contains(flat, want) {
			t.Errorf("show %s lacks %q: %d\n%s%s", up, want, code, out, errs)
		}
	}
	code, out, _ = runCLI(t, append([]string{"devices", "show", down}, flags...)...)
	flat = strings.Join(strings.Fields(out), " ")
	if code != exitOK || !strings.Contains(flat, "CIRA: down since 2026-11-23 09:16:30") || !strings.Contains(flat, "CIRA ports: -") || strings.Contains(flat, "CIRA relay") {
		t.Errorf("show %s:\n%s", down, out)
	}
	code, out, _ = runCLI(t, append([]string{"devices", "show", up, "--json"}, flags...)...)
	var j struct{ CIRA store.CIRAState }
	if code != exitOK || json.Unmarshal([]byte(out), &j) != nil || !j.CIRA.Connected || !j.CIRA.ConnectedSince.Equal(since) || len(j.CIRA.BoundPorts) != 4 {
		t.Errorf("show --json: %d %s", code, out)
	}
}
