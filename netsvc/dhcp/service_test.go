package dhcp

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"amtd/daemon/config"
	"amtd/metrics"
	"amtd/netsvc"
)

// loopbackConfig serves 127.0.0.0/24 on an unprivileged port, so these tests
// need no root.
func loopbackConfig(listen string) *config.Config {
	return &config.Config{
		Site: config.Site{Domains: []string{"amt.example.com"}, Addresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")}},
		DHCP: config.DHCP{Enable: true, Listen: listen, LeaseTime: 10 * time.Minute, Authoritative: true, UpdateDNS: true},
		DHCPPools: []config.DHCPPool{{Subnet: netip.MustParsePrefix("127.0.0.0/24"),
			Ranges: []config.AddrRange{{Start: netip.MustParseAddr("127.0.0.100"), End: netip.MustParseAddr("127.0.0.200")}}}},
	}
}

func startLoopback(t *testing.T, lis *netsvc.Listeners, reg *metrics.Registry) (*Service, *net.UDPAddr) {
	t.Helper()
	svc, err := New(loopbackConfig("127.0.0.1:0"), netsvc.Deps{Listeners: lis, Hosts: netsvc.NewHosts(), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(context.Background()) })
	f, err := lis.File("dhcp")
	if err != nil || f == nil {
		t.Fatalf("registry has no dhcp socket: %v", err)
	}
	defer f.Close()
	pc, err := net.FilePacketConn(f)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return svc, pc.LocalAddr().(*net.UDPAddr)
}

// TestFloodKeepsGoroutinesBounded sends thousands of requests as fast as the
// socket takes them; the worker pool must not grow with the load.
func TestFloodKeepsGoroutinesBounded(t *testing.T) {
	lis := netsvc.NewListeners(nil)
	defer lis.Close()
	reg := metrics.NewRegistry()
	before := runtime.NumGoroutine()
	svc, addr := startLoopback(t, lis, reg)
	started := runtime.NumGoroutine()
	if err := svc.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp4", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	var peak int
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			n := runtime.NumGoroutine()
			mu.Lock()
			peak = max(peak, n)
			mu.Unlock()
			runtime.Gosched()
		}
	})
	const sent = 5000
	for i := range sent {
		mac := net.HardwareAddr{2, 0xf1, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		var m *dhcpv4.DHCPv4
		if i%2 == 0 {
			m, _ = dhcpv4.NewDiscovery(mac)
		} else {
			m, _ = dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeInform), dhcpv4.WithClientIP(net.ParseIP("127.0.0.9")))
		}
		if _, err := c.Write(m.ToBytes()); err != nil {
			t.Fatal(err)
		}
	}
	// Let the workers drain what the kernel queued (it drops the rest when
	// the socket buffer fills), then stop sampling.
	last := -1.0
	for range 100 {
		time.Sleep(50 * time.Millisecond)
		n := svc.packets.With("DISCOVER").Value() + svc.packets.With("INFORM").Value() + svc.dropped.Value()
		if n == last {
			break
		}
		last = n
	}
	close(stop)
	wg.Wait()
	handled := svc.packets.With("DISCOVER").Value() + svc.packets.With("INFORM").Value()
	t.Logf("goroutines: before %d, serving %d, peak under flood %d; handled %.0f, dropped %.0f of %d", before, started, peak, handled, svc.dropped.Value(), sent)
	if handled == 0 {
		t.Fatal("no request was handled")
	}
	if limit := started + 3; peak > limit {
		t.Errorf("goroutines peaked at %d under a flood, want at most %d (workers are fixed)", peak, limit)
	}
	if err := svc.Health(context.Background()); err != nil {
		t.Errorf("unhealthy after flood: %v", err)
	}
}

// TestSecondServerOnPortIsAnError: a second amtd on the same address must not
// silently share the port (no SO_REUSEPORT).
func TestSecondServerOnPortIsAnError(t *testing.T) {
	lis := netsvc.NewListeners(nil)
	defer lis.Close()
	_, addr := startLoopback(t, lis, nil)

	other := netsvc.NewListeners(nil)
	defer other.Close()
	svc2, err := New(loopbackConfig(addr.String()), netsvc.Deps{Listeners: other})
	if err != nil {
		t.Fatal(err)
	}
	err = svc2.Start(context.Background())
	if err == nil {
		svc2.Close(context.Background())
		t.Fatal("second server started on a port already served")
	}
	if !strings.Contains(err.Error(), "address in use") || !strings.Contains(err.Error(), addr.String()) {
		t.Errorf("error %q does not say the address is in use", err)
	}
}

// TestLeaseExpiryRemovesNames runs the sweeper on a fake clock
// (testing/synctest): no sleeping in real time.
func TestLeaseExpiryRemovesNames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hosts := netsvc.NewHosts()
		ls := NewMemoryLeases()
		svc, err := New(testConfig(), netsvc.Deps{Hosts: hosts}, WithLeaseStore(ls))
		if err != nil {
			t.Fatal(err)
		}
		dora(t, svc.srv, macA, direct, dhcpv4.WithOption(dhcpv4.OptHostName("short")))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go svc.sweep(ctx, sweepEvery)

		time.Sleep(10*time.Minute - time.Second)
		synctest.Wait()
		if hosts.Len() != 1 {
			t.Fatal("name gone before the lease ended")
		}
		time.Sleep(time.Second + sweepEvery)
		synctest.Wait()
		if hosts.Len() != 0 {
			t.Errorf("name still in DNS after expiry: %v", hosts.Lookup("short.amt.example.com"))
		}
		if all, _ := ls.All(ctx); len(all) != 0 {
			t.Errorf("expired lease still stored: %+v", all)
		}
		if st := svc.Status(); !strings.HasPrefix(st, "0 leases") {
			t.Errorf("Status() = %q", st)
		}
	})
}

func TestReloadKeepsLeases(t *testing.T) {
	svc, err := New(testConfig(), netsvc.Deps{Hosts: netsvc.NewHosts()})
	if err != nil {
		t.Fatal(err)
	}
	ack := dora(t, svc.srv, macA, direct)

	bad := testConfig()
	bad.DHCPPools = nil
	if err := svc.Reload(context.Background(), bad); err == nil {
		t.Fatal("Reload accepted a configuration without pools")
	}

	cfg := testConfig()
	cfg.DHCPPools[0].Domain = "new.example.com"
	cfg.DHCPPools[0].DNS = []netip.Addr{netip.MustParseAddr("10.77.0.53")}
	if err := svc.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	renew, _ := dhcpv4.New(dhcpv4.WithHwAddr(macA), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithClientIP(ack.YourIPAddr))
	o := svc.srv.handle(context.Background(), renew, direct)
	if o == nil || o.resp.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("renewal after reload: %v", o)
	}
	if o.resp.DomainName() != "new.example.com" || !o.resp.DNS()[0].Equal(net.ParseIP("10.77.0.53")) {
		t.Errorf("after reload: option 15 %q, option 6 %v", o.resp.DomainName(), o.resp.DNS())
	}
	// The address is still the client's: nobody else is offered it.
	if got := addrOf(dora(t, svc.srv, macB, direct).YourIPAddr); got == addrOf(ack.YourIPAddr) {
		t.Error("lease lost on reload")
	}
	cfg.DHCP.Listen = "0.0.0.0:6767"
	if err := svc.Reload(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Errorf("Listen change: err = %v, want a restart hint", err)
	}
}
