package dhcp

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"amtd/daemon/config"
	"amtd/netsvc"
	"amtd/store"
)

var (
	serverA = netip.MustParseAddr("10.77.0.1")
	relayB  = netip.MustParseAddr("10.78.0.1")
	macA    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xa1}
	macB    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xb2}
	macR    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x42}
)

// testConfig has a direct pool (10.77.0.0/24), a relayed one (10.78.0.0/24)
// with its own domain, and one reservation.
func testConfig() *config.Config {
	return &config.Config{
		Site: config.Site{Domains: []string{"amt.example.com"}, Hostname: "amtd.amt.example.com", Addresses: []netip.Addr{serverA}},
		DHCP: config.DHCP{Enable: true, LeaseTime: 10 * time.Minute, Authoritative: true, UpdateDNS: true},
		DHCPPools: []config.DHCPPool{
			{Line: 10, Subnet: netip.MustParsePrefix("10.77.0.0/24"),
				Ranges:  []config.AddrRange{{Start: netip.MustParseAddr("10.77.0.100"), End: netip.MustParseAddr("10.77.0.199")}},
				Routers: []netip.Addr{serverA}},
			{Line: 20, Subnet: netip.MustParsePrefix("10.78.0.0/24"),
				Ranges:    []config.AddrRange{{Start: netip.MustParseAddr("10.78.0.50"), End: netip.MustParseAddr("10.78.0.59")}},
				Routers:   []netip.Addr{relayB},
				Domain:    "branch.example.com",
				LeaseTime: 2 * time.Minute},
		},
		Reservations: []config.DHCPReservation{{Line: 30, MAC: [6]byte(macR), Address: netip.MustParseAddr("10.77.0.42"), Hostname: "reserved-pc"}},
	}
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestServer(t testing.TB, cfg *config.Config, ls LeaseStore) (*server, *netsvc.Hosts, *clock) {
	t.Helper()
	pol, err := newPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	h := netsvc.NewHosts()
	return &server{pol: pol, tab: newTable(), store: ls, hosts: h, now: c.now, log: slog.New(slog.DiscardHandler)}, h, c
}

var direct = inbound{ifindex: 7, local: serverA}

func discover(t testing.TB, mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.NewDiscovery(mac, mods...)
	if err != nil {
		t.Fatal(err)
	}
	m.SetUnicast()
	return m
}

func request(t testing.TB, offer *dhcpv4.DHCPv4, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.NewRequestFromOffer(offer, mods...)
	if err != nil {
		t.Fatal(err)
	}
	m.SetUnicast()
	return m
}

// dora runs DISCOVER/OFFER/REQUEST/ACK and returns the ACK.
func dora(t testing.TB, s *server, mac net.HardwareAddr, in inbound, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	ctx := context.Background()
	off := s.handle(ctx, discover(t, mac, mods...), in)
	if off == nil || off.resp.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("DISCOVER from %s: no OFFER (%v)", mac, off)
	}
	ack := s.handle(ctx, request(t, off.resp, mods...), in)
	if ack == nil || ack.resp.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("REQUEST from %s: no ACK (%v)", mac, ack)
	}
	return ack.resp
}

// checkOptions asserts the options AMT depends on (spec/network.md §1).
func checkOptions(t testing.TB, m *dhcpv4.DHCPv4, domain string, lease bool) {
	t.Helper()
	if got := m.DomainName(); got != domain {
		t.Errorf("option 15 = %q, want %q", got, domain)
	}
	if dns := m.DNS(); len(dns) != 1 || !dns[0].Equal(serverA.AsSlice()) {
		t.Errorf("option 6 = %v, want [%s] (amtd itself)", dns, serverA)
	}
	if m.SubnetMask() == nil {
		t.Error("no option 1")
	}
	if sid := m.ServerIdentifier(); sid == nil {
		t.Error("no option 54")
	}
	hasLease := m.Options.Has(dhcpv4.OptionIPAddressLeaseTime)
	if hasLease != lease || m.Options.Has(dhcpv4.OptionRenewTimeValue) != lease || m.Options.Has(dhcpv4.OptionRebindingTimeValue) != lease {
		t.Errorf("options 51/58/59 present = %v, want %v", hasLease, lease)
	}
}

