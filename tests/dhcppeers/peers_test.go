package dhcppeers

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"

	"amtd/netsvc"
	"amtd/netsvc/dhcp"
	"amtd/tests/netns"
)

const dhclientConf = `send host-name "pc-one";
send fqdn.fqdn "pc-one.` + domain + `.";
send fqdn.encoded on;
send fqdn.server-update on;
request subnet-mask, routers, domain-name, domain-name-servers, host-name;
`

// TestDhclientLeaseOption15AndRelease: ISC dhclient gets an address from the
// pool with option 15 and amtd as DNS server, its name lands in
// netsvc.Hosts, and dhclient -r releases it.
func TestDhclientLeaseOption15AndRelease(t *testing.T) {
	netns.RequireRoot(t)
	t.Parallel()
	srvNS, cliNS := directLink(t)
	srv := startServer(t, srvNS, baseConfig(), t.TempDir(), netsvc.NewHosts())
	d := newDhclient(t, cliNS, "eth0", dhclientConf)
	d.start()
	ev, _ := waitEvent(t, d.out, 0, 20*time.Second, d.output, "BOUND")
	ip := netip.MustParseAddr(ev["ip"])
	if !netip.MustParsePrefix("10.77.0.0/24").Contains(ip) || ip.As4()[3] < 100 || ip.As4()[3] > 199 {
		t.Errorf("dhclient got %s, outside Range=10.77.0.100-10.77.0.199", ip)
	}
	if ev["domain"] != domain || ev["dns"] != amtdAddr.String() || ev["mask"] != "255.255.255.0" || ev["server"] != amtdAddr.String() {
		t.Errorf("dhclient received %v; want option 15 %s, DNS and server %s", ev, domain, amtdAddr)
	}
	if got := srv.hosts.Lookup("pc-one." + domain); len(got) != 1 || got[0] != ip {
		t.Errorf("Hosts pc-one.%s = %v, want %s", domain, got, ip)
	}
	if l, ok := leaseOf(srv, ip); !ok || l.State != dhcp.StateBound || l.ClientFQDN != "pc-one."+domain {
		t.Errorf("server lease for %s = %+v", ip, l)
	}

	d.release(t)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && len(srv.hosts.Lookup("pc-one."+domain)) > 0 {
		time.Sleep(20 * time.Millisecond)
	}
	if got := srv.hosts.Lookup("pc-one." + domain); len(got) != 0 {
		t.Errorf("after dhclient -r, pc-one still resolves to %v", got)
	}
	if l, _ := leaseOf(srv, ip); l.State != dhcp.StateReleased {
		t.Errorf("after release the lease is %q, want released", l.State)
	}
}

const udhcpcScript = `#!/bin/sh
case "$1" in
bound|renew) ip addr replace "$ip/$mask" dev "$interface" ;;
esac
echo "reason=$1 ip=$ip mask=$mask domain=$domain dns=$(echo $dns | tr ' ' ,) lease=$lease server=$serverid" >> %q
`

func udhcpc(t *testing.T, ns *netns.NS, extra ...string) (out string, run func() string) {
	t.Helper()
	bin := netns.RequireCommand(t, "udhcpc", "udhcpc")
	dir := t.TempDir()
	out = filepath.Join(dir, "events")
	script := filepath.Join(dir, "script")
	must(t, os.WriteFile(script, fmt.Appendf(nil, udhcpcScript, out), 0o755))
	return out, func() string {
		args := append([]string{"-f", "-q", "-n", "-t", "5", "-T", "1", "-i", "eth0", "-s", script}, extra...)
		b, err := ns.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("udhcpc %v: %v\n%s", args, err, b)
		}
		return string(b)
	}
}

// TestUdhcpcLease: busybox udhcpc with option 12 and 81 gets a lease, option
// 15 and DNS, and its name is registered.
func TestUdhcpcLease(t *testing.T) {
	netns.RequireRoot(t)
	t.Parallel()
	srvNS, cliNS := directLink(t)
	srv := startServer(t, srvNS, baseConfig(), t.TempDir(), netsvc.NewHosts())
	out, run := udhcpc(t, cliNS, "-x", "hostname:bbox", "-F", "bbox")
	log := run()
	ev, _ := waitEvent(t, out, 0, time.Second, func() string { return log }, "bound")
	ip := netip.MustParseAddr(ev["ip"])
	if ev["domain"] != domain || ev["dns"] != amtdAddr.String() {
		t.Errorf("udhcpc received %v, want domain %s and DNS %s", ev, domain, amtdAddr)
	}
	if got := srv.hosts.Lookup("bbox." + domain); len(got) != 1 || got[0] != ip {
		t.Errorf("Hosts bbox.%s = %v, want %s", domain, got, ip)
	}
}

