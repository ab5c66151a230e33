package dhcppeers

import (
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"

	"amtd/daemon/config"
	"amtd/netsvc"
	"amtd/tests/netns"
)

// Benchmark topology: one /16 link, the server at 10.77.0.1, the load
// generator at 10.77.0.2, and the same 2048-address pool for both servers.
const (
	benchPoolStart = "10.77.1.0"
	benchPoolEnd   = "10.77.8.255"
	benchClients   = 1024 // distinct MACs, half the pool: no exhaustion
	benchInFlight  = 16   // concurrent exchanges
)

// BenchmarkDORA measures full DISCOVER/OFFER/REQUEST/ACK exchanges per
// second against amtd's DHCP and against dnsmasq (Debian's dnsmasq-base) on
// the same veth topology and pool, in the same run. Both persist leases
// (amtd in its SQLite store, dnsmasq in its lease file); dnsmasq's ping check
// is off since amtd does none.
func BenchmarkDORA(b *testing.B) {
	netns.RequireRoot(b)
	b.Run("amtd", func(b *testing.B) {
		srv, cli := benchLink(b)
		cfg := &config.Config{
			Site: config.Site{Domains: []string{domain}, Addresses: []netip.Addr{amtdAddr}},
			DHCP: config.DHCP{Enable: true, Listen: "0.0.0.0:67", LeaseTime: 10 * time.Minute, Authoritative: true, UpdateDNS: true},
			DHCPPools: []config.DHCPPool{{Subnet: netip.MustParsePrefix("10.77.0.0/16"),
				Ranges: []config.AddrRange{{Start: netip.MustParseAddr(benchPoolStart), End: netip.MustParseAddr(benchPoolEnd)}}}},
		}
		startBenchServer(b, srv, cfg)
		runDORA(b, cli)
	})
	b.Run("dnsmasq", func(b *testing.B) {
		bin := netns.RequireCommand(b, "dnsmasq", "dnsmasq-base")
		srv, cli := benchLink(b)
		dir := b.TempDir()
		p := srv.Start(bin, "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--port=0",
			"--bind-interfaces", "--interface=eth0", "--user=root", "--group=root", "--pid-file=", "--log-facility=-",
			"--dhcp-range="+benchPoolStart+","+benchPoolEnd+",255.255.0.0,10m", "--dhcp-authoritative", "--no-ping",
			"--dhcp-lease-max=5000", "--quiet-dhcp", "--dhcp-leasefile="+filepath.Join(dir, "leases"),
			"--domain="+domain, "--dhcp-option=option:dns-server,"+amtdAddr.String())
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(p.Output(), "DHCP, IP range") {
			if time.Now().After(deadline) || p.Exited() {
				b.Fatalf("dnsmasq did not start:\n%s", p.Output())
			}
			time.Sleep(20 * time.Millisecond)
		}
		runDORA(b, cli)
	})
}

func benchLink(b *testing.B) (srv, cli *netns.NS) {
	srv = netns.New(b, "dbs")
	cli = netns.New(b, "dbc")
	netns.Link(b, srv, "eth0", amtdAddr.String()+"/16", cli, "eth0", "10.77.0.2/16")
	return srv, cli
}

// startBenchServer is startServer for a *testing.B.
func startBenchServer(b *testing.B, ns *netns.NS, cfg *config.Config) {
	st := openStoreTB(b, b.TempDir())
	lis := netsvc.NewListeners(nil)
	svc, err := newService(cfg, st, lis)
	if err != nil {
		b.Fatal(err)
	}
	if err := ns.Do(func() error { return svc.Start(b.Context()) }); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { svc.Close(b.Context()); lis.Close(); st.Close() })
}

// loadgen sends DHCP from port 68 in the client namespace and hands each
// reply to the exchange waiting on its transaction ID.
type loadgen struct {
	conn    *net.UDPConn
	mu      sync.Mutex
	waiting map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4
}

func newLoadgen(b *testing.B, ns *netns.NS) *loadgen {
	g := &loadgen{waiting: map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4{}}
	err := ns.Do(func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: dhcpv4.ClientPort})
		if err != nil {
			return err
		}
		rc, _ := c.SyscallConn()
		var serr error
		_ = rc.Control(func(fd uintptr) {
			serr = errors.Join(unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1),
				unix.BindToDevice(int(fd), "eth0"),
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20))
		})
		if serr != nil {
			c.Close()
			return serr
		}
		g.conn = c
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	go g.read()
	b.Cleanup(func() { g.conn.Close() })
	return g
}

func (g *loadgen) read() {
	buf := make([]byte, 1500)
	for {
		n, err := g.conn.Read(buf)
		if err != nil {
			return
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || m.OpCode != dhcpv4.OpcodeBootReply {
			continue
		}
		g.mu.Lock()
		ch := g.waiting[m.TransactionID]
		g.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m:
			default:
			}
		}
	}
}

var bcast = &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ServerPort}

// exchange sends m and waits for a reply of type want with the same xid.
func (g *loadgen) exchange(m *dhcpv4.DHCPv4, want dhcpv4.MessageType, ch chan *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, error) {
	if _, err := g.conn.WriteToUDP(m.ToBytes(), bcast); err != nil {
		return nil, err
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		select {
		case r := <-ch:
			if r.MessageType() == want {
				return r, nil
			}
		case <-t.C:
			return nil, errors.New("timeout")
		}
	}
}

// dora runs one full exchange for mac.
func (g *loadgen) dora(mac net.HardwareAddr) error {
	d, err := dhcpv4.NewDiscovery(mac, dhcpv4.WithBroadcast(true))
	if err != nil {
		return err
	}
	ch := make(chan *dhcpv4.DHCPv4, 4)
	g.mu.Lock()
	g.waiting[d.TransactionID] = ch
	g.mu.Unlock()
	defer func() { g.mu.Lock(); delete(g.waiting, d.TransactionID); g.mu.Unlock() }()
	off, err := g.exchange(d, dhcpv4.MessageTypeOffer, ch)
	if err != nil {
		return err
	}
	req, err := dhcpv4.NewRequestFromOffer(off, dhcpv4.WithBroadcast(true))
	if err != nil {
		return err
	}
	_, err = g.exchange(req, dhcpv4.MessageTypeAck, ch)
	return err
}

func runDORA(b *testing.B, cli *netns.NS) {
	g := newLoadgen(b, cli)
	// One exchange before timing: the server is up and the path works.
	if err := g.dora(net.HardwareAddr{2, 0xbe, 0, 0, 0xff, 0xff}); err != nil {
		b.Fatalf("first DORA: %v", err)
	}
	var next, failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range benchInFlight {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				c := i % benchClients
				if g.dora(net.HardwareAddr{2, 0xbe, 0, 0, byte(c >> 8), byte(c)}) != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	ok := float64(int64(b.N) - failed.Load())
	b.ReportMetric(ok/elapsed.Seconds(), "DORA/s")
	b.ReportMetric(float64(failed.Load()), "timeouts")
}
