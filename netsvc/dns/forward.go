package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// forwarder sends the questions amtd is not authoritative for to the site's
// resolvers, in order, and caches what comes back. At most maxInflight
// questions are outstanding at once: past that the client gets SERVFAIL at
// once, so a flood cannot pile up goroutines waiting on a slow upstream.
type forwarder struct {
	upstreams []string // host:port
	cache     *cache
	udp, tcp  *dns.Client
	sem       chan struct{}
}

const (
	maxInflight     = 256
	upstreamTimeout = 2 * time.Second
	// ednsSize is the EDNS0 buffer size amtd offers and accepts over UDP:
	// 1232 avoids IP fragmentation on any path (DNS Flag Day 2020).
	ednsSize = 1232
)

var errBusy = errors.New("too many forwarded queries in flight")

// newForwarder validates the upstream list; nil upstreams give a nil
// forwarder, which REFUSES every non-local question.
func newForwarder(upstreams []string, c *cache) (*forwarder, error) {
	if len(upstreams) == 0 {
		return nil, nil
	}
	f := &forwarder{
		cache: c,
		udp:   &dns.Client{Net: "udp", Timeout: upstreamTimeout, UDPSize: ednsSize},
		tcp:   &dns.Client{Net: "tcp", Timeout: upstreamTimeout},
		sem:   make(chan struct{}, maxInflight),
	}
	for _, u := range upstreams {
		hp, err := upstreamAddr(u)
		if err != nil {
			return nil, fmt.Errorf("dns: [DNS] Upstream=%s: %w", u, err)
		}
		f.upstreams = append(f.upstreams, hp)
	}
	return f, nil
}

// upstreamAddr accepts "addr" or "host:port" and returns host:port.
func upstreamAddr(s string) (string, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, 53).String(), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("not an address or host:port: %w", err)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return "", fmt.Errorf("%q is not an IP address (a resolver cannot be named by a name it would resolve)", host)
	}
	return net.JoinHostPort(host, port), nil
}

// resolve answers r from the cache or the upstreams. The reply has r's ID
// and question; its OPT record is left for the caller to set.
func (f *forwarder) resolve(ctx context.Context, r *dns.Msg) (*dns.Msg, bool, error) {
	q := r.Question[0]
	key := questionKey(r)
	if m := f.cache.get(key); m != nil {
		return reply(r, m), true, nil
	}
	select {
	case f.sem <- struct{}{}:
		defer func() { <-f.sem }()
	default:
		return nil, false, errBusy
	}
	up := new(dns.Msg)
	up.SetQuestion(strings.ToLower(q.Name), q.Qtype)
	up.Question[0].Qclass = q.Qclass
	up.RecursionDesired = r.RecursionDesired
	up.CheckingDisabled = r.CheckingDisabled
	do := false
	if opt := r.IsEdns0(); opt != nil {
		do = opt.Do()
	}
	up.SetEdns0(ednsSize, do)
	var errs []error
	for _, addr := range f.upstreams {
		m, err := f.exchange(ctx, up, addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if m.Rcode == dns.RcodeServerFailure || m.Rcode == dns.RcodeRefused {
			errs = append(errs, fmt.Errorf("%s: %s", addr, dns.RcodeToString[m.Rcode]))
			continue
		}
		stripOPT(m)
		f.cache.put(key, m)
		return reply(r, m), false, nil
	}
	return nil, false, fmt.Errorf("forward %s %s: %w", q.Name, dns.TypeToString[q.Qtype], errors.Join(errs...))
}

// cached answers r from the cache alone, or returns nil: it never waits,
// so the UDP read loop asks it before handing r to its slow path.
func (f *forwarder) cached(r *dns.Msg) *dns.Msg {
	if m := f.cache.get(questionKey(r)); m != nil {
		return reply(r, m)
	}
	return nil
}

// questionKey is the cache key of r's question.
func questionKey(r *dns.Msg) string {
	do := false
	if opt := r.IsEdns0(); opt != nil {
		do = opt.Do()
	}
	return cacheKey(r.Question[0], do, r.CheckingDisabled)
}

func (f *forwarder) exchange(ctx context.Context, m *dns.Msg, addr string) (*dns.Msg, error) {
	in, err := exchangeCancel(ctx, f.udp, m, addr)
	if err == nil && in.Truncated {
		in, err = exchangeCancel(ctx, f.tcp, m, addr)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	if len(in.Question) != 1 || !strings.EqualFold(in.Question[0].Name, m.Question[0].Name) || in.Question[0].Qtype != m.Question[0].Qtype {
		return nil, fmt.Errorf("%s: answer for another question", addr)
	}
	return in, nil
}

// exchangeCancel is c.ExchangeContext that also ends when ctx is cancelled
// (miekg/dns only takes ctx's deadline): closing the service must not wait
// for a silent upstream.
func exchangeCancel(ctx context.Context, c *dns.Client, m *dns.Msg, addr string) (*dns.Msg, error) {
	co, err := c.DialContext(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer co.Close()
	stop := context.AfterFunc(ctx, func() { co.Close() })
	defer stop()
	in, _, err := c.ExchangeWithConnContext(ctx, m, co)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return in, err
}

// reply turns an upstream answer into the answer to r.
func reply(r, m *dns.Msg) *dns.Msg {
	out := m.Copy()
	out.Id = r.Id
	out.Question = r.Question
	out.Response = true
	out.RecursionDesired = r.RecursionDesired
	out.RecursionAvailable = true
	out.Authoritative = false
	return out
}

func stripOPT(m *dns.Msg) {
	extra := m.Extra[:0]
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	m.Extra = extra
}
