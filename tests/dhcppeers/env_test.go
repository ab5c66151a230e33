// Package dhcppeers runs amtd's DHCP server against real clients (ISC
// dhclient, busybox udhcpc) and through a relay, each in its own network
// namespace joined by veth pairs (see tests/netns). The server runs in-process
// with its socket opened inside the server's namespace.
package dhcppeers

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"amtd/daemon/config"
	"amtd/netsvc"
	"amtd/netsvc/dhcp"
	"amtd/store"
	"amtd/tests/netns"
)

const domain = "amt.example.com"

var amtdAddr = netip.MustParseAddr("10.77.0.1")

func baseConfig() *config.Config {
	return &config.Config{
		Site: config.Site{Domains: []string{domain}, Addresses: []netip.Addr{amtdAddr}},
		DHCP: config.DHCP{Enable: true, Listen: "0.0.0.0:67", LeaseTime: 10 * time.Minute, Authoritative: true, UpdateDNS: true},
		DHCPPools: []config.DHCPPool{
			{Subnet: netip.MustParsePrefix("10.77.0.0/24"),
				Ranges:  []config.AddrRange{{Start: netip.MustParseAddr("10.77.0.100"), End: netip.MustParseAddr("10.77.0.199")}},
				Routers: []netip.Addr{amtdAddr}},
			{Subnet: netip.MustParsePrefix("10.78.0.0/24"),
				Ranges:  []config.AddrRange{{Start: netip.MustParseAddr("10.78.0.50"), End: netip.MustParseAddr("10.78.0.99")}},
				Routers: []netip.Addr{netip.MustParseAddr("10.78.0.1")},
				Domain:  "branch." + domain},
		},
	}
}

// lockedBuffer collects the server's log, shown when a test fails.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// server is an amtd DHCP service running in a namespace.
type server struct {
	svc   *dhcp.Service
	hosts *netsvc.Hosts
	log   *lockedBuffer
	stop  func()
}

