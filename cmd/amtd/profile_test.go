package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestProfileCLI(t *testing.T) {
	dir := t.TempDir()
	db, key := filepath.Join(dir, "amtd.db"), filepath.Join(dir, "master.key")
	if code, _, errs := runCLI(t, "store", "init", "--db", db, "--key-file", key, "--generate-key"); code != exitOK {
		t.Fatalf("store init: %d %s", code, errs)
	}
	st := []string{"--db", db, "--key-file", key}
	run := func(args ...string) (int, string, string) {
		return runCLI(t, append(append([]string{"profile"}, args...), st...)...)
	}

	if code, out, _ := run("list"); code != exitOK || !strings.Contains(out, "no profiles") {
		t.Fatalf("empty list: %d %s", code, out)
	}
	if code, out, errs := run("add", "site", "--mode", "acm", "--suffix", "Corp.Example.com.", "--default"); code != exitOK || !strings.Contains(out, "added profile site: ACM, CIRA; for suffix corp.example.com; default") {
		t.Fatalf("add: %d %s %s", code, out, errs)
	}
	if code, out, errs := run("add", "kiosk", "--mode", "CCM", "--no-cira", "--uuid", "11111111-2222-3333-4444-55555555AAAA"); code != exitOK || !strings.Contains(out, "CCM, no CIRA; for 1 device(s) by UUID") {
		t.Fatalf("add kiosk: %d %s %s", code, out, errs)
	}
	code, out, _ := run("show", "kiosk")
	var j struct {
		Settings struct {
			Mode string
			CIRA bool
		}
		Match struct{ UUIDs []string }
	}
	if code != exitOK || json.Unmarshal([]byte(out), &j) != nil || j.Settings.Mode != "ccm" || j.Settings.CIRA || j.Match.UUIDs[0] != "11111111-2222-3333-4444-55555555aaaa" {
		t.Fatalf("show: %d %s", code, out)
	}
	if code, out, _ := run("list"); code != exitOK || !strings.Contains(out, "kiosk") || !strings.Contains(out, "site") {
		t.Fatalf("list: %s", out)
	}
	if code, out, _ := run("add", "site", "--mode", "acm", "--no-cira", "--default"); code != exitOK || !strings.Contains(out, "replaced profile site") {
		t.Fatalf("replace: %d %s", code, out)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"add", "other", "--default"}, exitFailure, "profile site is already the default"},
		{[]string{"add", "x", "--mode", "tcm"}, exitUsage, "want acm or ccm"},
		{[]string{"add", "x", "--mode", "ccm", "--kvm", "--user-consent", "none"}, exitUsage, "client control mode always asks"},
		{[]string{"add", "bad name"}, exitUsage, "not a valid name"},
		{[]string{"add", "x", "--uuid", "nope"}, exitUsage, "--uuid nope"},
		{[]string{"show", "nope"}, exitFailure, "no profile nope"},
		{[]string{"remove", "nope"}, exitFailure, "no profile nope"},
		{[]string{"add", "x", "--network", "wifi"}, exitUsage, "Wi-Fi and 802.1X are not supported"},
		{[]string{"add", "x", "--network", "802.1x"}, exitUsage, "configures the wired port only"},
		{[]string{"add", "x", "--network", "bootp"}, exitUsage, "want dhcp, static or keep"},
	} {
		code, _, errs := run(c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: %d %q, want %d %q", c.args, code, errs, c.code, c.want)
		}
	}
	if code, out, errs := run("add", "desk", "--mode", "acm", "--kvm", "--sol", "--user-consent", "none"); code != exitOK || !strings.Contains(out, "ACM, CIRA, KVM+SOL, consent none") {
		t.Fatalf("add with features: %d %s %s", code, out, errs)
	}
	if code, out, errs := run("add", "secure", "--mode", "acm", "--tls"); code != exitOK || !strings.Contains(out, "ACM, CIRA, TLS;") {
		t.Fatalf("add with TLS: %d %s %s", code, out, errs)
	}
	if code, out, errs := run("add", "lan", "--mode", "acm", "--network", "static"); code != exitOK || !strings.Contains(out, "ACM, CIRA, network static (synced with the host);") {
		t.Fatalf("add with network: %d %s %s", code, out, errs)
	}
	if code, out, _ := run("show", "lan"); code != exitOK || !strings.Contains(out, `"network": "static"`) {
		t.Fatalf("show lan: %s", out)
	}
	if code, out, _ := run("show", "desk"); code != exitOK || strings.Contains(out, `"network"`) {
		t.Fatalf("a profile without --network keeps the port, and says nothing of it: %s", out)
	}
	if code, out, _ := run("show", "desk"); code != exitOK || !strings.Contains(out, `"userConsent": "none"`) || !strings.Contains(out, `"kvm": true`) {
		t.Fatalf("show desk: %s", out)
	}
	if code, out, _ := run("remove", "kiosk"); code != exitOK || !strings.Contains(out, "removed profile kiosk") {
		t.Fatalf("remove: %d %s", code, out)
	}
	if code, _, _ := run("show", "kiosk"); code != exitFailure {
		t.Fatal("kiosk still there")
	}
}
