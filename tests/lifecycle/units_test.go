package lifecycle

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const unitDir = "../../rootfs/usr/lib/systemd/system"

// unitCopy copies the units into a temporary directory with ExecStart= and
// ExecStartPre= pointing at the built binary: systemd-analyze verify checks
// that the executables exist.
func unitCopy(t *testing.T) (string, []string) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed (Debian package systemd); scripts/deps.sh installs it")
	}
	dir := t.TempDir()
	entries, err := os.ReadDir(unitDir)
	if err != nil {
		t.Fatal(err)
	}
	var units []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(unitDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), "/usr/sbin/amtd", amtd)
		if err := os.WriteFile(filepath.Join(dir, e.Name()), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, filepath.Join(dir, e.Name()))
	}
	return dir, units
}

// TestUnitsVerify: systemd-analyze verify has nothing at all to say.
func TestUnitsVerify(t *testing.T) {
	dir, units := unitCopy(t)
	if len(units) < 5 {
		t.Fatalf("units: %v", units)
	}
	cmd := exec.Command("systemd-analyze", append([]string{"verify", "--man=no", "--generators=no"}, units...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// Every socket names its descriptor, and the names are the ones the daemon asks for.
	for _, u := range units {
		if !strings.HasSuffix(u, ".socket") {
			continue
		}
		b, _ := os.ReadFile(u)
		m := regexp.MustCompile(`(?m)^FileDescriptorName=(\S+)$`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("%s has no FileDescriptorName=", filepath.Base(u))
		}
		if !regexp.MustCompile(`^(dhcp|dns|dns-tcp|hello|agent|cira|api|metrics|rpc|control)$`).Match(m[1]) {
			t.Fatalf("%s names its socket %q, which no service asks for", filepath.Base(u), m[1])
		}
		if !strings.Contains(string(b), "Service=amtd.service") {
			t.Fatalf("%s does not activate amtd.service", filepath.Base(u))
		}
	}
}

// TestUnitSecurity: systemd-analyze security rates amtd.service 2.0 or better.
func TestUnitSecurity(t *testing.T) {
	dir, _ := unitCopy(t)
	cmd := exec.Command("systemd-analyze", "security", "--offline=yes", "--no-pager", filepath.Join(dir, "amtd.service"))
	out, _ := cmd.CombinedOutput() // exits non-zero above its own threshold; the figure decides
	m := regexp.MustCompile(`Overall exposure level for amtd\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	level, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("amtd.service exposure level %.1f", level)
	if level > 2.0 {
		t.Fatalf("exposure level %.1f, want <= 2.0:\n%s", level, out)
	}
}
