// Package site tests amtd as a whole site sees it: the real daemon binary in
// one network namespace serving DHCP and DNS, and real peers (ISC dhclient,
// dig) in another, joined by a veth link. It checks the path an Intel AMT
// device depends on (spec/network.md §1, §2): the lease carries option 15 and
// amtd as the DNS server, ProvisionServer.<domain> resolves to the appliance,
// and the host's name from its lease resolves forward and in reverse, also
// after amtd restarts; and a simulated AMT device behind that lease finds the
// appliance through it.
package site

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amtd/amt/hello"
	"amtd/amtsim"
	"amtd/tests/netns"
)

const (
	domain   = "site.example.com"
	amtdAddr = "10.88.0.1"
	hostName = "pc42"
)

func TestLeaseNameResolvesThroughAmtdDNS(t *testing.T) {
	netns.RequireRoot(t)
	dhclient := netns.RequireCommand(t, "dhclient", "isc-dhcp-client")
	dig := netns.RequireCommand(t, "dig", "bind9-dnsutils")
	amtd := buildAmtd(t)

	srv := netns.New(t, "amtd-site")
	cli := netns.New(t, "amtd-pc")
	netns.Link(t, srv, "amtd0", amtdAddr+"/24", cli, "pc0", "")

	dir := t.TempDir()
	conf := filepath.Join(dir, "amtd.conf")
	writeFile(t, conf, fmt.Sprintf(`[Site]
Domain=%[1]s
Address=%[2]s
AllowRoot=yes

[Store]
Path=%[3]s/amtd.db
KeyFile=%[3]s/master.key

[Control]
Socket=%[3]s/control.sock

[DHCP]
Enable=yes
Listen=0.0.0.0:67
LeaseTime=10min

[DHCPPool]
Subnet=10.88.0.0/24
Range=10.88.0.100-10.88.0.150
Router=%[2]s

[DNS]
Enable=yes
Listen=%[2]s:53
`, domain, amtdAddr, dir))
	if out, err := exec.Command(amtd, "store", "init", "--generate-key", "-c", conf).CombinedOutput(); err != nil {
		t.Fatalf("amtd store init: %v\n%s", err, out)
	}

	daemon := startAmtd(t, srv, amtd, conf)

	// The host asks for a lease and sends its name (option 12), as the OS
	// whose DHCP exchange AMT snoops does.
	cdir := t.TempDir()
	events := filepath.Join(cdir, "events")
	writeFile(t, filepath.Join(cdir, "dhclient.conf"), fmt.Sprintf("send host-name \"%s\";\nrequest subnet-mask, routers, domain-name, domain-name-servers;\n", hostName))
	writeFile(t, filepath.Join(cdir, "script"), `#!/bin/sh
case "$reason" in
BOUND|RENEW|REBIND|REBOOT) ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
esac
echo "reason=$reason ip=$new_ip_address domain=$new_domain_name dns=$new_domain_name_servers" >> `+events+`
`)
	os.Chmod(filepath.Join(cdir, "script"), 0o755)
	client := cli.Start(dhclient, "-d", "-v", "-1", "-cf", filepath.Join(cdir, "dhclient.conf"),
		"-lf", filepath.Join(cdir, "leases"), "-pf", filepath.Join(cdir, "pid"), "-sf", filepath.Join(cdir, "script"), "pc0")
	defer client.Stop()
	bound := waitFor(t, 20*time.Second, func() (string, bool) {
		b, _ := os.ReadFile(events)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "reason=BOUND ") {
				return l, true
			}
		}
		return "", false
	}, func() string { return client.Output() + "\namtd:\n" + daemon.Output() })
	ip := field(bound, "ip")
	if got := field(bound, "domain"); got != domain {
		t.Errorf("lease option 15 = %q, want %q (AMT takes its domain from it)", got, domain)
	}
	if got := field(bound, "dns"); got != amtdAddr {
		t.Errorf("lease option 6 = %q, want amtd's address %s", got, amtdAddr)
	}

	lookups := func(when string) {
		t.Helper()
		digIn := func(args ...string) string {
			out, err := cli.Command(dig, append([]string{"+short", "+time=2", "+tries=2", "@" + amtdAddr}, args...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: dig %v: %v\n%s", when, args, err, out)
			}
			return strings.TrimSpace(string(out))
		}
		if got := digIn("ProvisionServer."+domain, "A"); got != amtdAddr {
			t.Errorf("%s: ProvisionServer.%s A = %q, want %s", when, domain, got, amtdAddr)
		}
		if got := digIn(hostName+"."+domain, "A"); got != ip {
			t.Errorf("%s: %s.%s A = %q, want the leased %s", when, hostName, domain, got, ip)
		}
		if got := digIn("-x", ip); got != hostName+"."+domain+"." {
			t.Errorf("%s: PTR of %s = %q, want %s.%s.", when, ip, got, hostName, domain)
		}
	}
	lookups("after the lease")

	// A simulated AMT device on that host takes its identity from the real
	// client's lease file (option 15 becomes its DhcpDNSSuffix), resolves
	// ProvisionServer through amtd's DNS and sends its hello to the
	// appliance (spec/activation.md §2). Until the hello listener lands, the
	// test itself listens on the hello port in amtd's namespace.
	id, err := amtsim.ReadLease(filepath.Join(cdir, "leases"))
	if err != nil {
		t.Fatal(err)
	}
	if id.Suffix != domain || id.DNS.Addr().String() != amtdAddr || id.IP.String() != ip {
		t.Fatalf("device identity from the dhclient lease = %+v, want suffix %s, DNS %s, IP %s", id, domain, amtdAddr, ip)
	}
	dev, err := amtsim.New(amtsim.Config{RemoteConfig: true, Net: id})
	if err != nil {
		t.Fatal(err)
	}
	var hellos net.Listener
	if err := srv.Do(func() (err error) { hellos, err = net.Listen("tcp", amtdAddr+":9971"); return err }); err != nil {
		t.Fatal(err)
	}
	defer hellos.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := hellos.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(io.LimitReader(c, 16000))
		got <- b
	}()
	var sentTo netip.AddrPort
	if err := cli.Do(func() (err error) {
		sentTo, err = dev.SendHello(context.Background(), 9971, 0)
		return err
	}); err != nil {
		t.Fatalf("device hello: %v", err)
	}
	if sentTo.Addr().String() != amtdAddr {
		t.Errorf("hello went to %s, want the appliance %s (ProvisionServer through amtd's DNS)", sentTo, amtdAddr)
	}
	h, err := hello.Parse(<-got)
	if err != nil {
		t.Fatalf("hello received by the appliance: %v", err)
	}
	if h.UUID != dev.UUID || len(h.Hashes) < 23 {
		t.Errorf("hello: UUID %s with %d root hashes, want %s with the 23 default roots", h.UUID, len(h.Hashes), dev.UUID)
	}

	// A restart keeps the lease and the name: both come back from the store.
	daemon.Stop()
	daemon = startAmtd(t, srv, amtd, conf)
	defer daemon.Stop()
	lookups("after an amtd restart")
}

// startAmtd runs the daemon in ns and waits until `amtd status` answers,
// which it does only once every service listens.
func startAmtd(t *testing.T, ns *netns.NS, amtd, conf string) *netns.Proc {
	t.Helper()
	p := ns.Start(amtd, "run", "-c", conf)
	waitFor(t, 15*time.Second, func() (string, bool) {
		if p.Exited() {
			t.Fatalf("amtd exited during start-up:\n%s", p.Output())
		}
		out, err := exec.Command(amtd, "status", "-c", conf).CombinedOutput()
		return string(out), err == nil
	}, p.Output)
	return p
}

func buildAmtd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "amtd")
	var stderr bytes.Buffer
	cmd := exec.Command("go", "build", "-o", bin, "amtd/cmd/amtd")
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v\n%s", err, stderr.String())
	}
	return bin
}

func waitFor(t *testing.T, d time.Duration, ok func() (string, bool), diag func() string) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if v, done := ok(); done {
			return v
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("not done within %s\n%s", d, diag())
	return ""
}

func field(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
