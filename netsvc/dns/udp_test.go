package dns

import (
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"amtd/daemon/config"
)

// udpClient is a connected UDP socket to the service: the kernel drops
// datagrams from any other address, so a reply sent from the wrong source
// never arrives.
type udpClient struct {
	t    *testing.T
	conn *net.UDPConn
}

func dialService(t *testing.T, src, server string) *udpClient {
	t.Helper()
	c, err := netDialUDP(src, server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpClient{t: t, conn: c}
}

func (c *udpClient) send(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// recv waits up to 10 s for a reply; raw bytes, or nil on timeout.
func (c *udpClient) recv(wait time.Duration) []byte {
	buf := make([]byte, 65536)
	c.conn.SetReadDeadline(time.Now().Add(wait))
	n, err := c.conn.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// ask sends m and returns the reply with m's ID (10 s at most).
func (c *udpClient) ask(m *dns.Msg) (*dns.Msg, int) {
	c.t.Helper()
	b, err := m.Pack()
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(b)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		raw := c.recv(time.Until(deadline))
		if raw == nil {
			break
		}
		r := new(dns.Msg)
		if err := r.Unpack(raw); err != nil {
			c.t.Fatalf("reply does not unpack: %v", err)
		}
		if r.Id == m.Id {
			return r, len(raw)
		}
	}
	c.t.Fatalf("no reply to %v", m.Question)
	return nil, 0
}

func query(id uint16, name string, qtype uint16, edns int) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = id
	if edns > 0 {
		m.SetEdns0(uint16(edns), false)
	}
	return m
}

// TestUDPTruncationAndEDNS: the read loop sizes every reply to what the
// client said it takes (at most 1232, at least 512, 512 without EDNS0),
// sets TC when records had to go, and answers EDNS0 with its own OPT.
func TestUDPTruncationAndEDNS(t *testing.T) {
	cfg := baseConfig()
	for i := range 120 {
		cfg.DNSRecords = append(cfg.DNSRecords, config.DNSRecord{Name: "big.site.test.", Type: "A", Value: fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)})
	}
	h := startService(t, cfg, nil)
	c := dialService(t, "127.0.0.1", h.addr)
	for i, tc := range []struct {
		name    string
		edns    int // 0: no OPT
		limit   int
		wantTC  bool
		answers int // exact count when not truncated
	}{
		{"big, no EDNS0", 0, 512, true, 0},
		{"big, EDNS0 4096 capped at 1232", 4096, ednsSize, true, 0},
		{"big, EDNS0 700", 700, 700, true, 0},
		{"big, EDNS0 below 512 counts as 512", 100, 512, true, 0},
		{"small, EDNS0", 4096, ednsSize, false, 1},
		{"small, no EDNS0", 0, 512, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "big.site.test."
			if !tc.wantTC {
				name = "ProvisionServer.site.test."
			}
			r, n := c.ask(query(uint16(100+i), name, dns.TypeA, tc.edns))
			if n > tc.limit {
				t.Fatalf("reply of %d bytes; the client takes %d", n, tc.limit)
			}
			if r.Truncated != tc.wantTC {
				t.Fatalf("TC=%v, want %v", r.Truncated, tc.wantTC)
			}
			if !r.Response || !r.Authoritative || r.Rcode != dns.RcodeSuccess {
				t.Fatalf("reply header %+v", r.MsgHdr)
			}
			if tc.wantTC && len(r.Answer) >= 120 {
				t.Fatalf("truncated reply holds all %d answers", len(r.Answer))
			}
			if !tc.wantTC && len(r.Answer) != tc.answers {
				t.Fatalf("%d answers, want %d", len(r.Answer), tc.answers)
			}
			opt := r.IsEdns0()
			switch {
			case tc.edns == 0 && opt != nil:
				t.Fatal("OPT in the reply to a query without EDNS0")
			case tc.edns > 0 && (opt == nil || opt.UDPSize() != ednsSize):
				t.Fatalf("reply OPT %v, want one offering %d", opt, ednsSize)
			}
		})
	}
}

