package dns

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// forwardTimeout bounds one forwarded question across all upstreams.
const forwardTimeout = 5 * time.Second

// ServeDNS implements dns.Handler: every message over TCP comes here, and
// over UDP those the read loop (udp.go) hands to its slow path: forwarded
// questions and updates.
func (s *Service) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	s.serveMsg(context.Background(), w, r)
}

// serveMsg answers r on w; ctx bounds the wait on upstreams.
func (s *Service) serveMsg(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) {
	st := s.state.Load()
	src := addrOf(w.RemoteAddr())
	udp := w.RemoteAddr().Network() == "udp"
	var m *dns.Msg
	switch r.Opcode {
	case dns.OpcodeUpdate:
		m = s.update(st, w, r, src)
	case dns.OpcodeQuery:
		m = s.query(ctx, st, r, src, udp)
	default:
		m = new(dns.Msg).SetRcode(r, dns.RcodeNotImplemented)
	}
	if m == nil {
		return
	}
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("dns: writing reply failed", "to", src, "err", err)
	}
}

// query answers one question: ours from the zone data, others through the
// forwarder, sized to what the client can take.
func (s *Service) query(ctx context.Context, st *state, r *dns.Msg, src netip.Addr, udp bool) *dns.Msg {
	if len(r.Question) != 1 {
		return new(dns.Msg).SetRcode(r, dns.RcodeFormatError)
	}
	opt := r.IsEdns0()
	if opt != nil && opt.Version() != 0 {
		// RFC 6891 §6.1.3: an unknown EDNS version gets BADVERS.
		m := new(dns.Msg).SetRcode(r, dns.RcodeBadVers)
		m.SetEdns0(ednsSize, false)
		return m
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	v := view{z: st.zone, hosts: s.hosts, dyn: s.dyn}
	var m *dns.Msg
	if q.Qclass == dns.ClassINET && v.authoritative(name) {
		if st.zone.provisionName(name) {
			s.prov.note(src, q)
		}
		m = new(dns.Msg).SetReply(r)
		m.Authoritative = true
		m.RecursionAvailable = st.fwd != nil
		m.Rcode, m.Answer, m.Ns = v.answer(q, name)
		if udp {
			switch st.rrl.check(src) {
			case drop:
				s.limDrop.Inc()
				return nil
			case slip:
				s.limSlip.Inc()
				m = new(dns.Msg).SetReply(r)
				m.Truncated = true
			}
		}
		s.qAuth.Inc()
	} else {
		m = s.forward(ctx, st, r)
	}
	sizeReply(m, opt, udp)
	return m
}

// immediate reports whether the query r is answered without waiting on
// anyone: malformed, a bad EDNS version, a name of ours, or a name that is
// not ours when there is no upstream. The UDP read loop answers those
// itself and hands the rest (the forwarded ones) to its slow path.
func (s *Service) immediate(st *state, r *dns.Msg) bool {
	if len(r.Question) != 1 || st.fwd == nil {
		return true
	}
	if opt := r.IsEdns0(); opt != nil && opt.Version() != 0 {
		return true
	}
	q := r.Question[0]
	v := view{z: st.zone, hosts: s.hosts, dyn: s.dyn}
	return q.Qclass == dns.ClassINET && v.authoritative(q.Name)
}

// cached answers a query that is not ours from the forwarder's cache
// alone, sized for UDP, or returns nil. r passed immediate as false: one
// question, and a forwarder.
func (s *Service) cached(st *state, r *dns.Msg) *dns.Msg {
	m := st.fwd.cached(r)
	if m == nil {
		return nil
	}
	s.cacheHit.Inc()
	s.queries.With("cached").Inc()
	sizeReply(m, r.IsEdns0(), true)
	return m
}

// forward answers a question that is not ours.
func (s *Service) forward(ctx context.Context, st *state, r *dns.Msg) *dns.Msg {
	if st.fwd == nil {
		s.queries.With("refused").Inc()
		return new(dns.Msg).SetRcode(r, dns.RcodeRefused)
	}
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	m, cached, err := st.fwd.resolve(ctx, r)
	if err != nil {
		s.queries.With("servfail").Inc()
		if !errors.Is(err, errBusy) {
			s.log.Debug("dns: forwarding failed", "err", err)
		}
		m = new(dns.Msg).SetRcode(r, dns.RcodeServerFailure)
		m.RecursionAvailable = true
		return m
	}
	if cached {
		s.cacheHit.Inc()
		s.queries.With("cached").Inc()
	} else {
		s.queries.With("forward").Inc()
	}
	return m
}

// sizeReply adds our OPT record when the client sent one and truncates the
// reply to what the client can take: its EDNS0 buffer size, at most 1232
// (ednsSize), at least 512 (RFC 6891 §6.2.5); 512 without EDNS0; 64 KiB
// over TCP. A truncated reply has TC set, and the client retries over TCP.
func sizeReply(m *dns.Msg, opt *dns.OPT, udp bool) {
	size := dns.MaxMsgSize
	if udp {
		size = dns.MinMsgSize
		if opt != nil {
			size = max(dns.MinMsgSize, min(int(opt.UDPSize()), ednsSize))
		}
	}
	if opt != nil {
		m.SetEdns0(ednsSize, opt.Do())
	}
	m.Truncate(size)
	m.Compress = true
}

// provisionLog logs ProvisionServer queries with their source: the
// earliest sign of a device in Setup Mode (spec/network.md §2). A source
// asking again within provisionLogEvery is counted rather than logged, so a
// flood cannot flood the journal; the count comes with its next line.
type provisionLog struct {
	log *slog.Logger
	now func() time.Time

	mu   sync.Mutex
	seen map[netip.Addr]*provisionSeen
}

type provisionSeen struct {
	last    time.Time
	repeats int
}

const (
	provisionLogEvery = 10 * time.Second
	provisionLogMax   = 4096 // sources remembered; the table is cleared when full
)

func newProvisionLog(log *slog.Logger, now func() time.Time) *provisionLog {
	return &provisionLog{log: log, now: now, seen: map[netip.Addr]*provisionSeen{}}
}

func (p *provisionLog) note(src netip.Addr, q dns.Question) {
	now := p.now()
	p.mu.Lock()
	e := p.seen[src]
	if e != nil && now.Sub(e.last) < provisionLogEvery {
		e.repeats++
		p.mu.Unlock()
		return
	}
	if e == nil {
		if len(p.seen) >= provisionLogMax {
			clear(p.seen)
		}
		e = &provisionSeen{}
		p.seen[src] = e
	}
	repeats := e.repeats
	e.last, e.repeats = now, 0
	p.mu.Unlock()
	p.log.Info("dns: ProvisionServer query: a device may be in Setup Mode", "src", src.String(), "name", q.Name,
		"type", dns.TypeToString[q.Qtype], "repeats", repeats)
}
