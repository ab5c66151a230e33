package dhcp

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// socket is the server's UDP socket on port 67 with IP_PKTINFO, plus an
// optional AF_PACKET socket for layer-2 unicasts.
//
// Reply addressing follows coredhcp (server/handle.go, server/serve.go):
// IP_PKTINFO tells which interface and local address a request arrived on,
// and broadcasts go back out that interface, so one socket bound to 0.0.0.0
// serves several links without SO_BINDTODEVICE. A reply to a client that has
// no address yet (no broadcast flag, no ciaddr, no relay) must reach yiaddr at
// chaddr before the client can answer ARP; like coredhcp's sendEthernet and
// ISC dhcpd we write that frame on a packet socket. Without CAP_NET_RAW the
// reply is broadcast instead, which every client accepts (RFC 2131 §4.1 allows
// it).
type socket struct {
	udp *net.UDPConn
	raw int // AF_PACKET SOCK_DGRAM, or -1
}

// newSocket enables IP_PKTINFO and SO_BROADCAST on uc and opens the packet
// socket (best effort). It must run in the network namespace the server
// serves, which is why the service opens it in Start.
func newSocket(uc *net.UDPConn) (*socket, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1); serr != nil {
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, fmt.Errorf("setsockopt IP_PKTINFO/SO_BROADCAST: %w", serr)
	}
	s := &socket{udp: uc, raw: -1}
	// Protocol 0: this socket only sends; it receives nothing.
	if fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err == nil {
		s.raw = fd
	}
	return s, nil
}

func (s *socket) close() error {
	s.closeRaw()
	return s.udp.Close()
}

// closeRaw closes the packet socket. Only call it once no worker can write:
// a closed descriptor number may be reused by anything.
func (s *socket) closeRaw() {
	if s.raw >= 0 {
		unix.Close(s.raw)
		s.raw = -1
	}
}

// read returns one datagram and where it arrived.
func (s *socket) read(buf, oob []byte) (int, inbound, error) {
	n, oobn, _, _, err := s.udp.ReadMsgUDPAddrPort(buf, oob)
	if err != nil {
		return 0, inbound{}, err
	}
	return n, parsePktinfo(oob[:oobn]), nil
}

func parsePktinfo(oob []byte) inbound {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return inbound{}
	}
	for _, m := range msgs {
		// struct in_pktinfo { int ipi_ifindex; struct in_addr ipi_spec_dst, ipi_addr; }
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= 12 {
			return inbound{
				ifindex: int(int32(binary.NativeEndian.Uint32(m.Data[0:4]))),
				local:   netip.AddrFrom4([4]byte(m.Data[4:8])),
			}
		}
	}
	return inbound{}
}

// write sends o. src is the server's address on the link (option 54).
func (s *socket) write(o *outbound, src netip.Addr) error {
	b := o.resp.ToBytes()
	if o.l2 && s.raw >= 0 && o.ifindex > 0 {
		if err := s.writeL2(b, o, src); err == nil {
			return nil
		}
		// Fall through to a broadcast: the client accepts that too.
		o.dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), o.dst.Port())
	} else if o.l2 {
		o.dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), o.dst.Port())
	}
	var oob []byte
	if o.ifindex > 0 {
		pi := unix.Inet4Pktinfo{Ifindex: int32(o.ifindex)}
		if src.Is4() {
			pi.Spec_dst = src.As4()
		}
		oob = unix.PktInfo4(&pi)
	}
	_, _, err := s.udp.WriteMsgUDPAddrPort(b, oob, o.dst)
	return err
}

// writeL2 sends payload as a UDP/IPv4 frame straight to the client's MAC.
func (s *socket) writeL2(payload []byte, o *outbound, src netip.Addr) error {
	pkt := udp4(payload, src, o.dst)
	var hw [8]byte
	copy(hw[:], o.resp.ClientHWAddr)
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: o.ifindex, Halen: 6, Addr: hw}
	return unix.Sendto(s.raw, pkt, 0, sa)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// udp4 builds an IPv4 header and UDP header around payload, from src:67.
func udp4(payload []byte, src netip.Addr, dst netip.AddrPort) []byte {
	const ipLen, udpLen = 20, 8
	b := make([]byte, ipLen+udpLen+len(payload))
	b[0] = 0x45 // version 4, 5 words
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8] = 64 // TTL
	b[9] = unix.IPPROTO_UDP
	s4, d4 := src.As4(), dst.Addr().As4()
	copy(b[12:16], s4[:])
	copy(b[16:20], d4[:])
	binary.BigEndian.PutUint16(b[10:], ^fold(sum(b[:ipLen], 0)))
	u := b[ipLen:]
	binary.BigEndian.PutUint16(u[0:], 67)
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(udpLen+len(payload)))
	copy(u[udpLen:], payload)
	// UDP checksum over the pseudo-header (RFC 768).
	var ph [12]byte
	copy(ph[0:4], s4[:])
	copy(ph[4:8], d4[:])
	ph[9] = unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(ph[10:], uint16(len(u)))
	c := ^fold(sum(u, sum(ph[:], 0)))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
	return b
}

func sum(b []byte, acc uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		acc += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		acc += uint32(b[len(b)-1]) << 8
	}
	return acc
}

func fold(acc uint32) uint16 {
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}