// TestUDPMalformed: datagrams that are not queries get no reply and are
// counted; what acceptMsg rejects gets FORMERR or NOTIMP as miekg/dns's
// server would send; the loop keeps answering.
func TestUDPMalformed(t *testing.T) {
	h := startService(t, baseConfig(), nil)
	c := dialService(t, "127.0.0.1", h.addr)

	resp := query(7, "ProvisionServer.site.test.", dns.TypeA, 0)
	resp.Response = true
	respB, _ := resp.Pack()
	good, _ := query(8, "ProvisionServer.site.test.", dns.TypeA, 0).Pack()
	loop := append([]byte(nil), good[:12]...) // a name that points at itself
	loop = append(loop, 0xC0, 12, 0, 1, 0, 1)
	malformed := [][]byte{
		{},                 // empty
		{0x12, 0x34, 0x01}, // shorter than a header
		good[:12],          // header says one question; none follows
		good[:len(good)-3], // question cut short
		loop,
		append(slices.Clone(good), make([]byte, udpReadBuffer)...), // longer than any query
	}
	for _, b := range malformed {
		c.send(b)
	}
	c.send(respB)
	eventually(t, 10*time.Second, "the malformed datagrams and the response to be counted", func() bool {
		return h.svc.dropMalformed.Value() == float64(len(malformed)) && h.svc.dropResp.Value() == 1
	})
	if raw := c.recv(200 * time.Millisecond); raw != nil {
		t.Fatalf("a malformed datagram got a reply: % x", raw)
	}

	two := query(9, "ProvisionServer.site.test.", dns.TypeA, 0)
	two.Question = append(two.Question, two.Question[0])
	if r, _ := c.ask(two); r.Rcode != dns.RcodeFormatError || len(r.Question) != 0 || !r.RecursionDesired {
		t.Fatalf("two questions: %v, want FORMERR, no sections, RD echoed", r)
	}
	status := query(10, "ProvisionServer.site.test.", dns.TypeA, 0)
	status.Opcode = dns.OpcodeStatus
	if r, _ := c.ask(status); r.Rcode != dns.RcodeNotImplemented || r.Opcode != dns.OpcodeStatus {
		t.Fatalf("STATUS opcode: %v, want NOTIMP", r)
	}
	if r, _ := c.ask(query(11, "ProvisionServer.site.test.", dns.TypeA, 0)); len(r.Answer) != 1 {
		t.Fatalf("after the garbage: %v", r)
	}
}

// TestUDPSlowPathFull: with every slow-path slot taken, a forwarded query
// is dropped and counted while names of ours are still answered; once
// slots are free it goes upstream again, and from then on its cached
// answer comes from the read loop, full slow path or not.
func TestUDPSlowPathFull(t *testing.T) {
	up := startUpstream(t)
	cfg := baseConfig()
	cfg.DNS.Upstreams = []string{up.addr}
	h := startService(t, cfg, nil)
	c := dialService(t, "127.0.0.1", h.addr)
	u := h.svc.servers.udp
	for range cap(u.slow) {
		u.slow <- struct{}{}
	}
	m, _ := query(20, "example.org.", dns.TypeA, 0).Pack()
	c.send(m)
	c.send(m)
	eventually(t, 10*time.Second, "two forwarded queries to be dropped as busy", func() bool {
		return h.svc.dropBusy.Value() == 2
	})
	if r, _ := c.ask(query(21, "ProvisionServer.site.test.", dns.TypeA, 0)); len(r.Answer) != 1 {
		t.Fatalf("own name with the slow path full: %v", r)
	}
	if n := up.asked.Load(); n != 0 {
		t.Fatalf("upstream asked %d times while the slow path was full", n)
	}
	for range cap(u.slow) {
		<-u.slow
	}
	r, _ := c.ask(query(22, "example.org.", dns.TypeA, 0))
	if len(r.Answer) != 1 || up.asked.Load() != 1 {
		t.Fatalf("forwarded with free slots: %v (upstream asked %d times)", r, up.asked.Load())
	}
	if h.svc.dropBusy.Value() != 2 {
		t.Fatalf("busy drops %v, want 2", h.svc.dropBusy.Value())
	}
	// A cached answer needs no slow path.
	for range cap(u.slow) {
		u.slow <- struct{}{}
	}
	r, _ = c.ask(query(23, "EXAMPLE.org.", dns.TypeA, 0))
	if len(r.Answer) != 1 || up.asked.Load() != 1 || h.svc.dropBusy.Value() != 2 {
		t.Fatalf("cached name with the slow path full: %v (upstream asked %d times, %v busy drops)", r, up.asked.Load(), h.svc.dropBusy.Value())
	}
	if r.Question[0].Name != "EXAMPLE.org." || !r.RecursionAvailable || r.Authoritative {
		t.Fatalf("cached reply %v: want the client's question, RA, not AA", r)
	}
}

