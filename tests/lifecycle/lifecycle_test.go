package lifecycle

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"amtd/daemon/control"
)

func dhcpSection(port int) string {
	return fmt.Sprintf(`
[DHCP]
Enable=yes
Listen=127.0.0.1:%d

[DHCPPool]
Subnet=127.0.0.0/24
Range=127.0.0.100-127.0.0.200
`, port)
}

func monotonicUsec() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano() / 1000
}

// TestReadyReloadStop is the daemon's life under systemd: READY=1 only once
// its sockets listen, a STATUS= summary, SIGHUP reloads (valid and invalid),
// SIGTERM stops it with exit 0.
func TestReadyReloadStop(t *testing.T) {
	port := freePort(t, "udp")
	s := newSite(t, dhcpSection(port))
	n := listenNotify(t, s.dir)
	d := start(t, []string{"NOTIFY_SOCKET=" + n.path}, amtd, "run", "-c", s.conf)

	ready := n.await(t, "READY=1", 20*time.Second)
	// The services listen before READY=1: the control socket answers and the
	// DHCP port is taken, right now.
	c, err := net.Dial("unix", s.control)
	if err != nil {
		t.Fatalf("READY=1 sent but the control socket does not answer: %v", err)
	}
	c.Close()
	if pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		pc.Close()
		t.Fatalf("READY=1 sent but nothing listens on the DHCP port %d", port)
	}
	if want := "STATUS=2/2 services up (control, dhcp); 0 devices known, 0 connected; 0 activations running"; !strings.Contains(ready, want) {
		t.Fatalf("READY message %q lacks %q", ready, want)
	}

	// `amtd status` for people and for scripts.
	code, out, errOut := run(t, nil, "status", "-c", s.conf)
	if code != 0 {
		t.Fatalf("amtd status: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"config:", s.conf, "store:", s.dir + "/amtd.db", "devices:", "0 known, 0 connected",
		"last reload:", "none since start", "SERVICE", "control", "dhcp", "up", "0 leases in 1 pools", "SOCKET", "127.0.0.1:" + strconv.Itoa(port)} {
		if !strings.Contains(out, want) {
			t.Fatalf("amtd status output lacks %q:\n%s", want, out)
		}
	}
	rep := statusJSON(t, s.control)
	if rep.Config != s.conf || len(rep.Services) != 2 || rep.Services[1].Name != "dhcp" || rep.Services[1].Health != "ok" || rep.PID != d.cmd.Process.Pid {
		t.Fatalf("status --json: %+v", rep)
	}

	// A valid reload: RELOADING=1 with the monotonic time, then READY=1.
	s.writeConfig(dhcpSection(port) + "\n[Log]\nLevel=debug\n")
	before := monotonicUsec()
	d.signal(syscall.SIGHUP)
	reloading := n.await(t, "RELOADING=1", 10*time.Second)
	m := regexp.MustCompile(`MONOTONIC_USEC=(\d+)`).FindStringSubmatch(reloading)
	if m == nil {
		t.Fatalf("RELOADING=1 without MONOTONIC_USEC: %q", reloading)
	}
	usec, _ := strconv.ParseInt(m[1], 10, 64)
	if usec < before || usec > monotonicUsec() {
		t.Fatalf("MONOTONIC_USEC=%d is not CLOCK_MONOTONIC between %d and now", usec, before)
	}
	if r := n.await(t, "READY=1", 10*time.Second); strings.Contains(r, "reload failed") {
		t.Fatalf("valid reload reported failure: %q", r)
	}
	if rep := statusJSON(t, s.control); rep.LastReload == nil || !rep.LastReload.OK {
		t.Fatalf("last reload after a valid file: %+v", rep.LastReload)
	}
	// [Log] Level=debug took effect in place.
	if !strings.Contains(d.stderr.String(), "level=DEBUG") {
		t.Fatalf("no debug lines after reloading with [Log] Level=debug:\n%s", d.stderr.String())
	}

	// An invalid file: the daemon keeps its configuration, says FILE:LINE in
	// STATUS= and in its log, and still sends READY=1.
	s.writeConfig(dhcpSection(port) + "\n[Log]\nLevel=loud\n")
	text, _ := os.ReadFile(s.conf)
	badLine := 0
	for i, l := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(l, "Level=loud") {
			badLine = i + 1
		}
	}
	d.signal(syscall.SIGHUP)
	n.await(t, "RELOADING=1", 10*time.Second)
	r := n.await(t, "READY=1", 10*time.Second)
	wantErr := fmt.Sprintf("reload failed: %s:%d:", s.conf, badLine)
	if !strings.Contains(r, wantErr) {
		t.Fatalf("READY after an invalid reload %q lacks %q", r, wantErr)
	}
	if !strings.Contains(d.stderr.String(), fmt.Sprintf("%s:%d:", s.conf, badLine)) {
		t.Fatalf("the log does not name %s:%d:\n%s", s.conf, badLine, d.stderr.String())
	}
	rep = statusJSON(t, s.control)
	if rep.LastReload == nil || rep.LastReload.OK || !strings.Contains(rep.LastReload.Errors[0], fmt.Sprintf(":%d:", badLine)) {
		t.Fatalf("last reload after an invalid file: %+v", rep.LastReload)
	}
	if len(rep.Services) != 2 || rep.Services[1].State != control.StateUp {
		t.Fatalf("services after an invalid reload: %+v", rep.Services)
	}
	_, out, _ = run(t, nil, "status", "-c", s.conf)
	if !strings.Contains(out, "FAILED") || !strings.Contains(out, fmt.Sprintf("%s:%d:", s.conf, badLine)) {
		t.Fatalf("amtd status does not show the failed reload:\n%s", out)
	}

	d.signal(syscall.SIGTERM)
	n.await(t, "STOPPING=1", 10*time.Second)
	if code := d.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0\n%s", code, d.stderr.String())
	}
	if _, err := os.Stat(s.control); !os.IsNotExist(err) {
		t.Fatalf("control socket left behind: %v", err)
	}
}

