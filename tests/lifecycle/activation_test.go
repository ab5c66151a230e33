package lifecycle

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"amtd/daemon/control"
)

func needSocketActivate(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("systemd-socket-activate not installed (Debian package systemd); scripts/deps.sh installs it")
	}
	return p
}

// TestSocketActivationControl: the control socket comes from systemd by its
// FileDescriptorName=, and the first connection is what starts the daemon.
func TestSocketActivationControl(t *testing.T) {
	sa := needSocketActivate(t)
	s := newSite(t, "")
	n := listenNotify(t, s.dir)
	activated := filepath.Join(s.dir, "activated.sock")
	d := start(t, nil, sa, "-l", activated, "--fdname=control", "-E", "NOTIFY_SOCKET="+n.path, amtd, "run", "-c", s.conf)
	waitPath(t, activated)

	// systemd-socket-activate starts amtd on this first connection.
	rep := statusJSON(t, activated)
	var sock *control.SocketStatus
	for i := range rep.Sockets {
		if rep.Sockets[i].Name == "control" {
			sock = &rep.Sockets[i]
		}
	}
	if sock == nil || !sock.Activated || sock.Address != activated {
		t.Fatalf("control socket not taken from systemd: %+v", rep.Sockets)
	}
	n.await(t, "READY=1", 10*time.Second)
	// amtd did not bind [Control] Socket= itself.
	if _, err := net.Dial("unix", s.control); err == nil {
		t.Fatal("amtd bound its own control socket although systemd passed one")
	}
	d.signal(syscall.SIGTERM)
	if code := d.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestSocketActivationDatagram: a UDP socket passed as "dhcp" (--datagram) is
// the one the DHCP service serves on; the first datagram starts the daemon.
func TestSocketActivationDatagram(t *testing.T) {
	sa := needSocketActivate(t)
	port := freePort(t, "udp")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s := newSite(t, dhcpSection(port))
	n := listenNotify(t, s.dir)
	d := start(t, nil, sa, "--datagram", "-l", addr, "--fdname=dhcp", "-E", "NOTIFY_SOCKET="+n.path, amtd, "run", "-c", s.conf)
	// Wait until systemd-socket-activate holds the port, then wake it.
	var conn net.Conn
	for i := 0; ; i++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			break
		}
		pc.Close()
		if i > 100 {
			t.Fatal("systemd-socket-activate did not bind " + addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("wake up"))
	conn.Close()
	n.await(t, "READY=1", 20*time.Second)
	rep := statusJSON(t, s.control)
	found := false
	for _, sock := range rep.Sockets {
		if sock.Name == "dhcp" {
			found = sock.Activated && sock.Kind == "datagram" && sock.Address == addr
		}
	}
	if !found {
		t.Fatalf("dhcp socket not taken from systemd: %+v", rep.Sockets)
	}
	if rep.Services[1].Name != "dhcp" || rep.Services[1].Health != "ok" {
		t.Fatalf("dhcp service on the activated socket: %+v", rep.Services)
	}
	// The packet that woke it was read (and dropped: not DHCP) by the service.
	d.signal(syscall.SIGTERM)
	if code := d.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestSocketActivationStream: a TCP socket named dns-tcp is kept in the
// registry for the DNS service, by name.
func TestSocketActivationStream(t *testing.T) {
	sa := needSocketActivate(t)
	port := freePort(t, "tcp")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s := newSite(t, "")
	n := listenNotify(t, s.dir)
	d := start(t, nil, sa, "-l", addr, "--fdname=dns-tcp", "-E", "NOTIFY_SOCKET="+n.path, amtd, "run", "-c", s.conf)
	var c net.Conn
	var err error
	for i := 0; i < 100; i++ {
		if c, err = net.Dial("tcp", addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("systemd-socket-activate did not listen on %s: %v", addr, err)
	}
	defer c.Close()
	n.await(t, "READY=1", 20*time.Second)
	rep := statusJSON(t, s.control)
	ok := false
	for _, sock := range rep.Sockets {
		ok = ok || sock.Name == "dns-tcp" && sock.Activated && sock.Kind == "stream" && sock.Address == addr
	}
	if !ok {
		t.Fatalf("dns-tcp not in the registry as an activated stream socket on %s: %+v", addr, rep.Sockets)
	}
	_, out, _ := run(t, nil, "status", "--socket", s.control)
	if !strings.Contains(out, "dns-tcp") || !strings.Contains(out, "systemd") {
		t.Fatalf("amtd status does not list the activated socket:\n%s", out)
	}
	d.signal(syscall.SIGTERM)
	if code := d.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func waitPath(t *testing.T, path string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if _, err := exec.Command("test", "-S", path).Output(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not appear", path)
}
