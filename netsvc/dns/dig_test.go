package dns

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"amtd/daemon/config"
)

// TestDigAuthoritative asks the real dig for every kind of name the
// service is authoritative for.
func TestDigAuthoritative(t *testing.T) {
	h := startService(t, baseConfig(), nil)
	h.hosts.Set("amt-7.site.test", netip.MustParseAddr("10.20.30.7"))

	tests := []struct {
		name   string
		args   []string
		status string
		want   []string // answer lines, any order
		soa    bool     // SOA expected in authority
	}{
		{"provision A", []string{"ProvisionServer.site.test", "A"}, "NOERROR", []string{"ProvisionServer.site.test. A 127.0.0.10"}, false},
		{"provision AAAA", []string{"ProvisionServer.site.test", "AAAA"}, "NOERROR", []string{"ProvisionServer.site.test. AAAA fd00::10"}, false},
		{"provision lower case", []string{"provisionserver.site.test", "A"}, "NOERROR", []string{"provisionserver.site.test. A 127.0.0.10"}, false},
		{"provision odd case, second domain", []string{"PROVISIONSERVER.Corp.Example", "A"}, "NOERROR", []string{"PROVISIONSERVER.Corp.Example. A 127.0.0.10"}, false},
		{"provision in a pool's option-15 domain", []string{"Provisionserver.pool.test", "A"}, "NOERROR", []string{"Provisionserver.pool.test. A 127.0.0.10"}, false},
		{"single label", []string{"ProvisionServer", "A"}, "NOERROR", []string{"ProvisionServer. A 127.0.0.10"}, false},
		{"lease name from Hosts", []string{"AMT-7.site.test", "A"}, "NOERROR", []string{"AMT-7.site.test. A 10.20.30.7"}, false},
		{"lease PTR", []string{"-x", "10.20.30.7"}, "NOERROR", []string{"7.30.20.10.in-addr.arpa. PTR amt-7.site.test."}, false},
		{"appliance PTR", []string{"-x", "127.0.0.10"}, "NOERROR", []string{"10.0.0.127.in-addr.arpa. PTR amtd.site.test."}, false},
		{"appliance name", []string{"amtd.site.test", "A"}, "NOERROR", []string{"amtd.site.test. A 127.0.0.10"}, false},
		{"static A", []string{"www.site.test", "A"}, "NOERROR", []string{"www.site.test. A 127.0.0.20"}, false},
		{"static TXT", []string{"www.site.test", "TXT"}, "NOERROR", []string{`www.site.test. TXT "hello world"`}, false},
		{"static CNAME followed", []string{"alias.site.test", "A"}, "NOERROR", []string{"alias.site.test. CNAME www.site.test.", "www.site.test. A 127.0.0.20"}, false},
		{"SOA", []string{"site.test", "SOA"}, "NOERROR", nil, false},
		{"NS", []string{"site.test", "NS"}, "NOERROR", []string{"site.test. NS amtd.site.test."}, false},
		{"unknown name", []string{"nope.site.test", "A"}, "NXDOMAIN", nil, true},
		{"unknown PTR in a pool subnet", []string{"-x", "10.20.30.99"}, "NXDOMAIN", nil, true},
		{"no data for type", []string{"www.site.test", "AAAA"}, "NOERROR", nil, true},
		{"empty non-terminal", []string{"sub.site.test", "A"}, "NOERROR", nil, true},
		{"not ours, no upstream", []string{"example.org", "A"}, "REFUSED", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := h.dig(t, tc.args...)
			if got := digStatus(out); got != tc.status {
				t.Fatalf("status %q, want %q\n%s", got, tc.status, out)
			}
			got := answers(out)
			if tc.name == "SOA" {
				if len(got) != 1 || !strings.HasPrefix(got[0], "site.test. SOA amtd.site.test. hostmaster.site.test.") {
					t.Fatalf("SOA answer %q\n%s", got, out)
				}
			} else if !sameSet(got, tc.want) {
				t.Fatalf("answers %q, want %q\n%s", got, tc.want, out)
			}
			if tc.status != "REFUSED" && !strings.Contains(digFlags(out), "aa") {
				t.Fatalf("answer is not authoritative: flags %q", digFlags(out))
			}
			hasSOA := strings.Contains(out, ";; AUTHORITY SECTION:") && strings.Contains(out, "\tSOA\t")
			if tc.soa && !hasSOA {
				t.Fatalf("no SOA in the authority section\n%s", out)
			}
		})
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "ProvisionServer query") || !strings.Contains(logs, "src=127.0.0.1") {
		t.Fatalf("ProvisionServer queries were not logged with their source:\n%s", logs)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestDigSingleLabelOff: with SingleLabel= off the bare name is not ours.
func TestDigSingleLabelOff(t *testing.T) {
	cfg := baseConfig()
	cfg.DNS.SingleLabel = false
	h := startService(t, cfg, nil)
	out := h.dig(t, "ProvisionServer", "A")
	if digStatus(out) != "REFUSED" {
		t.Fatalf("single label answered while off:\n%s", out)
	}
}

// upstream is a second DNS server on loopback that counts what it is asked.
type upstream struct {
	addr  string
	asked atomic.Int64
	srv   *dns.Server
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, r *dns.Msg) {
		u.asked.Add(1)
		m := new(dns.Msg).SetReply(r)
		m.RecursionAvailable = true
		q := r.Question[0]
		switch strings.ToLower(q.Name) {
		case "example.org.":
			rr, _ := dns.NewRR("example.org. 120 IN A 192.0.2.80")
			m.Answer = append(m.Answer, rr)
		case "short.example.org.":
			rr, _ := dns.NewRR("short.example.org. 1 IN A 192.0.2.81")
			m.Answer = append(m.Answer, rr)
		default:
			m.Rcode = dns.RcodeNameError
			soa, _ := dns.NewRR("example.org. 3600 IN SOA ns.example.org. h.example.org. 1 3600 600 86400 30")
			m.Ns = append(m.Ns, soa)
		}
		w.WriteMsg(m)
	})
	uf, _, port := boundPair(t, "127.0.0.2")
	pc, err := netFilePacketConn(uf)
	if err != nil {
		t.Fatal(err)
	}
	u.addr = fmt.Sprintf("127.0.0.2:%d", port)
	started := make(chan struct{})
	u.srv = &dns.Server{PacketConn: pc, Handler: mux, NotifyStartedFunc: func() { close(started) }}
	go u.srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { u.srv.Shutdown() })
	return u
}

