package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCheckConfig(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &cli{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	code = c.main(append([]string{"check-config"}, args...))
	return code, out.String(), errb.String()
}

func writeConf(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "amtd.conf")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckConfigValid(t *testing.T) {
	f := writeConf(t, `[Site]
Domain=corp.example.com
Address=192.0.2.10

[DNS]
Enable=yes
Record=nas A 192.0.2.5

[DHCP]
Enable=yes

[DHCPPool]
Subnet=192.0.2.0/24
Range=192.0.2.100-192.0.2.199
`)
	code, out, errs := runCheckConfig(t, "-c", f)
	if code != exitOK || errs != "" {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
	want := f + ": ok\nsite corp.example.com (amtd.corp.example.com, 192.0.2.10); enabled: dns on 0.0.0.0:53 (1 record), dhcp on 0.0.0.0:67 (1 pool, 0 reservations)\n"
	if out != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
	}
}

func TestCheckConfigInvalid(t *testing.T) {
	f := writeConf(t, `[Site]
Domain=corp.example.com
Address=192.0.2.10

[DHCP]
Enable=yes
Lease=5min

[DHCPPool]
Subnet=192.0.2.0/24
Range=192.0.2.100-192.0.3.10

[CIRA]
Enable=yes
`)
	code, out, errs := runCheckConfig(t, "-c", f)
	if code != exitFailure || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	want := []string{
		f + ":6: warning: [DHCP] UpdateDNS=yes does nothing while [DNS] Enable=no: leased host names are not registered anywhere",
		f + ":7: unknown key Lease in [DHCP] (did you mean LeaseTime?)",
		f + ":11: [DHCPPool] Range=192.0.2.100-192.0.3.10 is not inside Subnet=192.0.2.0/24",
		f + ": invalid",
	}
	if got := strings.Split(strings.TrimSuffix(errs, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stderr:\n%s\nwant:\n%s", errs, strings.Join(want, "\n"))
	}
}

func TestCheckConfigWarnings(t *testing.T) {
	f := writeConf(t, "[Site]\nDomain=site.local\nAddress=192.0.2.10\n[DNS]\nEnable=yes\n")
	code, out, errs := runCheckConfig(t, "-c", f)
	if code != exitOK || !strings.HasPrefix(out, f+": ok\n") {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	if !strings.HasPrefix(errs, f+":2: warning: [Site] Domain=site.local: .local is for multicast DNS") {
		t.Errorf("stderr: %q", errs)
	}
}

func TestCheckConfigSample(t *testing.T) {
	code, out, errs := runCheckConfig(t, "-c", "../../amtd.conf")
	if code != exitOK || errs != "" {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
	if out != "../../amtd.conf: ok\nno network service enabled (only the control socket)\n" {
		t.Errorf("stdout: %q", out)
	}
}

func TestCheckConfigUsage(t *testing.T) {
	code, out, errs := runCheckConfig(t, "-h")
	if code != exitOK || !strings.HasPrefix(out, "Usage: amtd check-config [-c FILE]") || !strings.Contains(out, "/etc/amtd/amtd.conf") || errs != "" {
		t.Errorf("-h: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, _, errs = runCheckConfig(t, "-x")
	if code != exitUsage || !strings.Contains(errs, "flag provided but not defined: -x") {
		t.Errorf("-x: exit %d, stderr %q", code, errs)
	}
	code, _, errs = runCheckConfig(t, "amtd.conf")
	if code != exitUsage || !strings.Contains(errs, `unexpected argument "amtd.conf" (the file is given with -c FILE)`) {
		t.Errorf("argument: exit %d, stderr %q", code, errs)
	}
	code, _, errs = runCheckConfig(t, "-c")
	if code != exitUsage || !strings.Contains(errs, "flag needs an argument: -c") {
		t.Errorf("-c without file: exit %d, stderr %q", code, errs)
	}
}

func TestCheckConfigUnreadable(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.conf")
	code, out, errs := runCheckConfig(t, "-c", missing)
	if code != exitFailure || out != "" || errs != missing+": cannot read: no such file or directory\n"+missing+": invalid\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// Without -c it checks the installed file, whatever state it is in here.
	_, out, errs = runCheckConfig(t)
	if !strings.HasPrefix(out+errs, defaultConfigPath+":") {
		t.Errorf("default path not checked: stdout %q stderr %q", out, errs)
	}
}
