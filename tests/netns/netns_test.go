package netns

import (
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestNamespacesLinkAndCleanup: two namespaces joined by veth reach each
// other, Do runs Go code inside one, and both are gone after cleanup.
func TestNamespacesLinkAndCleanup(t *testing.T) {
	RequireRoot(t)
	var names []string
	t.Run("topology", func(t *testing.T) {
		a, b := New(t, "nst"), New(t, "nst")
		names = []string{a.Name, b.Name}
		if a.Name == b.Name {
			t.Fatalf("namespace names collide: %s", a.Name)
		}
		Link(t, a, "eth0", "10.99.0.1/24", b, "eth0", "10.99.0.2/24")
		// A datagram from a reaches b over the veth pair.
		var srv *net.UDPConn
		if err := b.Do(func() (err error) {
			srv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("10.99.0.2"), Port: 9999})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		if err := a.Do(func() error {
			c, err := net.Dial("udp4", "10.99.0.2:9999")
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("hello"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		srv.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 16)
		if n, from, err := srv.ReadFromUDP(buf); err != nil || string(buf[:n]) != "hello" || !from.IP.Equal(net.ParseIP("10.99.0.1")) {
			t.Fatalf("datagram across the veth: %q from %v, %v", buf[:n], from, err)
		}
		var got []string
		if err := b.Do(func() error {
			ifc, err := net.InterfaceByName("eth0")
			if err != nil {
				return err
			}
			addrs, err := ifc.Addrs()
			for _, x := range addrs {
				got = append(got, x.String())
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 || !strings.HasPrefix(got[0], "10.99.0.2/") {
			t.Errorf("Do saw addresses %v, want 10.99.0.2 of %s", got, b.Name)
		}
		p := a.Start("sleep", "60")
		p.Stop()
		if !p.Exited() {
			t.Error("Stop left the process running")
		}
	})
	out, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	for _, n := range names {
		if strings.Contains(string(out), n) {
			t.Errorf("namespace %s left behind after cleanup", n)
		}
	}
}
