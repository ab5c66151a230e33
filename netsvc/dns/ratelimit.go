package dns

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// verdict is what response rate limiting decides for one response.
type verdict int

const (
	allow verdict = iota
	drop          // send nothing
	slip          // send an empty reply with TC=1: a real client retries over TCP, a spoofed victim gets no amplification
)

// limiter is response rate limiting in the manner of BIND's RRL: a token
// bucket per client network (/24 for IPv4, /56 for IPv6, so one attacker
// cannot spread over its neighbours' addresses), refilled at rate per
// second up to one second's worth. Past the limit responses are dropped,
// and every slipEvery-th one is answered truncated. The table holds at most
// maxEntries networks, least recently seen evicted first, so a spoofed
// flood from many networks costs bounded memory.
type limiter struct {
	rate       float64
	burst      float64
	slipEvery  int
	maxEntries int
	v4, v6     int // prefix lengths
	now        func() time.Time

	mu    sync.Mutex
	table map[netip.Prefix]*list.Element
	lru   list.List // of *bucket, most recent at the front
}

type bucket struct {
	key     netip.Prefix
	tokens  float64
	last    time.Time
	dropped int
}

// BIND's defaults: slip 2, and a table size in the tens of thousands.
const (
	rrlSlip       = 2
	rrlMaxEntries = 16384
)

// newLimiter returns a limiter of rate responses per second per network,
// allowing bursts of burst, or nil (no limiting) when rate is 0.
func newLimiter(rate, burst int, v4, v6 int, now func() time.Time) *limiter {
	if rate <= 0 {
		return nil
	}
	return &limiter{
		rate: float64(rate), burst: float64(max(rate, burst)), slipEvery: rrlSlip, maxEntries: rrlMaxEntries,
		v4: v4, v6: v6, now: now, table: map[netip.Prefix]*list.Element{},
	}
}

// check spends one token for a response to a.
func (l *limiter) check(a netip.Addr) verdict {
	if l == nil {
		return allow
	}
	a = a.Unmap()
	bits := l.v4
	if a.Is6() {
		bits = l.v6
	}
	key, _ := a.Prefix(bits)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var b *bucket
	if e, ok := l.table[key]; ok {
		l.lru.MoveToFront(e)
		b = e.Value.(*bucket)
		b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
		b.last = now
	} else {
		if len(l.table) >= l.maxEntries {
			old := l.lru.Back()
			l.lru.Remove(old)
			delete(l.table, old.Value.(*bucket).key)
		}
		b = &bucket{key: key, tokens: l.burst, last: now}
		l.table[key] = l.lru.PushFront(b)
	}
	if b.tokens >= 1 {
		b.tokens--
		return allow
	}
	b.dropped++
	if l.slipEvery > 0 && b.dropped%l.slipEvery == 0 {
		return slip
	}
	return drop
}

func (l *limiter) len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.table)
}
