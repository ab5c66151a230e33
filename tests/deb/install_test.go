package deb

import (
	"bytes"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The paths the package creates or owns on the machine.
const (
	keyCred  = "/etc/amtd/master-key.cred"
	keyPlain = "/etc/amtd/master.key"
	dbPath   = "/var/lib/amtd/amtd.db"
	dropIn   = "/etc/systemd/system/amtd.service.d/master-key-file.conf"
)

var amtdUnits = []string{"amtd.service", "amtd-dhcp.socket", "amtd-dns.socket", "amtd-dns-tcp.socket", "amtd-hello.socket"}

// optionalUnits are installed but not enabled: the sockets of services that
// are off by default would listen with nothing serving them.
var optionalUnits = []string{"amtd-cira.socket", "amtd-api.socket", "amtd-metrics.socket"}

// needInstallable skips unless the test may install packages here: root, dpkg
// and no systemd as PID 1 (the scripts then take the no-systemd path; a
// machine running systemd would start amtd). It fails when amtd is already
// on the machine from something other than these tests, rather than
// replace it, and purges what an earlier, interrupted run left. It purges
// the package again when the test ends, passed or failed.
func needInstallable(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: installs, upgrades and purges the amtd package on this machine with dpkg (CI runs as root)")
	}
	needTools(t, "dpkg", "dpkg-query", "systemd-creds")
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		t.Skip("systemd runs on this machine: installing would start amtd and bind ports 53 and 67; run on a CI machine or VM without systemd as PID 1")
	}
	if v := installedVersion(); v != "" {
		if !strings.Contains(v, "~debtest") {
			t.Fatalf("amtd %s is installed on this machine; these tests install and purge their own amtd package: remove it first (dpkg -P amtd)", v)
		}
		purge(t)
	}
	for _, p := range []string{"/etc/amtd", "/var/lib/amtd"} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s exists but the amtd package is not installed: the test would adopt it; move it away first", p)
		}
	}
	t.Cleanup(func() {
		if installedVersion() != "" {
			purge(t)
		}
	})
}

// installedVersion is the version of amtd dpkg knows, installed or with
// only its configuration left; "" if none.
func installedVersion() string {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "amtd").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func packageStatus(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Status}", "amtd").Output()
	if err != nil {
		return "not known to dpkg"
	}
	return strings.TrimSpace(string(out))
}

