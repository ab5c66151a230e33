package dns

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// DNS over UDP has its own read loop rather than miekg/dns's server, which
// reads one datagram per system call and starts a goroutine for each: at a
// site's boot storm that is most of the cost of an answer. Here a few
// readers per socket each take up to udpBatch datagrams in one recvmmsg(2),
// answer the names that are ours (and forwarded ones the cache holds) in
// place from reused buffers, and send the replies back in one sendmmsg(2).
// Whatever has to wait (questions for the upstreams; updates, which touch
// the store) goes to a bounded slow path, so the loop never blocks on
// anyone. BenchmarkDNSvsDnsmasq measures the result against dnsmasq.
const (
	udpBatch   = 32  // datagrams per recvmmsg/sendmmsg
	udpOOBSize = 128 // room for IP_PKTINFO and IPV6_PKTINFO
	// maxSlowPath bounds the forwarded questions and updates being handled
	// at once per socket; past it a datagram is dropped and counted (the
	// client retries). The forwarder has its own, larger bound (maxInflight)
	// for TCP as well.
	maxSlowPath = 128
	// maxReadFailures consecutive failed reads (not a close) stop a reader
	// and fail the health check: the socket is no longer usable.
	maxReadFailures = 100
	headerLen       = 12
)

// batchConn is what ipv4.PacketConn and ipv6.PacketConn share.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// udpServer serves one UDP socket: one reader per dup of it.
type udpServer struct {
	s       *Service
	conns   []net.PacketConn
	batch   []batchConn
	pktinfo bool // bound to a wildcard address: replies leave from the address the query came to
	slow    chan struct{}
	ctx     context.Context // cancelled by close: ends slow-path work
	cancel  context.CancelFunc
	wg      sync.WaitGroup // readers and slow-path goroutines
	once    sync.Once
}

// newUDPServer takes readers dups of the "dns" socket from the registry.
// It reads nothing until start.
func newUDPServer(s *Service, listen string, readers int) (*udpServer, error) {
	ctx, cancel := context.WithCancel(context.Background())
	u := &udpServer{s: s, slow: make(chan struct{}, maxSlowPath), ctx: ctx, cancel: cancel}
	for range readers {
		pc, err := s.deps.Listeners.Packet("dns", listen)
		if err != nil {
			u.close()
			return nil, err
		}
		u.conns = append(u.conns, pc)
		la, ok := pc.LocalAddr().(*net.UDPAddr)
		if !ok {
			u.close()
			return nil, fmt.Errorf("socket \"dns\" is %s, not UDP (check ListenDatagram= in the .socket unit)", pc.LocalAddr().Network())
		}
		var bc batchConn
		if la.IP.To4() != nil {
			bc = ipv4.NewPacketConn(pc)
		} else {
			bc = ipv6.NewPacketConn(pc)
		}
		u.batch = append(u.batch, bc)
		if len(u.conns) == 1 && la.IP.IsUnspecified() {
			// As miekg/dns does: ask for the destination of each datagram
			// (a socket option, shared by every dup) so the reply leaves
			// from it; a client ignores replies from another address.
			err6 := ipv6.NewPacketConn(pc).SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true)
			err4 := ipv4.NewPacketConn(pc).SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true)
			if err4 != nil && err6 != nil {
				u.close()
				return nil, fmt.Errorf("asking for packet info on %s: %w", la, err4)
			}
			u.pktinfo = true
		}
	}
	return u, nil
}

// start runs the readers.
func (u *udpServer) start() {
	for _, bc := range u.batch {
		u.wg.Go(func() { u.read(bc) })
	}
}

// close stops the readers and the slow path and waits for all of them. The
// registry's socket stays open.
func (u *udpServer) close() {
	u.once.Do(func() {
		u.cancel()
		for _, pc := range u.conns {
			pc.Close()
		}
	})
	u.wg.Wait()
}

// udpWorker is one reader's buffers, reused for every batch.
type udpWorker struct {
	in, out []ipv4.Message
	outBuf  [][]byte
	msg     dns.Msg // the query being answered
	// The source control message of the last reply, for wildcard sockets:
	// most replies in a row leave from the same address.
	lastDst net.IP
	lastOOB []byte
}

func newUDPWorker(pktinfo bool) *udpWorker {
	w := &udpWorker{in: make([]ipv4.Message, udpBatch), out: make([]ipv4.Message, udpBatch), outBuf: make([][]byte, udpBatch)}
	for i := range udpBatch {
		w.in[i].Buffers = [][]byte{make([]byte, udpReadBuffer)}
		if pktinfo {
			w.in[i].OOB = make([]byte, udpOOBSize)
		}
		w.outBuf[i] = make([]byte, ednsSize)
		w.out[i].Buffers = make([][]byte, 1)
	}
	return w
}

