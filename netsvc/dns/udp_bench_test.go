package dns

import (
	"context"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkUDPAnswer measures the read loop's handler alone (no socket):
// one lease name and ProvisionServer in turn, as in BenchmarkDNSvsDnsmasq.
func BenchmarkUDPAnswer(b *testing.B) {
	s := fuzzService(b)
	s.state.Load().rrl = nil
	u := &udpServer{s: s, ctx: context.Background()}
	w := newUDPWorker(false)
	buf := make([]byte, ednsSize)
	src := netip.MustParseAddr("127.0.0.5")
	var pkts [][]byte
	for _, name := range []string{"amt-1.site.test.", "ProvisionServer.site.test."} {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		p, _ := m.Pack()
		pkts = append(pkts, p)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if reply, _ := u.answer(w, pkts[i%2], src, buf); reply == nil {
			b.Fatal("no reply")
		}
	}
}