// TestDigForwardAndCache: names outside the zones go to the upstream; a
// second ask comes from the cache, TTL counted down; NXDOMAIN is cached for
// the SOA minimum (RFC 2308); an expired entry is asked again.
func TestDigForwardAndCache(t *testing.T) {
	u := startUpstream(t)
	cfg := baseConfig()
	cfg.DNS.Upstreams = []string{u.addr}
	h := startService(t, cfg, nil)

	out := h.dig(t, "example.org", "A")
	if got := answers(out); !sameSet(got, []string{"example.org. A 192.0.2.80"}) || digStatus(out) != "NOERROR" {
		t.Fatalf("forwarded answer %q\n%s", got, out)
	}
	if !strings.Contains(digFlags(out), "ra") || strings.Contains(digFlags(out), "aa") {
		t.Fatalf("forwarded answer flags %q: want ra, not aa", digFlags(out))
	}
	if u.asked.Load() != 1 {
		t.Fatalf("upstream asked %d times, want 1", u.asked.Load())
	}
	out = h.dig(t, "EXAMPLE.org", "A")
	if got := answers(out); len(got) != 1 || !strings.HasSuffix(got[0], "192.0.2.80") {
		t.Fatalf("cached answer %q\n%s", got, out)
	}
	if u.asked.Load() != 1 {
		t.Fatalf("second ask went upstream (asked %d times): no cache hit", u.asked.Load())
	}
	for range 2 {
		out = h.dig(t, "missing.example.org", "A")
		if digStatus(out) != "NXDOMAIN" {
			t.Fatalf("negative answer not passed on:\n%s", out)
		}
	}
	if u.asked.Load() != 2 {
		t.Fatalf("NXDOMAIN not cached: upstream asked %d times, want 2", u.asked.Load())
	}
	h.dig(t, "short.example.org", "A")
	time.Sleep(1100 * time.Millisecond) // its TTL is 1 s
	h.dig(t, "short.example.org", "A")
	if u.asked.Load() != 4 {
		t.Fatalf("expired entry served from cache: upstream asked %d times, want 4", u.asked.Load())
	}
}

