package netns

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"
)

// Relay is a DHCP relay agent, the role of a router's `ip helper-address`
// (RFC 1542 §4): requests broadcast on the client link are forwarded by
// unicast to the server with giaddr set to the relay's address on that link;
// replies from the server come back to giaddr:67 and are broadcast on the
// client link. It is written here in Go because Debian's isc-dhcp-relay is
// not among the packages CI installs.
type Relay struct {
	conn     *net.UDPConn
	clientIf int
	giaddr   netip.Addr
	server   netip.AddrPort
	// Forwarded counts requests sent on to the server.
	Forwarded atomic.Int64
}

// StartRelay starts a relay in ns that serves clients on clientIf, stamps
// giaddr into their requests, and forwards them to server (port 67). It stops
// when the test ends.
func StartRelay(t testing.TB, ns *NS, clientIf string, giaddr, server netip.Addr) *Relay {
	t.Helper()
	r := &Relay{giaddr: giaddr, server: netip.AddrPortFrom(server, dhcpv4.ServerPort)}
	err := ns.Do(func() error {
		ifc, err := net.InterfaceByName(clientIf)
		if err != nil {
			return err
		}
		r.clientIf = ifc.Index
		c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: dhcpv4.ServerPort})
		if err != nil {
			return err
		}
		rc, _ := c.SyscallConn()
		var serr error
		_ = rc.Control(func(fd uintptr) {
			serr = errors.Join(unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1),
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1))
		})
		if serr != nil {
			c.Close()
			return serr
		}
		r.conn = c
		return nil
	})
	if err != nil {
		t.Fatalf("relay in %s: %v", ns.Name, err)
	}
	done := make(chan struct{})
	go func() { defer close(done); r.loop() }()
	t.Cleanup(func() { r.conn.Close(); <-done })
	return r
}

func (r *Relay) loop() {
	buf := make([]byte, 1500)
	oob := make([]byte, 128)
	bcast := netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), dhcpv4.ClientPort)
	for {
		n, oobn, _, _, err := r.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			return
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			continue
		}
		switch m.OpCode {
		case dhcpv4.OpcodeBootRequest:
			if ifindex(oob[:oobn]) != r.clientIf {
				continue
			}
			if m.GatewayIPAddr == nil || m.GatewayIPAddr.IsUnspecified() {
				m.GatewayIPAddr = r.giaddr.AsSlice()
			}
			m.HopCount++
			if _, err := r.conn.WriteToUDPAddrPort(m.ToBytes(), r.server); err == nil {
				r.Forwarded.Add(1)
			}
		case dhcpv4.OpcodeBootReply:
			dst := bcast
			if ci, ok := netip.AddrFromSlice(m.ClientIPAddr.To4()); ok && !ci.IsUnspecified() && !m.IsBroadcast() {
				dst = netip.AddrPortFrom(ci, dhcpv4.ClientPort)
			}
			pi := unix.Inet4Pktinfo{Ifindex: int32(r.clientIf), Spec_dst: r.giaddr.As4()}
			_, _, _ = r.conn.WriteMsgUDPAddrPort(m.ToBytes(), unix.PktInfo4(&pi), dst)
		}
	}
}

func ifindex(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= 4 {
			return int(int32(binary.NativeEndian.Uint32(m.Data[0:4])))
		}
	}
	return 0
}