// TestUdhcpcDeclinesAddressInUse: the first free address is already used by
// a host on the link; udhcpc's ARP check finds it and DECLINEs; amtd marks
// the address and hands out another.
func TestUdhcpcDeclinesAddressInUse(t *testing.T) {
	netns.RequireRoot(t)
	t.Parallel()
	srvNS, cliNS := directLink(t)
	squatted := netip.MustParseAddr("10.77.0.100") // first address of the range
	srvNS.Run("ip", "addr", "add", squatted.String()+"/24", "dev", "eth0")
	srv := startServer(t, srvNS, baseConfig(), t.TempDir(), netsvc.NewHosts())
	out, run := udhcpc(t, cliNS, "-a200") // ARP check waits 200 ms; busybox then waits 10 s after a DECLINE
	log := run()
	ev, _ := waitEvent(t, out, 0, time.Second, func() string { return log }, "bound")
	if ev["ip"] == squatted.String() {
		t.Fatalf("udhcpc bound the squatted %s; output:\n%s", squatted, log)
	}
	if testing.Verbose() {
		t.Logf("udhcpc output:\n%s", log)
	}
	l, ok := leaseOf(srv, squatted)
	if !ok || l.State != dhcp.StateDeclined || !l.Expires.After(time.Now()) {
		t.Errorf("server lease for %s = %+v (found %v), want declined for a while", squatted, l, ok)
	}
}

// TestRelayedClientGetsItsSubnet: client → relay → amtd. The client's link
// is 10.78.0.0/24; the relay forwards with giaddr 10.78.0.1 over 10.79.0.0/24.
func TestRelayedClientGetsItsSubnet(t *testing.T) {
	netns.RequireRoot(t)
	t.Parallel()
	srvNS := netns.New(t, "dhs")
	relayNS := netns.New(t, "dhr")
	cliNS := netns.New(t, "dhc")
	netns.Link(t, srvNS, "eth1", "10.79.0.1/24", relayNS, "up0", "10.79.0.2/24")
	netns.Link(t, relayNS, "down0", "10.78.0.1/24", cliNS, "eth0", "")
	srvNS.Run("ip", "route", "add", "10.78.0.0/24", "via", "10.79.0.2")
	srv := startServer(t, srvNS, baseConfig(), t.TempDir(), netsvc.NewHosts())
	relay := netns.StartRelay(t, relayNS, "down0", netip.MustParseAddr("10.78.0.1"), netip.MustParseAddr("10.79.0.1"))

	d := newDhclient(t, cliNS, "eth0", `send host-name "far-pc";`+"\n")
	d.start()
	ev, _ := waitEvent(t, d.out, 0, 20*time.Second, d.output, "BOUND")
	ip := netip.MustParseAddr(ev["ip"])
	if !netip.MustParsePrefix("10.78.0.0/24").Contains(ip) {
		t.Errorf("relayed client got %s, want an address from 10.78.0.0/24", ip)
	}
	if ev["domain"] != "branch."+domain {
		t.Errorf("relayed client got option 15 %q, want the pool's branch.%s", ev["domain"], domain)
	}
	if relay.Forwarded.Load() < 2 {
		t.Errorf("relay forwarded %d requests; the exchange did not go through it", relay.Forwarded.Load())
	}
	if got := srv.hosts.Lookup("far-pc.branch." + domain); len(got) != 1 || got[0] != ip {
		t.Errorf("Hosts far-pc.branch.%s = %v", domain, got)
	}
}