// openStore opens (creating on first use) the real SQLite store in dir.
func openStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	ctx := context.Background()
	key := filepath.Join(dir, "master.key")
	opts := store.Options{Path: filepath.Join(dir, "amtd.db"), KeyFile: key, BackupDir: filepath.Join(dir, "backup")}
	if _, err := os.Stat(key); err != nil {
		if err := store.GenerateKeyFile(key); err != nil {
			t.Fatal(err)
		}
		st, err := store.Init(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st, err := store.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// startServer starts amtd's DHCP in ns with a store in storeDir.
func startServer(t *testing.T, ns *netns.NS, cfg *config.Config, storeDir string, hosts *netsvc.Hosts) *server {
	t.Helper()
	st := openStore(t, storeDir)
	logs := &lockedBuffer{}
	lis := netsvc.NewListeners(nil)
	svc, err := dhcp.New(cfg, netsvc.Deps{
		Log:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Store:     st,
		Now:       time.Now,
		Listeners: lis,
		Hosts:     hosts,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Do(func() error { return svc.Start(context.Background()) }); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	s := &server{svc: svc, hosts: hosts, log: logs}
	s.stop = func() {
		once.Do(func() {
			svc.Close(context.Background())
			lis.Close()
			st.Close()
		})
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("amtd dhcp log:\n%s", logs.String())
		}
	})
	return s
}

// directLink makes a server namespace (10.77.0.1/24 on eth0) and a client
// namespace whose eth0 faces it.
func directLink(t *testing.T) (srv, cli *netns.NS) {
	srv = netns.New(t, "dhs")
	cli = netns.New(t, "dhc")
	netns.Link(t, srv, "eth0", amtdAddr.String()+"/24", cli, "eth0", "")
	return srv, cli
}

// events reads the KEY=VALUE lines the client scripts append to a file.
func events(path string) []map[string]string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []map[string]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := map[string]string{}
		for _, kv := range strings.Fields(sc.Text()) {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
		out = append(out, m)
	}
	return out
}

// waitEvent polls path until an event with reason in reasons appears after
// the first skip events, and returns it.
func waitEvent(t *testing.T, path string, skip int, timeout time.Duration, output func() string, reasons ...string) (map[string]string, int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ev := events(path)
		for i := skip; i < len(ev); i++ {
			for _, r := range reasons {
				if ev[i]["reason"] == r {
					return ev[i], i + 1
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %v event within %s; events: %v\nclient output:\n%s", reasons, timeout, events(path), output())
	return nil, 0
}

// dhclient runs ISC dhclient in ns with its own lease file, pid file and a
// script that configures the address and records what it received.
type dhclient struct {
	ns                       *netns.NS
	bin, dir, conf, out, ifc string
	proc                     *netns.Proc
}

const dhclientScript = `#!/bin/sh
case "$reason" in
BOUND|RENEW|REBIND|REBOOT)
	ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
EXPIRE|FAIL|RELEASE|STOP)
	[ -n "$old_ip_address" ] && ip addr del "$old_ip_address/$old_subnet_mask" dev "$interface" ;;
esac
echo "reason=$reason ip=$new_ip_address mask=$new_subnet_mask domain=$new_domain_name dns=$(echo $new_domain_name_servers | tr ' ' ,) lease=$new_dhcp_lease_time server=$new_dhcp_server_identifier" >> %q
exit 0
`

func newDhclient(t *testing.T, ns *netns.NS, ifc, conf string) *dhclient {
	t.Helper()
	bin := netns.RequireCommand(t, "dhclient", "isc-dhcp-client")
	dir := t.TempDir()
	d := &dhclient{ns: ns, bin: bin, dir: dir, ifc: ifc, conf: filepath.Join(dir, "dhclient.conf"), out: filepath.Join(dir, "events")}
	must(t, os.WriteFile(filepath.Join(dir, "script"), fmt.Appendf(nil, dhclientScript, d.out), 0o755))
	must(t, os.WriteFile(d.conf, []byte(conf), 0o644))
	return d
}

func (d *dhclient) args(extra ...string) []string {
	return append([]string{"-d", "-v", "-cf", d.conf, "-lf", filepath.Join(d.dir, "leases"),
		"-pf", filepath.Join(d.dir, "pid"), "-sf", filepath.Join(d.dir, "script")}, append(extra, d.ifc)...)
}

// start runs dhclient in the foreground (it keeps renewing until stopped).
func (d *dhclient) start() { d.proc = d.ns.Start(d.bin, d.args("-1")...) }

func (d *dhclient) output() string {
	if d.proc == nil {
		return ""
	}
	return d.proc.Output()
}

// release stops the running dhclient and sends a DHCPRELEASE (dhclient -r).
func (d *dhclient) release(t *testing.T) {
	t.Helper()
	d.proc.Stop()
	out, err := d.ns.Command(d.bin, d.args("-r")...).CombinedOutput()
	if err != nil {
		t.Fatalf("dhclient -r: %v: %s", err, out)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// leaseOf returns the server's lease for ip, if any.
func leaseOf(s *server, ip netip.Addr) (dhcp.Lease, bool) {
	for _, l := range s.svc.Leases() {
		if l.IP == ip {
			return l, true
		}
	}
	return dhcp.Lease{}, false
}

func configReservation(mac net.HardwareAddr, ip, host string) config.DHCPReservation {
	return config.DHCPReservation{MAC: [6]byte(mac), Address: netip.MustParseAddr(ip), Hostname: host}
}

// openStoreTB is openStore for benchmarks.
func openStoreTB(tb testing.TB, dir string) *store.Store {
	tb.Helper()
	key := filepath.Join(dir, "master.key")
	if err := store.GenerateKeyFile(key); err != nil {
		tb.Fatal(err)
	}
	st, err := store.Init(context.Background(), store.Options{Path: filepath.Join(dir, "amtd.db"), KeyFile: key, BackupDir: filepath.Join(dir, "backup")})
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

func newService(cfg *config.Config, st *store.Store, lis *netsvc.Listeners) (*dhcp.Service, error) {
	return dhcp.New(cfg, netsvc.Deps{Log: slog.New(slog.DiscardHandler), Store: st, Now: time.Now, Listeners: lis, Hosts: netsvc.NewHosts()})
}
