package dns

import (
	"net"
	"net/netip"
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