func TestDORAServesAMTOptionsAndRegistersHostname(t *testing.T) {
	ls := NewMemoryLeases()
	s, hosts, _ := newTestServer(t, testConfig(), ls)
	ack := dora(t, s, macA, direct, dhcpv4.WithOption(dhcpv4.OptHostName("PC-One")))
	ip := addrOf(ack.YourIPAddr)
	if !netip.MustParsePrefix("10.77.0.0/24").Contains(ip) || ip.As4()[3] < 100 {
		t.Fatalf("yiaddr %s outside the pool range", ip)
	}
	checkOptions(t, ack, "amt.example.com", true)
	if lt := ack.IPAddressLeaseTime(0); lt != 10*time.Minute {
		t.Errorf("lease time %s, want the default 10m", lt)
	}
	if r := ack.Router(); len(r) != 1 || !r[0].Equal(serverA.AsSlice()) {
		t.Errorf("option 3 = %v", r)
	}
	if got := hosts.Lookup("pc-one.amt.example.com"); len(got) != 1 || got[0] != ip {
		t.Errorf("Hosts pc-one.amt.example.com = %v, want %s", got, ip)
	}
	if got := hosts.Reverse(ip); got != "pc-one.amt.example.com." {
		t.Errorf("PTR %s = %q", ip, got)
	}
	all, _ := ls.All(context.Background())
	if len(all) != 1 || all[0].State != StateBound || all[0].IP != ip || all[0].Hostname != "PC-One" {
		t.Errorf("stored leases = %+v", all)
	}
}

func TestRenewalServesOption15(t *testing.T) {
	s, _, clk := newTestServer(t, testConfig(), nil)
	ack := dora(t, s, macA, direct)
	clk.advance(5 * time.Minute)
	renew, _ := dhcpv4.New(dhcpv4.WithHwAddr(macA), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithClientIP(ack.YourIPAddr))
	o := s.handle(context.Background(), renew, direct)
	if o == nil || o.resp.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("renewal not ACKed: %v", o)
	}
	checkOptions(t, o.resp, "amt.example.com", true)
	if want := netip.AddrPortFrom(addrOf(ack.YourIPAddr), 68); o.dst != want || o.l2 {
		t.Errorf("renewal reply to %v (l2 %v), want unicast %v", o.dst, o.l2, want)
	}
	if lt := o.resp.IPAddressLeaseTime(0); lt != 10*time.Minute {
		t.Errorf("renewed lease %s, want a fresh 10m", lt)
	}
}

func TestReplyDestination(t *testing.T) {
	bcast := netip.MustParseAddrPort("255.255.255.255:68")
	mk := func(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		m, _ := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(macA), dhcpv4.WithBroadcast(false)}, mods...)...)
		return m
	}
	resp := func(mt dhcpv4.MessageType, yi string) *dhcpv4.DHCPv4 {
		m, _ := dhcpv4.New(dhcpv4.WithHwAddr(macA), dhcpv4.WithMessageType(mt), dhcpv4.WithYourIP(net.ParseIP(yi)))
		return m
	}
	tests := []struct {
		name  string
		req   *dhcpv4.DHCPv4
		resp  *dhcpv4.DHCPv4
		dst   netip.AddrPort
		l2    bool
		ifidx int
	}{
		{"relayed goes to giaddr:67", mk(dhcpv4.WithGatewayIP(relayB.AsSlice()), dhcpv4.WithBroadcast(true)), resp(dhcpv4.MessageTypeOffer, "10.78.0.50"), netip.MustParseAddrPort("10.78.0.1:67"), false, 0},
		{"NAK is broadcast", mk(dhcpv4.WithClientIP(net.ParseIP("10.77.0.5"))), resp(dhcpv4.MessageTypeNak, "0.0.0.0"), bcast, false, 7},
		{"ciaddr gets unicast", mk(dhcpv4.WithClientIP(net.ParseIP("10.77.0.5"))), resp(dhcpv4.MessageTypeAck, "10.77.0.5"), netip.MustParseAddrPort("10.77.0.5:68"), false, 0},
		{"broadcast flag", mk(dhcpv4.WithBroadcast(true)), resp(dhcpv4.MessageTypeOffer, "10.77.0.100"), bcast, false, 7},
		{"else layer 2 to yiaddr at chaddr", mk(), resp(dhcpv4.MessageTypeOffer, "10.77.0.100"), netip.MustParseAddrPort("10.77.0.100:68"), true, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := destination(tc.req, tc.resp, direct)
			if o.dst != tc.dst || o.l2 != tc.l2 || o.ifindex != tc.ifidx {
				t.Errorf("got dst %v l2 %v ifindex %d, want %v %v %d", o.dst, o.l2, o.ifindex, tc.dst, tc.l2, tc.ifidx)
			}
		})
	}
}

