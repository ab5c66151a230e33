package main

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amtd/daemon/config"
	"amtd/netsvc"
	"amtd/netsvc/dhcp"
	"amtd/tests/netns"
)

// The appliance runs check-network at 10.77.0.50 on a link whose DHCP and
// DNS server is 10.77.0.1 (dnsmasq, or amtd's own DHCP for the good case).
const checkConf = `[Site]
Domain=amt.example.com
Address=10.77.0.50

[DHCP]
Enable=no
`

func checkNetworkTopology(t *testing.T) (site, appliance *netns.NS, conf string) {
	netns.RequireRoot(t)
	site = netns.New(t, "cns")
	appliance = netns.New(t, "cna")
	netns.Link(t, site, "eth0", "10.77.0.1/24", appliance, "eth0", "10.77.0.50/24")
	conf = filepath.Join(t.TempDir(), "amtd.conf")
	if err := os.WriteFile(conf, []byte(checkConf), 0o644); err != nil {
		t.Fatal(err)
	}
	return site, appliance, conf
}

// dnsmasq starts dnsmasq in ns on 10.77.0.1 with extra options and waits
// until it serves.
func dnsmasq(t *testing.T, ns *netns.NS, extra ...string) *netns.Proc {
	t.Helper()
	bin := netns.RequireCommand(t, "dnsmasq", "dnsmasq-base")
	dir := t.TempDir()
	args := append([]string{"--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces",
		"--listen-address=10.77.0.1", "--user=root", "--group=root", "--pid-file=", "--log-facility=-",
		"--dhcp-leasefile=" + filepath.Join(dir, "leases")}, extra...)
	p := ns.Start(bin, args...)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.Output(), "started, version") {
		if time.Now().After(deadline) || p.Exited() {
			t.Fatalf("dnsmasq did not start:\n%s", p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

func runCheckNetwork(t *testing.T, ns *netns.NS, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	err := ns.Do(func() error {
		code, stdout, stderr = runCLI(t, append([]string{"check-network"}, args...)...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return code, stdout, stderr
}

// TestCheckNetworkReportsSiteDHCPProblems: the site's own DHCP (dnsmasq)
// serves a bad option 15 or none, and its DNS has no ProvisionServer; each is
// reported with a fix, exit 1.
func TestCheckNetworkReportsSiteDHCPProblems(t *testing.T) {
	tests := []struct {
		name   string
		domain []string // dnsmasq --dhcp-option for option 15
		want   []string
	}{
		{".local suffix", []string{"--dhcp-option=option:domain-name,corp.local"},
			[]string{`option 15 "corp.local", a .local suffix`, "serve the public domain", "ProvisionServer.corp.local does not resolve", "add an A record ProvisionServer.corp.local → 10.77.0.50"}},
		{"wrong suffix", []string{"--dhcp-option=option:domain-name,other.example.org"},
			[]string{`option 15 "other.example.org", which is not a [Site] Domain= of this appliance (amt.example.com)`, "set option 15 to amt.example.com"}},
		{"no option 15", nil,
			[]string{"sends no option 15", "configure option 15 = amt.example.com"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			site, appliance, conf := checkNetworkTopology(t)
			dnsmasq(t, site, append([]string{"--dhcp-range=10.77.0.100,10.77.0.199,255.255.255.0,2m", "--dhcp-authoritative",
				"--dhcp-option=option:dns-server,10.77.0.1"}, tc.domain...)...)
			code, out, errs := runCheckNetwork(t, appliance, "-c", conf, "--interface", "eth0", "--timeout", "3s")
			if code != exitFailure {
				t.Fatalf("exit %d, want 1; stdout:\n%s\nstderr:\n%s", code, out, errs)
			}
			for _, want := range append(tc.want, "PROBLEM: ", "fix: ") {
				if !strings.Contains(out, want) {
					t.Errorf("report lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// startAMTDHCP runs amtd's DHCP service as the site's DHCP in ns.
func startAMTDHCP(t *testing.T, ns *netns.NS) {
	t.Helper()
	cfg := &config.Config{
		Site: config.Site{Domains: []string{"amt.example.com"}, Addresses: []netip.Addr{netip.MustParseAddr("10.77.0.1")}},
		DHCP: config.DHCP{Enable: true, Listen: "0.0.0.0:67", LeaseTime: 10 * time.Minute, Authoritative: true, UpdateDNS: true},
		DHCPPools: []config.DHCPPool{{Subnet: netip.MustParsePrefix("10.77.0.0/24"),
			Ranges: []config.AddrRange{{Start: netip.MustParseAddr("10.77.0.100"), End: netip.MustParseAddr("10.77.0.199")}}}},
	}
	lis := netsvc.NewListeners(nil)
	svc, err := dhcp.New(cfg, netsvc.Deps{Listeners: lis, Hosts: netsvc.NewHosts(), Store: nil})
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Do(func() error { return svc.Start(context.Background()) }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(context.Background()); lis.Close() })
}

// TestCheckNetworkAgainstAMTDHCP: amtd's DHCP serves the right option 15 and
// the DNS it hands out resolves ProvisionServer to the appliance: exit 0. The
// same with a record pointing elsewhere: exit 1, "not to this appliance".
func TestCheckNetworkAgainstAMTDHCP(t *testing.T) {
	site, appliance, conf := checkNetworkTopology(t)
	startAMTDHCP(t, site)

	dns := dnsmasq(t, site, "--host-record=ProvisionServer.amt.example.com,10.77.0.50")
	code, out, errs := runCheckNetwork(t, appliance, "-c", conf, "--interface", "eth0", "--timeout", "3s", "--discover")
	if code != exitOK || !strings.Contains(out, "ok: ") || !strings.Contains(out, `option 15 "amt.example.com"`) {
		t.Fatalf("exit %d, want 0 and ok; stdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if !strings.Contains(out, "DHCP DISCOVER answered") {
		t.Errorf("--discover sent no DISCOVER or got no OFFER:\n%s", out)
	}
	code, out, _ = runCheckNetwork(t, appliance, "-c", conf, "--interface", "eth0", "--timeout", "3s", "--json")
	var rep dhcp.ProbeReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK || !rep.OK || len(rep.Lookups) != 1 || rep.Lookups[0].Answers[0] != "10.77.0.50" {
		t.Errorf("--json: exit %d, err %v, report %+v\n%s", code, err, rep, out)
	}
	dns.Stop()

	dnsmasq(t, site, "--host-record=ProvisionServer.amt.example.com,10.77.0.99")
	code, out, _ = runCheckNetwork(t, appliance, "-c", conf, "--interface", "eth0", "--timeout", "3s")
	if code != exitFailure || !strings.Contains(out, "resolves through 10.77.0.1 to 10.77.0.99, not to this appliance (10.77.0.50)") {
		t.Errorf("ProvisionServer elsewhere: exit %d\n%s", code, out)
	}
}

func TestCheckNetworkUsage(t *testing.T) {
	if code, _, _ := runCLI(t, "check-network", "--bogus"); code != exitUsage {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
	if code, _, errs := runCLI(t, "check-network", "-c", filepath.Join(t.TempDir(), "missing.conf")); code != exitUsage || !strings.Contains(errs, "missing.conf") {
		t.Errorf("missing config: exit %d, stderr %q", code, errs)
	}
	if code, out, _ := runCLI(t, "check-network", "-h"); code != exitOK || !strings.Contains(out, "--interface IF") {
		t.Errorf("-h: exit %d\n%s", code, out)
	}
}