// TestReservationHonoured: the client whose MAC is reserved gets its address.
func TestReservationHonoured(t *testing.T) {
	netns.RequireRoot(t)
	t.Parallel()
	srvNS, cliNS := directLink(t)
	mac := net.HardwareAddr{0x02, 0xa3, 0x7d, 0, 0, 0x42}
	cliNS.Run("ip", "link", "set", "eth0", "address", mac.String())
	cfg := baseConfig()
	cfg.Reservations = append(cfg.Reservations, configReservation(mac, "10.77.0.42", "reserved-pc"))
	srv := startServer(t, srvNS, cfg, t.TempDir(), netsvc.NewHosts())
	d := newDhclient(t, cliNS, "eth0", "")
	d.start()
	ev, _ := waitEvent(t, d.out, 0, 20*time.Second, d.output, "BOUND")
	if ev["ip"] != "10.77.0.42" {
		t.Errorf("reserved client got %s, want 10.77.0.42", ev["ip"])
	}
	if got := srv.hosts.Lookup("reserved-pc." + domain); len(got) != 1 || got[0].String() != "10.77.0.42" {
		t.Errorf("Hosts reserved-pc = %v", got)
	}
}

// TestLeaseSurvivesRestart: dhclient holds a short lease; amtd stops and a new
// instance starts on the same store file; the client's renewal is ACKed with
// the same address and its name is back in DNS.
func TestLeaseSurvivesRestart(t *testing.T) {
	netns.RequireRoot(t)
	t.Parallel()
	srvNS, cliNS := directLink(t)
	cfg := baseConfig()
	cfg.DHCPPools[0].LeaseTime = 6 * time.Second // renew (T1) after 3 s
	dir := t.TempDir()
	srv := startServer(t, srvNS, cfg, dir, netsvc.NewHosts())
	d := newDhclient(t, cliNS, "eth0", `send host-name "stayer";`+"\n")
	d.start()
	ev, n := waitEvent(t, d.out, 0, 20*time.Second, d.output, "BOUND")
	srv.stop()

	hosts := netsvc.NewHosts()
	srv2 := startServer(t, srvNS, cfg, dir, hosts)
	if got := hosts.Lookup("stayer." + domain); len(got) != 1 || got[0].String() != ev["ip"] {
		t.Errorf("after restart, before any packet: stayer = %v, want %s from the store", got, ev["ip"])
	}
	renew, _ := waitEvent(t, d.out, n, 15*time.Second, d.output, "RENEW", "REBIND", "BOUND", "REBOOT")
	if renew["ip"] != ev["ip"] {
		t.Errorf("after restart the client got %s (%s), want its old %s", renew["ip"], renew["reason"], ev["ip"])
	}
	if l, ok := leaseOf(srv2, netip.MustParseAddr(ev["ip"])); !ok || l.State != dhcp.StateBound {
		t.Errorf("restarted server's lease: %+v", l)
	}
}

// TestInformFromStaticHost: a statically addressed host (as AMT with a static
// IP) sends DHCPINFORM and learns option 15 and the DNS server.
func TestInformFromStaticHost(t *testing.T) {
	netns.RequireRoot(t)
	t.Parallel()
	srvNS, cliNS := directLink(t)
	cliNS.Run("ip", "addr", "add", "10.77.0.50/24", "dev", "eth0")
	srv := startServer(t, srvNS, baseConfig(), t.TempDir(), netsvc.NewHosts())
	var ack *dhcpv4.DHCPv4
	err := cliNS.Do(func() error {
		c, err := nclient4.New("eth0", nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(3))
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ack, err = c.Inform(ctx, net.ParseIP("10.77.0.50"))
		return err
	})
	if err != nil {
		t.Fatalf("INFORM: %v", err)
	}
	if ack.DomainName() != domain || len(ack.DNS()) != 1 || !ack.DNS()[0].Equal(amtdAddr.AsSlice()) {
		t.Errorf("INFORM answer: option 15 %q, option 6 %v", ack.DomainName(), ack.DNS())
	}
	if !ack.YourIPAddr.IsUnspecified() || ack.Options.Has(dhcpv4.OptionIPAddressLeaseTime) {
		t.Errorf("INFORM answer leases something: yiaddr %s, lease option %v", ack.YourIPAddr, ack.Options.Has(dhcpv4.OptionIPAddressLeaseTime))
	}
	if len(srv.svc.Leases()) != 0 {
		t.Errorf("INFORM created leases: %+v", srv.svc.Leases())
	}
}