func TestRelayedClientGetsItsSubnetsPool(t *testing.T) {
	s, hosts, _ := newTestServer(t, testConfig(), nil)
	// The request reaches the server by unicast from the relay, on the
	// server's own address; giaddr names the client's link.
	via := inbound{ifindex: 9, local: netip.MustParseAddr("10.79.0.1")}
	ack := dora(t, s, macB, via, dhcpv4.WithGatewayIP(relayB.AsSlice()), dhcpv4.WithOption(dhcpv4.OptHostName("branchpc")))
	ip := addrOf(ack.YourIPAddr)
	if !netip.MustParsePrefix("10.78.0.0/24").Contains(ip) {
		t.Fatalf("relayed client got %s, want an address in 10.78.0.0/24", ip)
	}
	if ack.DomainName() != "branch.example.com" || ack.IPAddressLeaseTime(0) != 2*time.Minute {
		t.Errorf("relayed pool options: domain %q lease %s", ack.DomainName(), ack.IPAddressLeaseTime(0))
	}
	if len(hosts.Lookup("branchpc.branch.example.com")) != 1 {
		t.Error("relayed client's host name not registered under the pool's domain")
	}

	// RFC 3527 link selection wins over giaddr.
	ls := dhcpv4.OptRelayAgentInfo(dhcpv4.OptGeneric(dhcpv4.LinkSelectionSubOption, netip.MustParseAddr("10.77.0.0").AsSlice()))
	ack = dora(t, s, net.HardwareAddr{2, 0, 0, 0, 0, 0xc3}, via, dhcpv4.WithGatewayIP(relayB.AsSlice()), dhcpv4.WithOption(ls))
	if ip := addrOf(ack.YourIPAddr); !netip.MustParsePrefix("10.77.0.0/24").Contains(ip) {
		t.Errorf("link selection 10.77.0.0 ignored: got %s", ip)
	}
	if !ack.Options.Has(dhcpv4.OptionRelayAgentInformation) {
		t.Error("option 82 not echoed to the relay (RFC 3046 §2.2)")
	}
}

func TestReservationHonoured(t *testing.T) {
	s, hosts, _ := newTestServer(t, testConfig(), nil)
	off := s.handle(context.Background(), discover(t, macR, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.77.0.150")))), direct)
	if got := addrOf(off.resp.YourIPAddr); got != netip.MustParseAddr("10.77.0.42") {
		t.Errorf("reserved MAC asking for .150 was offered %s, want its reservation 10.77.0.42", got)
	}
	ack := dora(t, s, macR, direct)
	if got := addrOf(ack.YourIPAddr); got != netip.MustParseAddr("10.77.0.42") {
		t.Fatalf("reserved MAC got %s, want 10.77.0.42", got)
	}
	if len(hosts.Lookup("reserved-pc.amt.example.com")) != 1 {
		t.Error("reservation Hostname= not registered")
	}
	// Nobody else gets the reserved address, even by asking for it.
	o := s.handle(context.Background(), discover(t, macA, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.77.0.42")))), direct)
	if got := addrOf(o.resp.YourIPAddr); got == netip.MustParseAddr("10.77.0.42") {
		t.Error("reserved address offered to another MAC")
	}
}

func TestDeclineMarksAddress(t *testing.T) {
	ls := NewMemoryLeases()
	s, hosts, clk := newTestServer(t, testConfig(), ls)
	ack := dora(t, s, macA, direct, dhcpv4.WithOption(dhcpv4.OptHostName("a")))
	ip := addrOf(ack.YourIPAddr)
	dec, _ := dhcpv4.New(dhcpv4.WithHwAddr(macA), dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip.AsSlice())), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverA.AsSlice())))
	if o := s.handle(context.Background(), dec, direct); o != nil {
		t.Errorf("DECLINE answered: %v", o.resp)
	}
	if len(hosts.Lookup("a.amt.example.com")) != 0 {
		t.Error("declined lease's name still in DNS")
	}
	all, _ := ls.All(context.Background())
	if len(all) != 1 || all[0].State != StateDeclined {
		t.Errorf("stored = %+v, want one declined", all)
	}
	// Neither the decliner nor anyone else gets the address for a while.
	for _, mac := range []net.HardwareAddr{macA, macB} {
		if got := addrOf(dora(t, s, mac, direct).YourIPAddr); got == ip {
			t.Errorf("%s got declined %s", mac, got)
		}
	}
	clk.advance(declineHold + time.Second)
	s.expire(context.Background())
	if _, declined := s.tab.declined[ip]; declined {
		t.Error("declined mark did not lapse")
	}
}

