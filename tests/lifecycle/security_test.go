package lifecycle

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRefusesRoot: as uid 0 without [Site] AllowRoot=yes amtd will not run,
// and says how the unit runs it.
func TestRefusesRoot(t *testing.T) {
	needRoot(t, "checks that amtd refuses uid 0")
	s := newSite(t, "")
	text, _ := os.ReadFile(s.conf)
	os.WriteFile(s.conf, []byte(strings.Replace(string(text), "AllowRoot=yes\n", "", 1)), 0o644)
	code, _, errOut := run(t, nil, "run", "-c", s.conf)
	if code != 1 {
		t.Fatalf("exit %d as root without AllowRoot=yes, want 1\n%s", code, errOut)
	}
	for _, want := range []string{"refusing to run as root", "User=amtd", "AllowRoot=yes"} {
		if !strings.Contains(errOut, want) {
			t.Fatalf("message lacks %q:\n%s", want, errOut)
		}
	}
	if _, err := os.Stat(s.control); !os.IsNotExist(err) {
		t.Fatal("a refused daemon created its control socket")
	}
}

// TestControlPeerCredentials: a user who is not root, the daemon's user or
// in [Control] Group= is refused (and logged) even when the socket file's
// mode would let them connect; after a reload that names their group, they
// are let in.
func TestControlPeerCredentials(t *testing.T) {
	needRoot(t, "runs the client as uid 65534 (nobody)")
	s := newSite(t, "")
	n := listenNotify(t, s.dir)
	d := start(t, []string{"NOTIFY_SOCKET=" + n.path}, amtd, "run", "-c", s.conf)
	n.await(t, "READY=1", 20*time.Second)
	fi, err := os.Stat(s.control)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("control socket mode %v (%v), want 0660", fi.Mode(), err)
	}
	// Open the file mode so only SO_PEERCRED stands in the way.
	os.Chmod(s.control, 0o666)
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	code, _, errOut := run(t, nobody, "status", "--socket", s.control)
	if code != 1 || !strings.Contains(errOut, "permission denied: uid 65534") {
		t.Fatalf("nobody: exit %d, %q; want 1 and permission denied", code, errOut)
	}
	if !strings.Contains(d.stderr.String(), "refused connection") || !strings.Contains(d.stderr.String(), "uid=65534") {
		t.Fatalf("the refusal is not logged:\n%s", d.stderr.String())
	}

	// [Control] Group=nogroup (gid 65534) admits nobody after a reload.
	text, _ := os.ReadFile(s.conf)
	os.WriteFile(s.conf, []byte(strings.Replace(string(text), "[Control]\n", "[Control]\nGroup=65534\n", 1)), 0o644)
	d.signal(syscall.SIGHUP)
	n.await(t, "RELOADING=1", 10*time.Second)
	if r := n.await(t, "READY=1", 10*time.Second); strings.Contains(r, "reload failed") {
		t.Fatalf("reload: %q", r)
	}
	code, out, errOut := run(t, nobody, "status", "--socket", s.control)
	if code != 0 || !strings.Contains(out, "services up") {
		t.Fatalf("nobody in the control group: exit %d\n%s%s", code, out, errOut)
	}
	d.signal(syscall.SIGTERM)
	d.wait(15 * time.Second)
}

// TestStatusExitCodes: 1 with a useful message when no daemon answers, 2 on
// usage errors.
func TestStatusExitCodes(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.sock")
	code, _, errOut := run(t, nil, "status", "--socket", missing)
	if code != 1 || !strings.Contains(errOut, "no daemon answers on "+missing) || !strings.Contains(errOut, "systemctl start amtd") {
		t.Fatalf("no daemon: exit %d, %q", code, errOut)
	}
	if code, _, _ := run(t, nil, "status", "--bogus"); code != 2 {
		t.Fatalf("unknown flag: exit %d, want 2", code)
	}
	if code, _, _ := run(t, nil, "status", "extra"); code != 2 {
		t.Fatalf("extra argument: exit %d, want 2", code)
	}
	if code, _, _ := run(t, nil, "run", "--log-level", "loud"); code != 2 {
		t.Fatalf("bad --log-level: exit %d, want 2", code)
	}
}