// TestDigTruncationAndTCP: a large answer comes truncated over UDP within
// the EDNS0 size, dig retries over TCP and gets all of it.
func TestDigTruncationAndTCP(t *testing.T) {
	cfg := baseConfig()
	for i := range 120 {
		cfg.DNSRecords = append(cfg.DNSRecords, config.DNSRecord{Name: "big.site.test.", Type: "A", Value: fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)})
		cfg.DNSRecords = append(cfg.DNSRecords, config.DNSRecord{Name: "bigtxt.site.test.", Type: "TXT", Value: fmt.Sprintf("record %03d %s", i, strings.Repeat("x", 40))})
	}
	h := startService(t, cfg, nil)

	out := h.dig(t, "+ignore", "+bufsize=4096", "big.site.test", "A")
	if !strings.Contains(digFlags(out), "tc") {
		t.Fatalf("120 A records over UDP were not truncated:\n%s", out)
	}
	if !strings.Contains(out, "udp: 1232") {
		t.Fatalf("EDNS0 size not capped at 1232:\n%s", out)
	}
	out = h.dig(t, "+ignore", "+noedns", "big.site.test", "A")
	if !strings.Contains(digFlags(out), "tc") {
		t.Fatalf("no TC without EDNS0:\n%s", out)
	}
	for _, name := range []string{"big.site.test", "bigtxt.site.test"} {
		typ := "A"
		if name == "bigtxt.site.test" {
			typ = "TXT"
		}
		out = h.dig(t, name, typ) // dig retries over TCP on TC
		if got := answers(out); len(got) != 120 {
			t.Fatalf("%s over TCP fallback: %d answers, want 120\n%s", name, len(got), out)
		}
	}
	out = h.dig(t, "+tcp", "big.site.test", "A")
	if got := answers(out); len(got) != 120 {
		t.Fatalf("over TCP: %d answers, want 120", len(got))
	}
	// A small answer fits in the client's buffer without TC.
	out = h.dig(t, "+bufsize=512", "ProvisionServer.site.test", "A")
	if strings.Contains(digFlags(out), "tc") || len(answers(out)) != 1 {
		t.Fatalf("small answer truncated:\n%s", out)
	}
	// An unknown EDNS version gets BADVERS (RFC 6891 §6.1.3).
	out = h.dig(t, "+edns=1", "+noednsnegotiation", "ProvisionServer.site.test", "A")
	if digStatus(out) != "BADVERS" {
		t.Fatalf("EDNS version 1: status %q, want BADVERS\n%s", digStatus(out), out)
	}
}

// TestRateLimit: a flood from one /24 is cut to the configured rate, with
// every second excess reply slipped as TC=1; another /24 still gets answers,
// and so does TCP from the flooded one.
func TestRateLimit(t *testing.T) {
	cfg := baseConfig()
	cfg.DNS.RateLimit = 20
	h := startService(t, cfg, nil)

	const flood = 300
	ok, tc, elapsed := floodUDP(t, "127.0.0.1", h.addr, "ProvisionServer.site.test.", flood)
	// Every full answer was allowed by a check made after the first query
	// left and before its reply came back: tokens came back at 20/s over
	// at most elapsed, the time to the last reply.
	allowed := 20 + int(elapsed.Seconds()*20) + 1
	if ok > allowed {
		t.Fatalf("%d full answers of %d in %s; rate limit 20/s allows %d", ok, flood, elapsed, allowed)
	}
	if ok < 15 {
		t.Fatalf("only %d answers: the burst of 20 should pass", ok)
	}
	// BIND's slip 2: every second limited response goes out as TC=1.
	drops, slips := h.svc.limited.With("drop").Value(), h.svc.limited.With("slip").Value()
	if drops == 0 || slips < drops-1 || slips > drops+1 {
		t.Fatalf("server limited %v by drop and %v by slip; want about equal", drops, slips)
	}
	if tc == 0 || float64(tc) > slips {
		t.Fatalf("client saw %d TC replies; server slipped %v", tc, slips)
	}
	out := h.dig(t, "-b", "127.0.1.7", "ProvisionServer.site.test", "A")
	if digStatus(out) != "NOERROR" || len(answers(out)) != 1 {
		t.Fatalf("another network was limited too:\n%s", out)
	}
	out = h.dig(t, "+tcp", "-b", "127.0.0.1", "ProvisionServer.site.test", "A")
	if digStatus(out) != "NOERROR" || len(answers(out)) != 1 {
		t.Fatalf("TCP from the limited network was refused:\n%s", out)
	}
}

// floodUDP sends n queries from src back to back and counts replies;
// elapsed runs from the first send to the last reply received (to the last
// send when none came back).
func floodUDP(t *testing.T, src, server, name string, n int) (ok, tc int, elapsed time.Duration) {
	t.Helper()
	conn, err := netDialUDP(src, server)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	for i := range n {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		m.Id = uint16(i + 1)
		b, _ := m.Pack()
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	elapsed = time.Since(start)
	buf := make([]byte, 2048)
	for {
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		k, err := conn.Read(buf)
		if err != nil {
			break
		}
		elapsed = max(elapsed, time.Since(start))
		m := new(dns.Msg)
		if m.Unpack(buf[:k]) != nil {
			continue
		}
		if m.Truncated {
			tc++
		} else if len(m.Answer) == 1 {
			ok++
		}
	}
	return ok, tc, elapsed
}