func TestReleaseFrees(t *testing.T) {
	ls := NewMemoryLeases()
	s, hosts, _ := newTestServer(t, testConfig(), ls)
	ack := dora(t, s, macA, direct, dhcpv4.WithOption(dhcpv4.OptHostName("leaver")))
	ip := addrOf(ack.YourIPAddr)
	rel, _ := dhcpv4.New(dhcpv4.WithHwAddr(macA), dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease), dhcpv4.WithClientIP(ip.AsSlice()))
	s.handle(context.Background(), rel, direct)
	if len(hosts.Lookup("leaver.amt.example.com")) != 0 {
		t.Error("released lease's name still in DNS")
	}
	all, _ := ls.All(context.Background())
	if len(all) != 1 || all[0].State != StateReleased {
		t.Errorf("stored = %+v, want released", all)
	}
	// The freed address can go to another client.
	s.tab.cursor = map[netip.Prefix]netip.Addr{}
	if got := addrOf(dora(t, s, macB, direct).YourIPAddr); got != ip {
		t.Errorf("after release the next client got %s, want the freed %s", got, ip)
	}
}

func TestInformAnswersOptionsOnly(t *testing.T) {
	s, _, _ := newTestServer(t, testConfig(), nil)
	inf, _ := dhcpv4.New(dhcpv4.WithHwAddr(macA), dhcpv4.WithMessageType(dhcpv4.MessageTypeInform), dhcpv4.WithClientIP(net.ParseIP("10.77.0.9")))
	o := s.handle(context.Background(), inf, direct)
	if o == nil || o.resp.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("INFORM not answered: %v", o)
	}
	if addrOf(o.resp.YourIPAddr).IsValid() {
		t.Errorf("INFORM reply has yiaddr %s", o.resp.YourIPAddr)
	}
	checkOptions(t, o.resp, "amt.example.com", false)
	if o.dst != netip.MustParseAddrPort("10.77.0.9:68") {
		t.Errorf("INFORM reply to %v, want ciaddr", o.dst)
	}
	if len(s.tab.byMAC) != 0 {
		t.Error("INFORM created a lease")
	}
}

func TestClientFQDN(t *testing.T) {
	tests := []struct {
		name      string
		opt       FQDN
		update    bool
		wantFlags byte
		wantName  string
		dnsName   string
	}{
		{"wire, client asks server (S=1)", FQDN{Flags: fqdnE | fqdnS, Name: "amt1.amt.example.com"}, true, fqdnE | fqdnS, "amt1.amt.example.com", "amt1.amt.example.com"},
		{"wire, client would update itself: override", FQDN{Flags: fqdnE, Name: "amt2.amt.example.com"}, true, fqdnE | fqdnS | fqdnO, "amt2.amt.example.com", "amt2.amt.example.com"},
		{"ascii partial name gets the domain", FQDN{Flags: fqdnS, Name: "amt3", Partial: true}, true, fqdnS, "amt3.amt.example.com", "amt3.amt.example.com"},
		{"foreign domain: first label under ours", FQDN{Flags: fqdnE | fqdnS, Name: "pc.evil.example.net"}, true, fqdnE | fqdnS, "pc.amt.example.com", "pc.amt.example.com"},
		{"N=1: no update", FQDN{Flags: fqdnE | fqdnN, Name: "quiet.amt.example.com"}, true, fqdnE | fqdnN, "quiet.amt.example.com", ""},
		{"updates off", FQDN{Flags: fqdnE | fqdnS, Name: "off.amt.example.com"}, false, fqdnE | fqdnN, "off.amt.example.com", ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.DHCP.UpdateDNS = tc.update
			s, hosts, _ := newTestServer(t, cfg, nil)
			mac := net.HardwareAddr{2, 0, 0, 0, 1, byte(i)}
			ack := dora(t, s, mac, direct, dhcpv4.WithGeneric(dhcpv4.OptionFQDN, tc.opt.Bytes()))
			got, err := ParseFQDN(ack.GetOneOption(dhcpv4.OptionFQDN))
			if err != nil {
				t.Fatalf("reply option 81: %v", err)
			}
			if got.Flags != tc.wantFlags || got.Name != tc.wantName || got.RCode1 != 255 || got.RCode2 != 255 {
				t.Errorf("reply option 81 = %+v, want flags %#x name %q rcodes 255", got, tc.wantFlags, tc.wantName)
			}
			ip := addrOf(ack.YourIPAddr)
			if tc.dnsName == "" {
				if hosts.Len() != 0 {
					t.Errorf("registered %q though no update was due", hosts.Reverse(ip))
				}
			} else if a := hosts.Lookup(tc.dnsName); len(a) != 1 || a[0] != ip {
				t.Errorf("Hosts %s = %v, want %s", tc.dnsName, a, ip)
			}
		})
	}
}

