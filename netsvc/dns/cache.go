package dns

import (
	"container/list"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// cache holds forwarded answers for as long as their TTL says, at most
// maxEntries of them (least recently used evicted). Negative answers are
// cached for the SOA's negative TTL (RFC 2308 §5), and not at all without a
// SOA. No entry outlives maxCacheTTL, so a bad upstream answer heals.
type cache struct {
	maxEntries int
	now        func() time.Time

	mu    sync.Mutex
	items map[string]*list.Element
	lru   list.List // of *cacheEntry, most recent at the front
}

type cacheEntry struct {
	key     string
	msg     *dns.Msg
	stored  time.Time
	expires time.Time
}

const maxCacheTTL = time.Hour

// newCache returns a cache of size entries, or nil (no caching) for 0.
func newCache(size int, now func() time.Time) *cache {
	if size <= 0 {
		return nil
	}
	return &cache{maxEntries: size, now: now, items: map[string]*list.Element{}}
}

// cacheKey names a question and the flags that change the answer.
func cacheKey(q dns.Question, do, cd bool) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(q.Name))
	b.WriteByte('/')
	b.WriteString(strconv.Itoa(int(q.Qtype)))
	b.WriteByte('/')
	b.WriteString(strconv.Itoa(int(q.Qclass)))
	if do {
		b.WriteString("/do")
	}
	if cd {
		b.WriteString("/cd")
	}
	return b.String()
}

// get returns a copy of the cached answer with its TTLs counted down, or nil.
func (c *cache) get(key string) *dns.Msg {
	if c == nil {
		return nil
	}
	now := c.now()
	c.mu.Lock()
	e, ok := c.items[key]
	if !ok {
		c.mu.Unlock()
		return nil
	}
	ent := e.Value.(*cacheEntry)
	if !now.Before(ent.expires) {
		c.lru.Remove(e)
		delete(c.items, key)
		c.mu.Unlock()
		return nil
	}
	c.lru.MoveToFront(e)
	c.mu.Unlock()
	m := ent.msg.Copy()
	age := uint32(now.Sub(ent.stored) / time.Second)
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if h := rr.Header(); h.Rrtype != dns.TypeOPT {
				h.Ttl -= min(age, h.Ttl)
			}
		}
	}
	return m
}

// put stores m if it is cacheable.
func (c *cache) put(key string, m *dns.Msg) {
	if c == nil {
		return
	}
	ttl, ok := cacheTTL(m)
	if !ok || ttl <= 0 {
		return
	}
	now := c.now()
	ent := &cacheEntry{key: key, msg: m.Copy(), stored: now, expires: now.Add(ttl)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		e.Value = ent
		c.lru.MoveToFront(e)
		return
	}
	if len(c.items) >= c.maxEntries {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.items, old.Value.(*cacheEntry).key)
	}
	c.items[key] = c.lru.PushFront(ent)
}

func (c *cache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

// cacheTTL returns how long m may be cached: the smallest TTL of its
// answer, or for a negative answer (NXDOMAIN, or NOERROR with no answer)
// min(SOA TTL, SOA MINIMUM) per RFC 2308 §5. Other rcodes, and negative
// answers without a SOA, are not cached.
func cacheTTL(m *dns.Msg) (time.Duration, bool) {
	if m.Truncated {
		return 0, false
	}
	negative := m.Rcode == dns.RcodeNameError || (m.Rcode == dns.RcodeSuccess && len(m.Answer) == 0)
	if negative {
		for _, rr := range m.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				return min(time.Duration(min(soa.Hdr.Ttl, soa.Minttl))*time.Second, maxCacheTTL), true
			}
		}
		return 0, false
	}
	if m.Rcode != dns.RcodeSuccess {
		return 0, false
	}
	ttl := uint32(maxCacheTTL / time.Second)
	for _, rr := range m.Answer {
		ttl = min(ttl, rr.Header().Ttl)
	}
	return time.Duration(ttl) * time.Second, true
}
