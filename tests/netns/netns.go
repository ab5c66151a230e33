// Package netns is the test harness for integration tests with real network
// peers: it creates network namespaces joined by veth pairs, runs commands and
// long-lived processes inside them, runs Go code inside them (setns on a locked
// OS thread), and relays DHCP between links like a router's ip helper-address.
//
// Everything it makes is removed in t.Cleanup, by name and by pid, also when
// the test fails. Names are unique per process (prefix + pid + counter), so
// parallel test binaries do not collide.
package netns

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// RequireRoot skips t unless it runs as root with ip(8) available.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and veth pairs (CI runs as root; run `sudo go test` locally)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8) from iproute2: apt-get install iproute2")
	}
}

// RequireCommand skips t when a peer program is not installed, naming the
// Debian package to install.
func RequireCommand(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if _, serr := os.Stat(filepath.Join(dir, name)); serr == nil {
				return filepath.Join(dir, name)
			}
		}
		t.Skipf("needs %s: apt-get install %s (scripts/deps.sh installs it)", name, pkg)
	}
	return p
}

var counter atomic.Int64

// NS is one network namespace.
type NS struct {
	Name string
	t    testing.TB
}

// New creates a namespace named prefix-PID-N with its loopback up, and
// deletes it when the test ends.
func New(t testing.TB, prefix string) *NS {
	t.Helper()
	name := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), counter.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	n := &NS{Name: name, t: t}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	n.Run("ip", "link", "set", "lo", "up")
	return n
}

// Command returns cmd to run inside the namespace.
func (n *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs a command in the namespace and fails the test if it fails.
func (n *NS) Run(name string, args ...string) string {
	n.t.Helper()
	out, err := n.Command(name, args...).CombinedOutput()
	if err != nil {
		n.t.Fatalf("[%s] %s %s: %v: %s", n.Name, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Proc is a process started in a namespace.
type Proc struct {
	Cmd  *exec.Cmd
	out  *syncWriter
	done chan struct{}
}

// Output returns what the process wrote to stdout and stderr so far.
func (p *Proc) Output() string { return p.out.String() }

// Pid returns the process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Stop kills the process (SIGTERM, then SIGKILL after 2 s) and waits for it.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(p.Pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
		_ = syscall.Kill(p.Pid(), syscall.SIGKILL)
		<-p.done
	}
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Start starts a long-lived process in the namespace; it is killed by pid
// when the test ends. `ip netns exec` execs the program, so the pid is the
// program's own.
func (n *NS) Start(name string, args ...string) *Proc {
	n.t.Helper()
	out := &syncWriter{}
	cmd := n.Command(name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("[%s] start %s: %v", n.Name, name, err)
	}
	p := &Proc{Cmd: cmd, out: out, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	n.t.Cleanup(p.Stop)
	return p
}

// Do runs fn with the calling goroutine's thread inside the namespace. Sockets
// fn opens belong to the namespace and may be used from any goroutine after
// Do returns. The thread is discarded afterwards rather than switched back,
// so no goroutine can ever run in the wrong namespace.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		f, err := os.Open(filepath.Join("/var/run/netns", n.Name))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Link joins a and b with a veth pair, names the ends aIf (in a) and bIf (in
// b), gives each end its address (CIDR, "" for none) and brings both up.
func Link(t testing.TB, a *NS, aIf, aAddr string, b *NS, bIf, bAddr string) {
	t.Helper()
	a.Run("ip", "link", "add", aIf, "type", "veth", "peer", "name", bIf, "netns", b.Name)
	for _, e := range []struct {
		ns        *NS
		ifc, cidr string
	}{{a, aIf, aAddr}, {b, bIf, bAddr}} {
		if e.cidr != "" {
			e.ns.Run("ip", "addr", "add", e.cidr, "dev", e.ifc)
		}
		e.ns.Run("ip", "link", "set", e.ifc, "up")
	}
}

// syncWriter lets a process's stdout and stderr share one buffer.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
