package dns

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"amtd/daemon/config"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }
func addr(s string) netip.Addr           { return netip.MustParseAddr(s) }
func mustRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

func TestLimiter(t *testing.T) {
	clk := newFakeClock()
	l := newLimiter(10, 10, 24, 56, clk.now)
	var got []verdict
	for range 14 {
		got = append(got, l.check(addr("192.0.2.1")))
	}
	want := []verdict{allow, allow, allow, allow, allow, allow, allow, allow, allow, allow, drop, slip, drop, slip}
	if !slices.Equal(got, want) {
		t.Fatalf("verdicts %v, want %v", got, want)
	}
	// Same /24, other address: same bucket. Other /24: its own.
	if v := l.check(addr("192.0.2.200")); v == allow {
		t.Fatal("a neighbour in the same /24 escaped the limit")
	}
	if v := l.check(addr("192.0.3.1")); v != allow {
		t.Fatal("another /24 was limited")
	}
	// IPv6 by /56.
	for range 10 {
		l.check(addr("2001:db8:0:1::1"))
	}
	if l.check(addr("2001:db8:0:ff::2")) == allow || l.check(addr("2001:db8:1::1")) != allow {
		t.Fatal("IPv6 clients not grouped by /56")
	}
	// Tokens come back at the rate.
	clk.add(300 * time.Millisecond)
	n := 0
	for l.check(addr("192.0.2.1")) == allow {
		n++
	}
	if n != 3 {
		t.Fatalf("%d answers after 300 ms at 10/s, want 3", n)
	}
	// The table is bounded.
	l.maxEntries = 100
	for i := range 1000 {
		l.check(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1}))
	}
	if l.len() > 100 {
		t.Fatalf("table grew to %d entries, cap 100", l.len())
	}
	if newLimiter(0, 0, 24, 56, clk.now).check(addr("192.0.2.1")) != allow {
		t.Fatal("rate 0 must not limit")
	}
}

func TestCache(t *testing.T) {
	clk := newFakeClock()
	c := newCache(3, clk.now)
	pos := new(dns.Msg)
	pos.SetQuestion("a.example.", dns.TypeA)
	pos.Answer = []dns.RR{mustRR(t, "a.example. 60 IN A 192.0.2.1"), mustRR(t, "a.example. 30 IN A 192.0.2.2")}
	key := cacheKey(pos.Question[0], false, false)
	c.put(key, pos)
	clk.add(10 * time.Second)
	m := c.get(cacheKey(dns.Question{Name: "A.Example.", Qtype: dns.TypeA, Qclass: dns.ClassINET}, false, false))
	if m == nil || m.Answer[0].Header().Ttl != 50 || m.Answer[1].Header().Ttl != 20 {
		t.Fatalf("cached answer %v: want TTLs counted down by 10 s", m)
	}
	clk.add(20 * time.Second) // the smallest TTL (30 s) is over
	if c.get(key) != nil {
		t.Fatal("answer served past its smallest TTL")
	}

	// RFC 2308: negative answers live for min(SOA TTL, SOA MINIMUM).
	neg := new(dns.Msg)
	neg.SetQuestion("b.example.", dns.TypeA)
	neg.Rcode = dns.RcodeNameError
	neg.Ns = []dns.RR{mustRR(t, "example. 3600 IN SOA ns.example. h.example. 1 2 3 4 45")}
	nkey := cacheKey(neg.Question[0], false, false)
	c.put(nkey, neg)
	clk.add(44 * time.Second)
	if c.get(nkey) == nil {
		t.Fatal("NXDOMAIN not cached for the SOA minimum")
	}
	clk.add(2 * time.Second)
	if c.get(nkey) != nil {
		t.Fatal("NXDOMAIN cached past the SOA minimum")
	}
	noSOA := new(dns.Msg)
	noSOA.SetQuestion("c.example.", dns.TypeA)
	noSOA.Rcode = dns.RcodeNameError
	c.put("c", noSOA)
	fail := new(dns.Msg)
	fail.SetQuestion("d.example.", dns.TypeA)
	fail.Rcode = dns.RcodeServerFailure
	c.put("d", fail)
	if c.get("c") != nil || c.get("d") != nil {
		t.Fatal("cached a negative answer without SOA, or a SERVFAIL")
	}
	// Bounded, least recently used evicted first.
	for i := range 5 {
		m := new(dns.Msg)
		m.SetQuestion(fmt.Sprintf("e%d.example.", i), dns.TypeA)
		m.Answer = []dns.RR{mustRR(t, fmt.Sprintf("e%d.example. 60 IN A 192.0.2.1", i))}
		c.put(fmt.Sprint(i), m)
	}
	if c.len() != 3 || c.get("0") != nil || c.get("4") == nil {
		t.Fatalf("cache holds %d entries; want the 3 most recent", c.len())
	}
}