// dpkg runs dpkg with the arguments and extra environment and returns its
// combined output (the maintainer scripts' messages).
func dpkg(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("dpkg", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("dpkg %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

func purge(t *testing.T) string {
	t.Helper()
	return dpkg(t, nil, "--purge", "amtd")
}

// withKey runs amtd as root with the master key decrypted from the sealed
// credential into a private directory, as systemd hands it to the unit.
func withKey(t *testing.T, args ...string) string {
	t.Helper()
	dir := keyDir(t, 0, 0)
	out, err := runErr([]string{"CREDENTIALS_DIRECTORY=" + dir}, "/usr/sbin/amtd", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// keyDir decrypts the sealed master key with systemd-creds into a new 0700
// directory owned by uid:gid, holding amtd-master-key (0600).
func keyDir(t *testing.T, uid, gid int) string {
	t.Helper()
	// Not t.TempDir(): its parent is root's 0700 directory, which the amtd
	// user could not pass.
	dir, err := os.MkdirTemp("", "amtd-deb-key-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	key := filepath.Join(dir, "amtd-master-key")
	run(t, "systemd-creds", "decrypt", "--name=amtd-master-key", keyCred, key)
	for _, p := range []string{dir, key} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// wantOwner checks a path's type, mode and owner.
func wantOwner(t *testing.T, path string, mode fs.FileMode, owner, group string) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	u, _ := user.LookupId(itoa(st.Uid))
	g, _ := user.LookupGroupId(itoa(st.Gid))
	gotOwner, gotGroup := itoa(st.Uid), itoa(st.Gid)
	if u != nil {
		gotOwner = u.Username
	}
	if g != nil {
		gotGroup = g.Name
	}
	if fi.Mode() != mode || gotOwner != owner || gotGroup != group {
		t.Errorf("%s: %v %s:%s, want %v %s:%s", path, fi.Mode(), gotOwner, gotGroup, mode, owner, group)
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// asAmtd runs amtd as the amtd user, as the unit does (User=amtd), with
// extra environment.
func asAmtd(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, err := runErr(env, "setpriv", append([]string{"--reuid=amtd", "--regid=amtd", "--init-groups", "/usr/sbin/amtd"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestInstallUpgradeRemovePurge installs the package, stores a TSIG key,
// upgrades to a second build, checks that the key survived and that the
// upgrade left a working backup, removes the package (the store stays),
// installs it again over the kept configuration (the same key and store are
// used), and purges it (everything goes).
func TestInstallUpgradeRemovePurge(t *testing.T) {
	needInstallable(t)
	oldDeb, newDeb := buildDeb(t, versionOld), buildDeb(t, versionNew)

	// Install.
	out := dpkg(t, nil, "--install", oldDeb)
	if st := packageStatus(t); st != "install ok installed" {
		t.Fatalf("after dpkg --install: status %q", st)
	}
	if !strings.Contains(out, "master key is sealed to this machine in "+keyCred) {
		t.Errorf("postinst did not say where the sealed master key is:\n%s", out)
	}
	if _, err := user.Lookup("amtd"); err != nil {
		t.Fatalf("user amtd: %v", err)
	}
	wantOwner(t, "/etc/amtd", fs.ModeDir|0o750, "root", "amtd")
	wantOwner(t, "/etc/amtd/amtd.conf", 0o640, "root", "amtd")
	wantOwner(t, keyCred, 0o600, "root", "root")
	wantOwner(t, "/var/lib/amtd", fs.ModeDir|0o700, "amtd", "amtd")
	wantOwner(t, "/var/lib/amtd/backup", fs.ModeDir|0o700, "amtd", "amtd")
	wantOwner(t, dbPath, 0o600, "amtd", "amtd")
	if exists(keyPlain) || exists(dropIn) {
		t.Errorf("%s or %s exists although systemd-creds sealed the key", keyPlain, dropIn)
	}
	for _, u := range amtdUnits {
		target := "multi-user.target.wants"
		if strings.HasSuffix(u, ".socket") {
			target = "sockets.target.wants"
		}
		if !exists(filepath.Join("/etc/systemd/system", target, u)) {
			t.Errorf("%s is not enabled (no link in /etc/systemd/system/%s)", u, target)
		}
	}
	for _, u := range optionalUnits {
		if !exists(filepath.Join("/usr/lib/systemd/system", u)) || exists(filepath.Join("/etc/systemd/system/sockets.target.wants", u)) {
			t.Errorf("%s: want installed in /usr/lib/systemd/system and not enabled", u)
		}
	}
	if m, _ := filepath.Glob("/run/amtd-maint.*"); len(m) > 0 {
		t.Errorf("the maintainer scripts left their key directories: %v", m)
	}

	// The sealed key opens the store, and its plain form is nowhere on disk.
	dir := keyDir(t, 0, 0)
	rawKey, err := os.ReadFile(filepath.Join(dir, "amtd-master-key"))
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(rawKey))
	if _, err := hex.DecodeString(key); err != nil || len(key) != 64 {
		t.Fatalf("decrypted master key is not 64 hex characters (%d bytes)", len(rawKey))
	}
	for _, root := range []string{"/etc/amtd", "/var/lib/amtd"} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(key)) || bytes.Contains(b, mustHex(key)) {
					t.Errorf("%s holds the master key in plain text", p)
				}
			}
			return nil
		})
	}
	// The daemon's user, with the key as systemd passes it, opens the store
	// and reads the configuration (ExecStartPre=amtd check-config).
	amtdUser, _ := user.Lookup("amtd")
	uid, gid := atoi(t, amtdUser.Uid), atoi(t, amtdUser.Gid)
	asAmtd(t, []string{"CREDENTIALS_DIRECTORY=" + keyDir(t, uid, gid)}, "store", "verify")
	asAmtd(t, nil, "check-config")

	// Data written between install and upgrade.
	tsig := withKey(t, "dns", "tsig", "add", "--generate", "debtest-key.example.")
	secret := regexp.MustCompile(`secret "([^"]+)"`).FindStringSubmatch(tsig)
	if secret == nil {
		t.Fatalf("amtd dns tsig add printed no key clause:\n%s", tsig)
	}
	wantOwner(t, dbPath, 0o600, "amtd", "amtd")
	credBefore, err := os.ReadFile(keyCred)
	if err != nil {
		t.Fatal(err)
	}

	// Upgrade.
	out = dpkg(t, nil, "--install", newDeb)
	if v := installedVersion(); v != versionNew {
		t.Fatalf("after the upgrade dpkg has amtd %s, want %s", v, versionNew)
	}
	if got := strings.TrimSpace(run(t, "/usr/sbin/amtd", "version")); got != "amtd "+versionNew {
		t.Errorf("after the upgrade amtd version says %q", got)
	}
	if !strings.Contains(out, "the store of amtd "+versionOld+" is saved in") {
		t.Errorf("preinst did not report its backup:\n%s", out)
	}
	if credAfter, _ := os.ReadFile(keyCred); !bytes.Equal(credBefore, credAfter) {
		t.Error("the upgrade changed the sealed master key")
	}
	if list := withKey(t, "dns", "tsig", "list"); !strings.Contains(list, "debtest-key.example") {
		t.Errorf("after the upgrade the TSIG key is gone; amtd dns tsig list:\n%s", list)
	}
	withKey(t, "store", "verify")
	backups, _ := filepath.Glob("/var/lib/amtd/backup/pre-upgrade-" + versionOld + "-*.db")
	if len(backups) != 1 {
		t.Fatalf("backups of the old store: %v, want one pre-upgrade-%s-*.db", backups, versionOld)
	}
	wantOwner(t, backups[0], 0o600, "amtd", "amtd")
	if list := withKey(t, "dns", "tsig", "list", "--db", backups[0]); !strings.Contains(list, "debtest-key.example") {
		t.Errorf("the pre-upgrade backup lacks the TSIG key:\n%s", list)
	}
	wantOwner(t, dbPath, 0o600, "amtd", "amtd")

	// Remove: the program goes, the store, the key and the configuration stay.
	dpkg(t, nil, "--remove", "amtd")
	if st := packageStatus(t); st != "deinstall ok config-files" {
		t.Errorf("after dpkg --remove: status %q, want deinstall ok config-files", st)
	}
	if exists("/usr/sbin/amtd") {
		t.Error("/usr/sbin/amtd is still there after remove")
	}
	for _, p := range []string{dbPath, backups[0], keyCred, "/etc/amtd/amtd.conf"} {
		if !exists(p) {
			t.Errorf("remove deleted %s; only purge may", p)
		}
	}
	if target, err := os.Readlink("/etc/systemd/system/amtd.service"); err != nil || target != "/dev/null" {
		t.Errorf("amtd.service is not masked after remove (as debhelper does): %q %v", target, err)
	}

	// Install again over the kept configuration: no new key, the same store.
	out = dpkg(t, nil, "--install", newDeb)
	if strings.Contains(out, "new credential store") {
		t.Errorf("reinstalling after remove made a new store:\n%s", out)
	}
	if credAgain, _ := os.ReadFile(keyCred); !bytes.Equal(credBefore, credAgain) {
		t.Error("reinstalling after remove replaced the master key")
	}
	if list := withKey(t, "dns", "tsig", "list"); !strings.Contains(list, "debtest-key.example") {
		t.Errorf("after remove and reinstall the TSIG key is gone:\n%s", list)
	}
	if exists("/etc/systemd/system/amtd.service") {
		t.Error("amtd.service is still masked after the reinstall")
	}

	// Purge: it says the secrets go, then they go.
	out = purge(t)
	if !strings.Contains(out, "The secrets go with them") {
		t.Errorf("purge did not warn that the secrets are deleted:\n%s", out)
	}
	if v := installedVersion(); v != "" {
		t.Errorf("dpkg still knows amtd %s after purge", v)
	}
	for _, p := range []string{"/var/lib/amtd", "/etc/amtd"} {
		if exists(p) {
			t.Errorf("%s is still there after purge", p)
		}
	}
	if out, _ := exec.Command("dpkg-statoverride", "--list", "/etc/amtd/amtd.conf").Output(); len(out) > 0 {
		t.Errorf("purge left the statoverride: %s", out)
	}
	left, _ := filepath.Glob("/etc/systemd/system/*/amtd*")
	more, _ := filepath.Glob("/etc/systemd/system/amtd*")
	if left = append(left, more...); len(left) > 0 {
		t.Errorf("purge left unit links: %v", left)
	}
}

// TestInstallWhereSystemdCredsFails: where systemd-creds cannot seal the key
// (here a systemd-creds first in PATH that fails as on a read-only
// /var/lib/systemd), the key is kept as a 0600 file of the amtd user, a unit
// drop-in passes it to the daemon instead of the sealed credential, the
// message says how to set KeyFile= without systemd, the daemon's user opens
// the store with it, and purge deletes it.
func TestInstallWhereSystemdCredsFails(t *testing.T) {
	needInstallable(t)
	deb := buildDeb(t, versionNew)

	fake := t.TempDir()
	script := "#!/bin/sh\necho \"Failed to determine local credential key: Read-only file system\" >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(fake, "systemd-creds"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	out := dpkg(t, []string{"PATH=" + fake + ":" + os.Getenv("PATH")}, "--install", deb)
	for _, want := range []string{"Read-only file system", "KeyFile=" + keyPlain, "unencrypted"} {
		if !strings.Contains(out, want) {
			t.Errorf("postinst output lacks %q:\n%s", want, out)
		}
	}
	if exists(keyCred) || exists(keyCred+".new") {
		t.Errorf("%s exists although sealing failed", keyCred)
	}
	wantOwner(t, keyPlain, 0o600, "amtd", "amtd")
	wantOwner(t, dbPath, 0o600, "amtd", "amtd")
	b, err := os.ReadFile(dropIn)
	if err != nil {
		t.Fatalf("no unit drop-in for the key file: %v", err)
	}
	if want := "LoadCredential=\nLoadCredential=amtd-master-key:" + keyPlain + "\n"; !strings.Contains(string(b), want) {
		t.Errorf("%s:\n%s\nwant the lines\n%s", dropIn, b, want)
	}
	asAmtd(t, nil, "store", "verify", "--key-file", keyPlain)

	out = purge(t)
	if !strings.Contains(out, "The secrets go with them") {
		t.Errorf("purge did not warn:\n%s", out)
	}
	for _, p := range []string{keyPlain, dropIn, filepath.Dir(dropIn), "/var/lib/amtd", "/etc/amtd"} {
		if exists(p) {
			t.Errorf("%s is still there after purge", p)
		}
	}
}

func mustHex(s string) []byte {
	b, _ := hex.DecodeString(s)
	return b
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