// read is one reader's loop, until the socket closes.
func (u *udpServer) read(bc batchConn) {
	w := newUDPWorker(u.pktinfo)
	fails := 0
	for {
		n, err := bc.ReadBatch(w.in, 0)
		if err != nil {
			if u.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			if fails++; fails >= maxReadFailures {
				err = fmt.Errorf("UDP reads failing: %w", err)
				u.s.serveErr.Store(err)
				u.s.log.Error("dns: UDP reader stopped", "err", err)
				return
			}
			u.s.log.Warn("dns: UDP read failed", "err", err)
			select {
			case <-time.After(10 * time.Millisecond):
			case <-u.ctx.Done():
				return
			}
			continue
		}
		fails = 0
		k := 0
		for i := range n {
			if u.handle(w, bc, &w.in[i], &w.out[k], w.outBuf[k]) {
				k++
			}
		}
		u.write(bc, w.out[:k])
	}
}

// handle deals with one datagram: an answer of ours goes into out (true),
// what has to wait goes to the slow path, the rest is dropped.
func (u *udpServer) handle(w *udpWorker, bc batchConn, in, out *ipv4.Message, buf []byte) bool {
	from, ok := in.Addr.(*net.UDPAddr)
	if !ok {
		return false
	}
	if in.Flags&syscall.MSG_TRUNC != 0 {
		// Longer than udpReadBuffer: what was read is not the message.
		u.s.dropMalformed.Inc()
		return false
	}
	pkt := in.Buffers[0][:in.N]
	var dst net.IP
	if u.pktinfo {
		dst = dstOf(in.OOB[:in.NN])
	}
	src, _ := netip.AddrFromSlice(from.IP)
	reply, slow := u.answer(w, pkt, src.Unmap(), buf)
	if slow {
		u.toSlowPath(bc, pkt, from, dst)
		return false
	}
	if reply == nil {
		return false
	}
	out.Buffers[0] = reply
	out.Addr = from
	out.OOB = nil
	if dst != nil {
		if !dst.Equal(w.lastDst) {
			w.lastDst, w.lastOOB = dst, srcOOB(dst)
		}
		out.OOB = w.lastOOB
	}
	return true
}

// answer is the read loop's handler: pkt from src in, the reply packed into
// buf out (nil: no reply), or slow when the datagram must go to the slow
// path. Malformed datagrams and stray responses are counted and dropped:
// a reply to garbage only helps someone amplify through us.
func (u *udpServer) answer(w *udpWorker, pkt []byte, src netip.Addr, buf []byte) (reply []byte, slow bool) {
	h, ok := parseHeader(pkt)
	if !ok {
		u.s.dropMalformed.Inc()
		return nil, false
	}
	switch acceptMsg(h) {
	case dns.MsgIgnore:
		u.s.dropResp.Inc()
		return nil, false
	case dns.MsgReject:
		return rejectReply(buf, h, dns.RcodeFormatError), false
	case dns.MsgRejectNotImplemented:
		return rejectReply(buf, h, dns.RcodeNotImplemented), false
	}
	if int(h.Bits>>11)&0xF != dns.OpcodeQuery {
		return nil, true // an update: TSIG, the store
	}
	r := &w.msg
	if err := r.Unpack(pkt); err != nil || len(r.Question) != int(h.Qdcount) {
		// miekg/dns stops at the end of the datagram without an error,
		// whatever the header promised.
		u.s.dropMalformed.Inc()
		return nil, false
	}
	st := u.s.state.Load()
	var m *dns.Msg
	if u.s.immediate(st, r) {
		if m = u.s.query(u.ctx, st, r, src, true); m == nil {
			return nil, false // rate limited
		}
	} else if m = u.s.cached(st, r); m == nil {
		return nil, true // to the upstreams
	}
	b, err := m.PackBuffer(buf)
	if err != nil {
		u.s.log.Debug("dns: packing reply failed", "to", src, "err", err)
		return nil, false
	}
	return b, false
}

// parseHeader reads the fixed 12-byte DNS header (RFC 1035 §4.1.1).
func parseHeader(b []byte) (dns.Header, bool) {
	if len(b) < headerLen {
		return dns.Header{}, false
	}
	be := binary.BigEndian
	return dns.Header{Id: be.Uint16(b), Bits: be.Uint16(b[2:]), Qdcount: be.Uint16(b[4:]),
		Ancount: be.Uint16(b[6:]), Nscount: be.Uint16(b[8:]), Arcount: be.Uint16(b[10:])}, true
}

