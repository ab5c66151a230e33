package dhcp

import (
	"context"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func FuzzParseFQDN(f *testing.F) {
	f.Add([]byte("\x05\xff\xff\x04amt1\x03amt\x07example\x03com\x00"))
	f.Add([]byte("\x01\x00\x00pc-one"))
	f.Add([]byte("\x04\x00\x00\x04host"))
	f.Add([]byte("\x00\x00\x00"))
	f.Add([]byte("\x04\x00\x00\xc0\x0c"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fq, err := ParseFQDN(b)
		if err != nil {
			return
		}
		if len(fq.Name) > maxDomainLen {
			t.Fatalf("name of %d bytes accepted", len(fq.Name))
		}
		// What we decode we can encode, and it decodes to the same name.
		again, err := ParseFQDN(fq.Bytes())
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", fq, err)
		}
		if again.Name != fq.Name || again.Flags != fq.Flags {
			t.Fatalf("round trip %+v -> %+v", fq, again)
		}
	})
}

// FuzzHandle feeds raw datagrams through the decoder and the handler, as the
// read loop does: nothing a client sends may panic the server or produce a
// reply that does not encode.
func FuzzHandle(f *testing.F) {
	d, _ := dhcpv4.NewDiscovery(net.HardwareAddr{2, 0, 0, 0, 0, 1}, dhcpv4.WithOption(dhcpv4.OptHostName("x")))
	f.Add(d.ToBytes())
	r, _ := dhcpv4.New(dhcpv4.WithHwAddr(net.HardwareAddr{2, 0, 0, 0, 0, 2}), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(net.ParseIP("10.77.0.120")), dhcpv4.WithGeneric(dhcpv4.OptionFQDN, []byte("\x05\x00\x00\x01a\x00")))
	f.Add(r.ToBytes())
	i, _ := dhcpv4.New(dhcpv4.WithHwAddr(net.HardwareAddr{2, 0, 0, 0, 0, 3}), dhcpv4.WithMessageType(dhcpv4.MessageTypeInform),
		dhcpv4.WithGatewayIP(net.ParseIP("10.78.0.1")), dhcpv4.WithClientIP(net.ParseIP("10.78.0.9")))
	f.Add(i.ToBytes())
	s, _, _ := newTestServer(f, testConfig(), NewMemoryLeases())
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		if o := s.handle(context.Background(), req, direct); o != nil {
			if _, err := dhcpv4.FromBytes(o.resp.ToBytes()); err != nil {
				t.Fatalf("reply does not decode: %v", err)
			}
		}
	})
}