// TestUDPCloseLeavesNothing: Close ends the readers and cancels the
// forwarded queries still waiting on a silent upstream; no goroutine of the
// loop is left, and the registry's socket still serves a successor.
func TestUDPCloseLeavesNothing(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var heard atomic.Int64 // queries the silent upstream has read
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, _, err := silent.ReadFrom(buf); err != nil {
				return
			}
			heard.Add(1)
		}
	}()
	cfg := baseConfig()
	// Asked in turn, upstreamTimeout each, up to forwardTimeout: the
	// forwards are still waiting when Close comes.
	a := silent.LocalAddr().String()
	cfg.DNS.Upstreams = []string{a, a, a}
	h := startService(t, cfg, nil)
	c := dialService(t, "127.0.0.1", h.addr)
	u := h.svc.servers.udp
	for i := range 5 {
		b, _ := query(uint16(30+i), fmt.Sprintf("q%d.example.org.", i), dns.TypeA, 0).Pack()
		c.send(b)
	}
	eventually(t, 10*time.Second, "five forwarded queries waiting on the upstream", func() bool {
		return len(u.slow) == 5 && heard.Load() >= 5
	})
	if n := loopGoroutines(); n == 0 {
		t.Fatal("no goroutine of the UDP loop found while serving: the check below cannot fail")
	}
	h.stop(t)
	eventually(t, 10*time.Second, "the UDP loop's goroutines to end", func() bool { return loopGoroutines() == 0 })
	if len(u.slow) != 0 {
		t.Fatalf("%d slow-path slots still held after Close", len(u.slow))
	}
	// Cancelled, the exchange ends on its closed socket; otherwise it would
	// have waited out its timeout ("i/o timeout").
	cancelled := false
	for line := range strings.Lines(h.logs.String()) {
		if strings.Contains(line, "forwarding failed") && strings.Contains(line, "context canceled (read udp") &&
			strings.Contains(line, "use of closed network connection") {
			cancelled = true
		}
	}
	if !cancelled {
		t.Fatalf("the waiting forwards were not cancelled by Close:\n%s", h.logs.String())
	}
	h.start(t)
	if got := answers(h.dig(t, "ProvisionServer.site.test", "A")); len(got) != 1 {
		t.Fatalf("a new service on the same socket: %q", got)
	}
}

// loopGoroutines counts goroutines running the UDP loop's code.
func loopGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "amtd/netsvc/dns.(*udpServer)") {
			count++
		}
	}
	return count
}

// TestUDPWildcardSource: on a socket bound to a wildcard address the reply
// leaves from the address the query was sent to, for answers of ours and
// forwarded ones, IPv4 and IPv6 (the connected client socket drops
// anything else).
func TestUDPWildcardSource(t *testing.T) {
	up := startUpstream(t)
	for _, tc := range []struct {
		bind   string
		client string // client source and server address
		server string
	}{
		{"0.0.0.0", "127.0.0.1", "127.0.0.7"},
		{"::", "::1", "::1"},
		{"::", "127.0.0.1", "127.0.0.8"}, // IPv4 on a dual-stack socket
	} {
		t.Run(tc.bind+" "+tc.server, func(t *testing.T) {
			if strings.Contains(tc.bind, ":") {
				ln, err := net.ListenPacket("udp", "[::1]:0")
				if err != nil {
					t.Skipf("IPv6 is off on this host (binding [::1]: %v); the IPv4 case still runs", err)
				}
				ln.Close()
			}
			cfg := baseConfig()
			cfg.DNS.Upstreams = []string{up.addr}
			h := startServiceAt(t, tc.bind, cfg, nil)
			c := dialService(t, tc.client, net.JoinHostPort(tc.server, fmt.Sprint(h.port)))
			if r, _ := c.ask(query(40, "ProvisionServer.site.test.", dns.TypeA, 0)); len(r.Answer) != 1 {
				t.Fatalf("own name: %v", r)
			}
			if r, _ := c.ask(query(41, "example.org.", dns.TypeA, 1232)); len(r.Answer) != 1 {
				t.Fatalf("forwarded: %v", r)
			}
			out := digAt(t, tc.server, h.port, "amtd.site.test", "A")
			if got := answers(out); len(got) != 1 {
				t.Fatalf("dig @%s: %q\n%s", tc.server, got, out)
			}
		})
	}
}