// rejectReply is the header-only reply miekg/dns's server sends to what
// acceptMsg rejects: FORMERR (opcode QUERY), or NOTIMP echoing the opcode;
// RD and CD are echoed, the sections are empty.
func rejectReply(buf []byte, h dns.Header, rcode int) []byte {
	const rd, cd = 1 << 8, 1 << 4
	var opcode uint16
	if rcode == dns.RcodeNotImplemented {
		opcode = h.Bits >> 11 & 0xF
	}
	b := buf[:headerLen]
	clear(b)
	binary.BigEndian.PutUint16(b, h.Id)
	binary.BigEndian.PutUint16(b[2:], 1<<15|opcode<<11|h.Bits&(rd|cd)|uint16(rcode))
	return b
}

// write sends a batch of replies. A reply the kernel refuses is skipped:
// the client retries, the others still go out.
func (u *udpServer) write(bc batchConn, ms []ipv4.Message) {
	for len(ms) > 0 {
		n, err := bc.WriteBatch(ms, 0)
		if err != nil {
			if u.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			n = max(n, 0)
			if n < len(ms) {
				u.s.log.Debug("dns: sending reply failed", "to", ms[n].Addr, "err", err)
				n++
			}
		}
		ms = ms[n:]
	}
}

// toSlowPath hands a datagram to a goroutine of its own, at most
// maxSlowPath at once; past that it is dropped and counted.
func (u *udpServer) toSlowPath(bc batchConn, pkt []byte, from *net.UDPAddr, dst net.IP) {
	select {
	case u.slow <- struct{}{}:
	default:
		u.s.dropBusy.Inc()
		return
	}
	pkt = bytes.Clone(pkt) // the read buffer is reused by the next batch
	u.wg.Go(func() {
		defer func() { <-u.slow }()
		r := new(dns.Msg)
		if err := r.Unpack(pkt); err != nil {
			u.s.dropMalformed.Inc()
			return
		}
		w := &udpResponse{u: u, bc: bc, remote: from, dst: dst}
		if t := r.IsTsig(); t != nil {
			// As miekg/dns's server does: the handler reads the verdict
			// from TsigStatus, WriteMsg signs the reply.
			w.tsigStatus = dns.TsigVerifyWithProvider(pkt, u.s.tsig, "", false)
			w.tsigMAC = t.MAC
		}
		u.s.serveMsg(u.ctx, w, r)
	})
}

// udpResponse is the dns.ResponseWriter of the slow path.
type udpResponse struct {
	u          *udpServer
	bc         batchConn
	remote     *net.UDPAddr
	dst        net.IP
	tsigStatus error
	tsigMAC    string
}

func (w *udpResponse) LocalAddr() net.Addr  { return w.u.conns[0].LocalAddr() }
func (w *udpResponse) RemoteAddr() net.Addr { return w.remote }

func (w *udpResponse) WriteMsg(m *dns.Msg) error {
	if t := m.IsTsig(); t != nil {
		b, _, err := dns.TsigGenerateWithProvider(m, w.u.s.tsig, w.tsigMAC, false)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func (w *udpResponse) Write(b []byte) (int, error) {
	ms := []ipv4.Message{{Buffers: [][]byte{b}, Addr: w.remote, OOB: srcOOB(w.dst)}}
	if _, err := w.bc.WriteBatch(ms, 0); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (w *udpResponse) Close() error        { return nil }
func (w *udpResponse) TsigStatus() error   { return w.tsigStatus }
func (w *udpResponse) TsigTimersOnly(bool) {}
func (w *udpResponse) Hijack()             {}

// dstOf returns the destination address of a datagram from its control
// messages (IPV6_PKTINFO, then IP_PKTINFO), or nil.
func dstOf(oob []byte) net.IP {
	if len(oob) == 0 {
		return nil
	}
	var cm6 ipv6.ControlMessage
	if cm6.Parse(oob) == nil && cm6.Dst != nil {
		return cm6.Dst
	}
	var cm4 ipv4.ControlMessage
	if cm4.Parse(oob) == nil && cm4.Dst != nil {
		return cm4.Dst
	}
	return nil
}

// srcOOB is the control message that sends a reply from dst.
func srcOOB(dst net.IP) []byte {
	if dst == nil {
		return nil
	}
	if dst.To4() != nil {
		cm := ipv4.ControlMessage{Src: dst}
		return cm.Marshal()
	}
	cm := ipv6.ControlMessage{Src: dst}
	return cm.Marshal()
}