func TestNameHeldByAnotherLeaseIsNotStolen(t *testing.T) {
	s, hosts, _ := newTestServer(t, testConfig(), nil)
	first := addrOf(dora(t, s, macA, direct, dhcpv4.WithOption(dhcpv4.OptHostName("dup"))).YourIPAddr)
	dora(t, s, macB, direct, dhcpv4.WithOption(dhcpv4.OptHostName("dup")))
	if got := hosts.Lookup("dup.amt.example.com"); len(got) != 1 || got[0] != first {
		t.Errorf("dup.amt.example.com = %v, want the first holder %s", got, first)
	}
}

func TestNAKForForeignAddress(t *testing.T) {
	s, _, _ := newTestServer(t, testConfig(), nil)
	// INIT-REBOOT asking for an address from another network (the laptop
	// moved): NAK so it starts over, broadcast.
	req, _ := dhcpv4.New(dhcpv4.WithHwAddr(macA), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("192.168.1.20"))))
	o := s.handle(context.Background(), req, direct)
	if o == nil || o.resp.MessageType() != dhcpv4.MessageTypeNak || o.dst.Addr() != netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		t.Fatalf("want broadcast NAK, got %v", o)
	}
	// A REQUEST naming another server drops our offer silently.
	off := s.handle(context.Background(), discover(t, macB), direct)
	other, _ := dhcpv4.NewRequestFromOffer(off.resp, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.77.0.2"))))
	if o := s.handle(context.Background(), other, direct); o != nil {
		t.Errorf("answered a REQUEST for another server: %v", o.resp)
	}
	if l := s.tab.byMAC[string(macB)]; l != nil {
		t.Errorf("offer not withdrawn: %+v", l)
	}
}

func TestPoolExhaustionAndExpiry(t *testing.T) {
	cfg := testConfig()
	s, hosts, clk := newTestServer(t, cfg, nil)
	via := inbound{ifindex: 9, local: netip.MustParseAddr("10.79.0.1")}
	for i := range 10 {
		dora(t, s, net.HardwareAddr{2, 0, 0, 0, 2, byte(i)}, via, dhcpv4.WithGatewayIP(relayB.AsSlice()), dhcpv4.WithOption(dhcpv4.OptHostName("h"+string(rune('a'+i)))))
	}
	if o := s.handle(context.Background(), discover(t, macA, dhcpv4.WithGatewayIP(relayB.AsSlice())), via); o != nil {
		t.Fatalf("11th client in a 10-address pool got %s", o.resp.YourIPAddr)
	}
	clk.advance(2*time.Minute + time.Second)
	if n := s.expire(context.Background()); n != 10 {
		t.Errorf("expired %d leases, want 10", n)
	}
	if hosts.Len() != 0 {
		t.Errorf("%d names left after expiry", hosts.Len())
	}
	if o := s.handle(context.Background(), discover(t, macA, dhcpv4.WithGatewayIP(relayB.AsSlice())), via); o == nil {
		t.Error("no address after every lease expired")
	}
}

