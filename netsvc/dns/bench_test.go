package dns

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// BenchmarkDNSvsDnsmasq measures queries per second for ProvisionServer and
// lease names with dnsperf, against amtd's DNS service and against dnsmasq
// serving the same names from a hosts file, same query file, same duration,
// in the same run. Goal: at least dnsmasq's rate.
//
// Rate limiting is off for amtd here (dnsperf is one source; dnsmasq has
// no RRL), and the cache is irrelevant: every name is authoritative.
func BenchmarkDNSvsDnsmasq(b *testing.B) {
	dnsperf, err := exec.LookPath("dnsperf")
	if err != nil {
		b.Fatal("dnsperf not found: install the Debian package dnsperf (scripts/deps.sh does); this benchmark compares amtd with dnsmasq through it")
	}
	dnsmasq := "/usr/sbin/dnsmasq"
	if _, err := os.Stat(dnsmasq); err != nil {
		if dnsmasq, err = exec.LookPath("dnsmasq"); err != nil {
			b.Fatal("dnsmasq not found: install the Debian package dnsmasq-base (scripts/deps.sh does)")
		}
	}
	const leases = 500
	dir := b.TempDir()
	var hosts, queries strings.Builder
	cfg := baseConfig()
	cfg.DNS.RateLimit = 0
	h := startService(b, cfg, nil)
	fmt.Fprintf(&hosts, "127.0.0.10 ProvisionServer.site.test\n")
	for i := range leases {
		name := fmt.Sprintf("amt-%03d.site.test", i)
		a := netip.AddrFrom4([4]byte{10, 20, byte(30 + i/250), byte(i%250 + 1)})
		h.hosts.Set(name, a)
		fmt.Fprintf(&hosts, "%s %s\n", a, name)
		fmt.Fprintf(&queries, "%s A\n", name)
		// AMT looks for ProvisionServer as often as for anything else.
		fmt.Fprintf(&queries, "ProvisionServer.site.test A\n")
	}
	hostsFile := filepath.Join(dir, "hosts")
	queryFile := filepath.Join(dir, "queries")
	if err := os.WriteFile(hostsFile, []byte(hosts.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(queryFile, []byte(queries.String()), 0o644); err != nil {
		b.Fatal(err)
	}

	mport := freePort(b, "127.0.0.3")
	args := []string{"--keep-in-foreground", "--no-resolv", "--no-hosts", "--addn-hosts=" + hostsFile,
		fmt.Sprintf("--port=%d", mport), "--listen-address=127.0.0.3", "--bind-interfaces", "--conf-file=/dev/null",
		"--pid-file=", "--cache-size=1000"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	cmd := exec.Command(dnsmasq, args...)
	out := &logBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting dnsmasq: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	b.Cleanup(func() {
		syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		<-exited
	})
	// Probe without dig: until dnsmasq has bound, dig fails on "connection
	// refused", which digAt treats as fatal.
	probe := new(dns.Msg).SetQuestion("amt-001.site.test.", dns.TypeA)
	client := &dns.Client{Timeout: time.Second}
	eventually(b, 10*time.Second, "dnsmasq to answer", func() bool {
		r, _, err := client.Exchange(probe, fmt.Sprintf("127.0.0.3:%d", mport))
		return err == nil && len(r.Answer) == 1
	})
	if got := answers(h.dig(b, "amt-001.site.test", "A")); len(got) != 1 {
		b.Fatalf("amtd does not answer the benchmark names: %q", got)
	}

	run := func(server string, port int) float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, dnsperf, "-s", server, "-p", strconv.Itoa(port), "-d", queryFile,
			"-l", "5", "-c", "4", "-T", "2", "-q", "200").CombinedOutput()
		if err != nil {
			b.Fatalf("dnsperf against %s:%d: %v\n%s", server, port, err, out)
		}
		m := regexp.MustCompile(`Queries per second:\s+([0-9.]+)`).FindSubmatch(out)
		if m == nil {
			b.Fatalf("no 'Queries per second' in dnsperf output:\n%s", out)
		}
		if lost := regexp.MustCompile(`Queries lost:\s+(\d+)`).FindSubmatch(out); lost != nil && string(lost[1]) != "0" {
			b.Logf("dnsperf against %s:%d lost %s queries", server, port, lost[1])
		}
		qps, _ := strconv.ParseFloat(string(m[1]), 64)
		return qps
	}
	var amtd, peer float64
	b.ResetTimer()
	for range b.N {
		amtd += run("127.0.0.1", h.port)
		peer += run("127.0.0.3", mport)
	}
	b.StopTimer()
	b.ReportMetric(amtd/float64(b.N), "amtd-qps")
	b.ReportMetric(peer/float64(b.N), "dnsmasq-qps")
	b.ReportMetric(amtd/peer, "amtd/dnsmasq")
}
