// Package lifecycle runs the built amtd binary the way systemd does: with a
// NOTIFY_SOCKET the test listens on, WATCHDOG_USEC, sockets passed by the real
// systemd-socket-activate, signals for reload and stop, and `amtd status`
// against its control socket.
package lifecycle

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"amtd/store"
)

// amtd is the binary under test, built once by TestMain into a directory
// every user can read (the peer-credential test runs it as nobody).
var amtd string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "amtd-lifecycle-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755)
	amtd = filepath.Join(dir, "amtd")
	build := exec.Command("go", "build", "-o", amtd, "amtd/cmd/amtd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "lifecycle: building amtd:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// site is one daemon's directory: config, store, key, sockets.
type site struct {
	t       *testing.T
	dir     string
	conf    string
	control string
}

// writeConfig writes a development amtd.conf with extra appended.
func (s *site) writeConfig(extra string) {
	s.t.Helper()
	if err := os.WriteFile(s.conf, []byte(configText(s.dir, extra)), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// configText is a development amtd.conf for a site in dir, everything on
// 127.0.0.1, DNS and (unless extra configures it) DHCP off.
func configText(dir, extra string) string {
	text := fmt.Sprintf(`# written by tests/lifecycle
[Site]
Domain=lifecycle.test
Address=127.0.0.1
AllowRoot=yes

[Store]
Path=%[1]s/amtd.db
KeyFile=%[1]s/master.key

[Control]
Socket=%[1]s/control.sock

[DNS]
Enable=no
%[2]s`, dir, extra)
	if !strings.Contains(extra, "[DHCP]") {
		text += "\n[DHCP]\nEnable=no\n"
	}
	return text
}

func newSite(t *testing.T, extra string) *site {
	t.Helper()
	dir, err := os.MkdirTemp("", "amtd-lifecycle-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &site{t: t, dir: dir, conf: filepath.Join(dir, "amtd.conf"), control: filepath.Join(dir, "control.sock")}
	key := filepath.Join(dir, "master.key")
	if err := store.GenerateKeyFile(key); err != nil {
		t.Fatal(err)
	}
	st, err := store.Init(t.Context(), store.Options{Path: filepath.Join(dir, "amtd.db"), KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	s.writeConfig(extra)
	return s
}

// notifySocket is the NOTIFY_SOCKET a test plays systemd on.
type notifySocket struct {
	path string
	conn *net.UnixConn
	msgs chan string
}

func listenNotify(t *testing.T, dir string) *notifySocket {
	t.Helper()
	n, err := openNotify(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.conn.Close() })
	return n
}

func listenNotifyB(b *testing.B, dir string) *notifySocket {
	b.Helper()
	n, err := openNotify(dir)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func openNotify(dir string) (*notifySocket, error) {
	path := filepath.Join(dir, "notify.sock")
	os.Remove(path)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	n := &notifySocket{path: path, conn: conn, msgs: make(chan string, 1000)}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			n.msgs <- string(buf[:k])
		}
	}()
	return n, nil
}

// await returns the first message containing want, skipping STATUS= refreshes
// and watchdog pings; it fails after timeout.
func (n *notifySocket) await(t *testing.T, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-n.msgs:
			if !ok {
				t.Fatalf("notify socket closed while waiting for %q", want)
			}
			if strings.Contains(m, want) {
				return m
			}
			if strings.HasPrefix(m, "READY=1") || strings.HasPrefix(m, "STOPPING=1") || strings.HasPrefix(m, "RELOADING=1") {
				t.Fatalf("got %q while waiting for %q", m, want)
			}
		case <-deadline:
			t.Fatalf("no sd_notify message with %q within %s", want, timeout)
		}
	}
}

// daemon is a running amtd process.
type daemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{}
	err    error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// start runs argv (amtd or a wrapper such as systemd-socket-activate) with env
// added to this process's environment.
func start(t *testing.T, env []string, argv ...string) *daemon {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	d := &daemon{t: t, cmd: cmd, stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout = d.stderr
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.err = cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			t.Logf("amtd output:\n%s", d.stderr.String())
		}
	})
	return d
}

func (d *daemon) signal(sig syscall.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatal(err)
	}
}

// wait returns the exit code, failing after timeout.
func (d *daemon) wait(timeout time.Duration) int {
	d.t.Helper()
	select {
	case <-d.exited:
	case <-time.After(timeout):
		d.t.Fatalf("amtd still running after %s", timeout)
	}
	return d.cmd.ProcessState.ExitCode()
}

// run runs amtd with args to completion and returns its exit code and output.
func run(t *testing.T, cred *syscall.Credential, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, amtd, args...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("amtd %v: %v", args, err)
		}
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

func needRoot(t *testing.T, why string) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: " + why)
	}
}

func freePort(t *testing.T, network string) int {
	t.Helper()
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	default:
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
}

// startWithStderr runs argv with stdout and stderr on f (a file the test can
// fstat, as journald's stream would be).
func startWithStderr(t *testing.T, f *os.File, env []string, argv ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

// start2 is start for benchmarks: the caller waits for the process.
func start2(b *testing.B, env []string, argv ...string) *exec.Cmd {
	b.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return cmd
}
