package dns

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"

	"amtd/netsvc"
)

// fakeWriter is a dns.ResponseWriter that keeps the packed reply.
type fakeWriter struct {
	remote net.Addr
	reply  []byte
	msg    *dns.Msg
}

func (w *fakeWriter) LocalAddr() net.Addr  { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (w *fakeWriter) RemoteAddr() net.Addr { return w.remote }
func (w *fakeWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	w.msg, w.reply = m, b
	return nil
}
func (w *fakeWriter) Write(b []byte) (int, error) { w.reply = b; return len(b), nil }
func (w *fakeWriter) Close() error                { return nil }
func (w *fakeWriter) TsigStatus() error           { return nil }
func (w *fakeWriter) TsigTimersOnly(bool)         {}
func (w *fakeWriter) Hijack()                     {}

func fuzzService(t testing.TB) *Service {
	cfg := baseConfig()
	cfg.DNS.UpdateFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	cfg.DNS.Listen = "127.0.0.1:53"
	s, err := New(cfg, netsvc.Deps{Hosts: netsvc.NewHosts()})
	if err != nil {
		t.Fatal(err)
	}
	s.hosts.Set("amt-1.site.test", netip.MustParseAddr("10.20.30.1"))
	return s
}

// FuzzServe feeds arbitrary bytes, as they would arrive in a datagram, to
// the parser and the whole handler (queries and updates): it must never
// panic, every reply must pack, and a UDP reply must fit the 1232-byte
// EDNS0 limit amtd advertises.
func FuzzServe(f *testing.F) {
	for _, m := range fuzzSeeds() {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	s := fuzzService(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r := new(dns.Msg)
		if err := r.Unpack(b); err != nil {
			return
		}
		if len(b) < 12 {
			return
		}
		var h dns.Header
		h.Id, h.Bits = uint16(b[0])<<8|uint16(b[1]), uint16(b[2])<<8|uint16(b[3])
		h.Qdcount, h.Ancount, h.Nscount, h.Arcount = uint16(len(r.Question)), uint16(len(r.Answer)), uint16(len(r.Ns)), uint16(len(r.Extra))
		if acceptMsg(h) != dns.MsgAccept {
			return
		}
		w := &fakeWriter{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 5), Port: 5353}}
		s.ServeDNS(w, r)
		if w.msg != nil && len(w.reply) > ednsSize {
			t.Fatalf("UDP reply of %d bytes exceeds %d", len(w.reply), ednsSize)
		}
	})
}

func fuzzSeeds() []*dns.Msg {
	q := func(name string, t uint16) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, t)
		return m
	}
	edns := q("ProvisionServer.site.test.", dns.TypeA)
	edns.SetEdns0(4096, true)
	upd := new(dns.Msg)
	upd.SetUpdate("site.test.")
	upd.RemoveRRset([]dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "amt-5.site.test.", Rrtype: dns.TypeA}}})
	rr, _ := dns.NewRR("amt-5.site.test. 900 IN A 127.0.0.5")
	upd.Insert([]dns.RR{rr})
	pre := new(dns.Msg)
	pre.SetUpdate("site.test.")
	pre.NameNotUsed([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: "new.site.test."}}})
	rr2, _ := dns.NewRR("new.site.test. 900 IN A 127.0.0.5")
	pre.Insert([]dns.RR{rr2})
	return []*dns.Msg{
		q("ProvisionServer.site.test.", dns.TypeA), q("provisionserver.", dns.TypeAAAA), q("amt-1.site.test.", dns.TypeANY),
		q("1.30.20.10.in-addr.arpa.", dns.TypePTR), q("nope.site.test.", dns.TypeA), q("example.org.", dns.TypeA),
		q("alias.site.test.", dns.TypeA), q("site.test.", dns.TypeSOA), edns, upd, pre,
	}
}

// FuzzUDPAnswer feeds arbitrary datagrams to the UDP read loop's handler
// (udp.go: header, accept filter, unpack, answer, pack into the reused
// buffer): it must never panic; a reply must unpack, answer the datagram's
// ID and fit the 1232-byte EDNS0 limit, and 512 bytes when the query had
// no OPT record.
func FuzzUDPAnswer(f *testing.F) {
	for _, m := range fuzzSeeds() {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:12])       // header only: the question promised is missing
		f.Add(b[:len(b)-1]) // cut short
		r := slices.Clone(b)
		r[2] |= 0x80 // a response
		f.Add(r)
	}
	f.Add([]byte{0x12, 0x34, 0x01})
	u := &udpServer{s: fuzzService(f), ctx: context.Background()}
	w := newUDPWorker(false)
	buf := make([]byte, ednsSize)
	src := netip.MustParseAddr("127.0.0.5")
	zones := append(slices.Clone(u.s.state.Load().zone.forward), u.s.state.Load().zone.reverse...)
	f.Fuzz(func(t *testing.T, b []byte) {
		if q := new(dns.Msg); q.Unpack(b) == nil && len(q.Question) > 0 {
			for _, z := range zones {
				if name := q.Question[0].Name; inZone(z, name) != dns.IsSubDomain(z, name) {
					t.Fatalf("inZone(%q, %q) disagrees with dns.IsSubDomain", z, name)
				}
			}
		}
		reply, slow := u.answer(w, b, src, buf)
		if reply == nil {
			return
		}
		if slow {
			t.Fatal("a reply and the slow path both")
		}
		m := new(dns.Msg)
		if err := m.Unpack(reply); err != nil {
			t.Fatalf("reply does not unpack: %v", err)
		}
		if m.Id != uint16(b[0])<<8|uint16(b[1]) || !m.Response {
			t.Fatalf("reply %v to a datagram with ID %x", m.MsgHdr, b[:2])
		}
		limit := dns.MinMsgSize
		if q := new(dns.Msg); q.Unpack(b) == nil && q.IsEdns0() != nil {
			limit = ednsSize
		}
		if len(reply) > limit {
			t.Fatalf("UDP reply of %d bytes exceeds %d", len(reply), limit)
		}
	})
}