// TestRestartKeepsLeases uses the real store, a SQLite file: a second server
// on the same file knows the first one's leases and names.
func TestRestartKeepsLeases(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := filepath.Join(dir, "master.key")
	if err := store.GenerateKeyFile(key); err != nil {
		t.Fatal(err)
	}
	opts := store.Options{Path: filepath.Join(dir, "amtd.db"), KeyFile: key, BackupDir: filepath.Join(dir, "backup")}
	st, err := store.Init(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	s1, _, clk := newTestServer(t, testConfig(), storeLeases{st.Leases()})
	ack := dora(t, s1, macA, direct, dhcpv4.WithOption(dhcpv4.OptHostName("keeper")))
	st.Close()

	st2, err := store.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	s2, hosts2, _ := newTestServer(t, testConfig(), storeLeases{st2.Leases()})
	s2.now = clk.now
	if err := s2.restore(ctx); err != nil {
		t.Fatal(err)
	}
	if got := hosts2.Lookup("keeper.amt.example.com"); len(got) != 1 || got[0] != addrOf(ack.YourIPAddr) {
		t.Errorf("after restart keeper = %v, want %s", got, ack.YourIPAddr)
	}
	// Another client cannot take the address; the owner's renewal keeps it.
	if got := addrOf(dora(t, s2, macB, direct).YourIPAddr); got == addrOf(ack.YourIPAddr) {
		t.Errorf("restarted server gave %s's address to another client", macA)
	}
	renew, _ := dhcpv4.New(dhcpv4.WithHwAddr(macA), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithClientIP(ack.YourIPAddr))
	if o := s2.handle(ctx, renew, direct); o == nil || o.resp.MessageType() != dhcpv4.MessageTypeAck {
		t.Errorf("renewal after restart not ACKed: %v", o)
	}
}

func TestPolicyErrors(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*config.Config)
		want string
	}{
		{"no pools", func(c *config.Config) { c.DHCPPools = nil }, "no [DHCPPool]"},
		{"range outside subnet", func(c *config.Config) {
			c.DHCPPools[0].Ranges[0].End = netip.MustParseAddr("10.99.0.1")
		}, "not an ascending range inside 10.77.0.0/24"},
		{"overlap", func(c *config.Config) { c.DHCPPools[1].Subnet = netip.MustParsePrefix("10.77.0.0/16") }, "overlaps"},
		{"reservation outside pools", func(c *config.Config) { c.Reservations[0].Address = netip.MustParseAddr("192.0.2.1") }, "in no [DHCPPool]"},
		{"no domain", func(c *config.Config) { c.Site.Domains = nil }, "no domain for option 15"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.mod(cfg)
			_, err := newPolicy(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestDetectionMatch(t *testing.T) {
	tests := []struct {
		domain string
		det    []string
		want   string
	}{
		{"amt.example.com", []string{"example.com"}, "example.com"},
		{"amt.example.com", []string{"amt.example.com."}, "amt.example.com"},
		{"AMT.Example.com", []string{"amt.example.com"}, "amt.example.com"},
		{"myexample.com", []string{"example.com"}, ""},
		{"amt.example.com", []string{"6f1e3c.com"}, ""},
		{"site.local", riskyDetectionStrings, "local"},
	}
	for _, tc := range tests {
		got, ok := detectionMatch(tc.domain, tc.det)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("detectionMatch(%q, %v) = %q, %v; want %q", tc.domain, tc.det, got, ok, tc.want)
		}
	}
	// Serving a risky intranet suffix is flagged in Status(); the site's own
	// domain is not, with CIRA on or off: amtd gives the devices it
	// configures a detection string under .invalid.
	cfg := testConfig()
	cfg.CIRA.Enable = true
	svc, err := New(cfg, netsvc.Deps{Hosts: netsvc.NewHosts()})
	if err != nil {
		t.Fatal(err)
	}
	if st := svc.Status(); strings.Contains(st, "WARNING") {
		t.Errorf("Status() = %q: the site's own domain flagged", st)
	}
	cfg.Site.Domains = append(cfg.Site.Domains, "site.local")
	for i := range cfg.DHCPPools {
		cfg.DHCPPools[i].Domain = "site.local"
	}
	svc, err = New(cfg, netsvc.Deps{Hosts: netsvc.NewHosts()})
	if err != nil {
		t.Fatal(err)
	}
	if st := svc.Status(); !strings.Contains(st, "WARNING") || !strings.Contains(st, `"local"`) {
		t.Errorf("Status() = %q, want a CIRA detection warning for site.local", st)
	}
}