func TestReverseZones(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"10.20.30.0/24", []string{"30.20.10.in-addr.arpa."}},
		{"10.20.28.0/22", []string{"28.20.10.in-addr.arpa.", "29.20.10.in-addr.arpa.", "30.20.10.in-addr.arpa.", "31.20.10.in-addr.arpa."}},
		{"10.0.0.0/16", []string{"0.10.in-addr.arpa."}},
		{"192.168.1.128/25", []string{"1.168.192.in-addr.arpa."}},
		{"10.0.0.0/8", []string{"10.in-addr.arpa."}},
		{"fd00:1:2:3::/64", []string{"3.0.0.0.2.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa."}},
	} {
		if got := reverseZones(netip.MustParsePrefix(tc.prefix)); !slices.Equal(got, tc.want) {
			t.Errorf("reverseZones(%s) = %v, want %v", tc.prefix, got, tc.want)
		}
	}
	if n := len(reverseZones(netip.MustParsePrefix("10.0.0.0/12"))); n != 16 {
		t.Errorf("/12: %d zones, want 16", n)
	}
	for _, tc := range []struct {
		name string
		want string
	}{
		{"7.30.20.10.in-addr.arpa.", "10.20.30.7"},
		{"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa.", "fd00:1:2:3::1"},
		{"30.20.10.in-addr.arpa.", ""},
		{"x.30.20.10.in-addr.arpa.", ""},
		{"300.30.20.10.in-addr.arpa.", ""},
		{"g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa.", ""},
	} {
		a, ok := parseReverse(tc.name)
		if got := ""; ok {
			got = a.String()
			if got != tc.want {
				t.Errorf("parseReverse(%s) = %s, want %s", tc.name, got, tc.want)
			}
		} else if tc.want != "" {
			t.Errorf("parseReverse(%s) failed, want %s", tc.name, tc.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*config.Config)
		want string
	}{
		{"no domain", func(c *config.Config) { c.Site.Domains = nil }, "[Site] Domain= is required"},
		{"bad domain", func(c *config.Config) { c.Site.Domains = []string{"bad..name"} }, "not a valid DNS name"},
		{"no address", func(c *config.Config) { c.Site.Addresses = nil }, "[Site] Address= is required"},
		{"record outside", func(c *config.Config) {
			c.DNSRecords = append(c.DNSRecords, config.DNSRecord{Line: 40, Name: "x.example.org.", Type: "A", Value: "192.0.2.1"})
		}, "line 40: [DNS] Record=x.example.org. is outside the zones"},
		{"bad type", func(c *config.Config) {
			c.DNSRecords = append(c.DNSRecords, config.DNSRecord{Line: 41, Name: "x.site.test.", Type: "MX", Value: "10 mx"})
		}, "line 41"},
		{"bad address", func(c *config.Config) {
			c.DNSRecords = append(c.DNSRecords, config.DNSRecord{Line: 42, Name: "x.site.test.", Type: "A", Value: "not-an-ip"})
		}, "line 42"},
		{"CNAME beside A", func(c *config.Config) {
			c.DNSRecords = append(c.DNSRecords, config.DNSRecord{Line: 43, Name: "www.site.test.", Type: "CNAME", Value: "other.site.test."})
		}, "a CNAME cannot stand beside"},
		{"upstream by name", func(c *config.Config) { c.DNS.Upstreams = []string{"resolver.example:53"} }, "Upstream=resolver.example:53"},
		{"bad listen", func(c *config.Config) { c.DNS.Listen = "localhost" }, "[DNS] Listen=localhost"},
		{"negative rate", func(c *config.Config) { c.DNS.RateLimit = -1 }, "RateLimit=-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig()
			tc.edit(cfg)
			if _, err := New(cfg, depsNoNet()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// UpdateKey= without the key in the store fails Start with the fix.
	st, _ := testStore(t)
	cfg := baseConfig()
	cfg.DNS.UpdateKeys = []string{"missing-key"}
	cfg.DNS.Listen = "127.0.0.1:0"
	deps := depsNoNet()
	deps.Store = st
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "amtd dns tsig add missing-key") {
		t.Fatalf("Start with a missing key: %v", err)
	}
}

// TestReload swaps the zone data in place: the same sockets answer the new
// records; an invalid configuration changes nothing.
func TestReload(t *testing.T) {
	h := startService(t, baseConfig(), nil)
	if s := digStatus(h.dig(t, "new.site.test", "A")); s != "NXDOMAIN" {
		t.Fatalf("before reload: %s", s)
	}
	cfg := baseConfig()
	cfg.DNS.Listen = h.addr
	cfg.DNSRecords = append(cfg.DNSRecords, config.DNSRecord{Name: "new.site.test.", Type: "A", Value: "127.0.0.30"})
	cfg.Site.Domains = append(cfg.Site.Domains, "third.test")
	if err := h.svc.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if got := answers(h.dig(t, "new.site.test", "A")); !sameSet(got, []string{"new.site.test. A 127.0.0.30"}) {
		t.Fatalf("after reload: %q", got)
	}
	if got := answers(h.dig(t, "ProvisionServer.third.test", "A")); len(got) != 1 {
		t.Fatalf("new domain not served after reload: %q", got)
	}
	bad := baseConfig()
	bad.DNS.Listen = h.addr
	bad.Site.Addresses = nil
	if err := h.svc.Reload(context.Background(), bad); err == nil {
		t.Fatal("invalid reload accepted")
	}
	if got := answers(h.dig(t, "new.site.test", "A")); len(got) != 1 {
		t.Fatalf("a failed reload changed the zone: %q", got)
	}
	if err := h.svc.Health(context.Background()); err != nil {
		t.Fatalf("health after reloads: %v", err)
	}
	if st := h.svc.Status(); !strings.Contains(st, "authoritative for 4 zone(s)") {
		t.Fatalf("status %q", st)
	}
}

// TestInZone: the allocation-free zone test agrees with dns.IsSubDomain.
func TestInZone(t *testing.T) {
	for _, tc := range []struct {
		zone, name string
		want       bool
	}{
		{"site.test.", "site.test.", true},
		{"site.test.", "SITE.Test.", true},
		{"site.test.", "amt-1.site.test.", true},
		{"site.test.", "a.b.Site.test.", true},
		{"site.test.", "xsite.test.", false},
		{"site.test.", "test.", false},
		{"site.test.", "site.test.example.", false},
		{"site.test.", `a\.site.test.`, false}, // one label "a.site"
		{"site.test.", `a\\.site.test.`, true}, // label "a\" then site.test
		{"site.test.", `a\\\.site.test.`, false},
		{"30.20.10.in-addr.arpa.", "7.30.20.10.in-addr.arpa.", true},
		{"30.20.10.in-addr.arpa.", "7.130.20.10.in-addr.arpa.", false},
		{".", "anything.example.", true},
	} {
		got := inZone(tc.zone, tc.name)
		if got != tc.want {
			t.Errorf("inZone(%q, %q) = %v, want %v", tc.zone, tc.name, got, tc.want)
		}
		if ref := dns.IsSubDomain(tc.zone, tc.name); ref != got {
			t.Errorf("inZone(%q, %q) = %v; dns.IsSubDomain says %v", tc.zone, tc.name, got, ref)
		}
	}
}