func statusJSON(t *testing.T, socket string) control.StatusReport {
	t.Helper()
	code, out, errOut := run(t, nil, "status", "--json", "--socket", socket)
	if code != 0 {
		t.Fatalf("amtd status --json: exit %d: %s", code, errOut)
	}
	var rep control.StatusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("amtd status --json is not a status report: %v\n%s", err, out)
	}
	return rep
}

// TestWatchdogPings: with WATCHDOG_USEC the daemon pings at half the interval;
// with a WATCHDOG_PID that is not its own it does not (sd_watchdog_enabled(3)).
func TestWatchdogPings(t *testing.T) {
	s := newSite(t, "")
	n := listenNotify(t, s.dir)
	d := start(t, []string{"NOTIFY_SOCKET=" + n.path, "WATCHDOG_USEC=400000"}, amtd, "run", "-c", s.conf)
	n.await(t, "READY=1", 20*time.Second)
	var at []time.Time
	deadline := time.After(2 * time.Second)
collect:
	for {
		select {
		case m := <-n.msgs:
			if m == "WATCHDOG=1" {
				at = append(at, time.Now())
			}
		case <-deadline:
			break collect
		}
	}
	// 2 s at one ping per 200 ms is 10; allow for a loaded CI machine.
	if len(at) < 6 || len(at) > 11 {
		t.Fatalf("%d WATCHDOG=1 pings in 2 s with WATCHDOG_USEC=400000, want about 10", len(at))
	}
	// One late tick can bunch two pings; the mean spacing is what systemd sees.
	if mean := at[len(at)-1].Sub(at[0]) / time.Duration(len(at)-1); mean < 150*time.Millisecond || mean > 300*time.Millisecond {
		t.Fatalf("pings %s apart on average, want about 200 ms (half of WATCHDOG_USEC)", mean)
	}
	d.signal(syscall.SIGTERM)
	if code := d.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}

	// Another process's watchdog: no pings.
	n2 := listenNotify(t, t.TempDir())
	d2 := start(t, []string{"NOTIFY_SOCKET=" + n2.path, "WATCHDOG_USEC=400000", "WATCHDOG_PID=1"}, amtd, "run", "-c", s.conf)
	n2.await(t, "READY=1", 20*time.Second)
	deadline = time.After(time.Second)
	for done := false; !done; {
		select {
		case m := <-n2.msgs:
			if m == "WATCHDOG=1" {
				t.Fatal("pinged a watchdog meant for WATCHDOG_PID=1")
			}
		case <-deadline:
			done = true
		}
	}
	d2.signal(syscall.SIGTERM)
	d2.wait(15 * time.Second)
}

// TestJournalPrefixes: with $JOURNAL_STREAM naming its stderr, every line
// starts with a sd-daemon(3) priority.
func TestJournalPrefixes(t *testing.T) {
	s := newSite(t, "")
	n := listenNotify(t, s.dir)
	logFile, err := os.Create(s.dir + "/stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	var st unix.Stat_t
	unix.Fstat(int(logFile.Fd()), &st)
	d := startWithStderr(t, logFile, []string{"NOTIFY_SOCKET=" + n.path, fmt.Sprintf("JOURNAL_STREAM=%d:%d", st.Dev, st.Ino)}, amtd, "run", "-c", s.conf)
	n.await(t, "READY=1", 20*time.Second)
	d.Process.Signal(syscall.SIGTERM)
	d.Wait()
	b, _ := os.ReadFile(logFile.Name())
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		t.Fatalf("log: %q", b)
	}
	for _, l := range lines {
		if !regexp.MustCompile(`^<[3467]>msg=`).MatchString(l) {
			t.Fatalf("journal line without a priority prefix: %q", l)
		}
	}
	if !strings.Contains(string(b), "<6>msg=ready") {
		t.Fatalf("no <6> ready line:\n%s", b)
	}
}
