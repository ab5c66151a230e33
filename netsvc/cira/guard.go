package cira

import (
	"net/netip"
	"sync"
	"time"
)

// Admission limits for connections that have not authenticated yet. Every
// such connection holds a goroutine, a socket, TLS state and up to one APF
// message buffer, and an authentication costs an argon2id hash of 19 MiB
// (store.hashMPS), so a flood must not be able to multiply them.
const (
	maxUnauthTotal     = 256 // unauthenticated connections in all
	maxUnauthPerSource = 16  // per source address; a NATed site shares one
	maxAuthChecks      = 4   // argon2id checks running at once
	// preAuthTimeout bounds the TLS handshake plus the APF exchange up to
	// USERAUTH_SUCCESS. AMT does all of it in well under a second.
	preAuthTimeout = 30 * time.Second
	// handshakeTimeout bounds the first bytes and the TLS handshake, a
	// part of preAuthTimeout: a flood of half-open handshakes frees the
	// maxUnauthTotal places three times as fast, so new logins are refused
	// for a shorter time while connected devices are untouched either way.
	handshakeTimeout = 10 * time.Second
	// writeTimeout bounds any one write to a device.
	writeTimeout = 30 * time.Second
)

// Failed-authentication backoff (spec/apf.md §5: "apply per-UUID and per-IP
// backoff"). A source may fail a few times freely (one NAT address may hide
// several devices, one of them misconfigured); after that, and for a UUID
// after its first failure, new attempts are refused without checking until
// the delay, doubling per failure, has passed.
const (
	sourceFreeFailures = 5
	backoffMin         = 2 * time.Second
	backoffMax         = 5 * time.Minute
	// A key's failures are forgotten after this long without one.
	backoffForget = 30 * time.Minute
	// backoffEntries bounds each table; a spray of sources cannot grow it.
	backoffEntries = 4096
)

// gate counts unauthenticated connections in total and per source.
type gate struct {
	mu       sync.Mutex
	total    int
	bySource map[netip.Addr]int
}

func newGate() *gate { return &gate{bySource: map[netip.Addr]int{}} }

// enter admits one more unauthenticated connection from src, or says which
// limit stops it.
func (g *gate) enter(src netip.Addr) (ok bool, why string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.total >= maxUnauthTotal {
		return false, "too_many"
	}
	if g.bySource[src] >= maxUnauthPerSource {
		return false, "too_many_from_source"
	}
	g.total++
	g.bySource[src]++
	return true, ""
}

// leave undoes one enter.
func (g *gate) leave(src netip.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total--
	if g.bySource[src]--; g.bySource[src] <= 0 {
		delete(g.bySource, src)
	}
}

// backoff remembers recent authentication failures per key (a source
// address or a UUID).
type backoff[K comparable] struct {
	free int // failures allowed before the backoff starts
	now  func() time.Time

	mu sync.Mutex
	m  map[K]*failures
}

type failures struct {
	n     int
	last  time.Time
	until time.Time
}

func newBackoff[K comparable](free int, now func() time.Time) *backoff[K] {
	return &backoff[K]{free: free, now: now, m: map[K]*failures{}}
}

// blocked reports whether k must wait, and until when.
func (b *backoff[K]) blocked(k K) (bool, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.m[k]
	if f == nil {
		return false, time.Time{}
	}
	now := b.now()
	if now.Sub(f.last) > backoffForget {
		delete(b.m, k)
		return false, time.Time{}
	}
	return now.Before(f.until), f.until
}

// fail records one failure of k.
func (b *backoff[K]) fail(k K) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	f := b.m[k]
	if f == nil {
		if len(b.m) >= backoffEntries {
			b.pruneLocked(now)
		}
		f = &failures{}
		b.m[k] = f
	}
	f.n++
	f.last = now
	if over := f.n - b.free; over > 0 {
		d := backoffMin << min(over-1, 16)
		f.until = now.Add(min(d, backoffMax))
	}
}

// succeed forgets k's failures.
func (b *backoff[K]) succeed(k K) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, k)
}

// pruneLocked drops forgotten entries, and if the table is still full, every
// entry not currently blocked: a flood of new keys must not grow it.
func (b *backoff[K]) pruneLocked(now time.Time) {
	for k, f := range b.m {
		if now.Sub(f.last) > backoffForget {
			delete(b.m, k)
		}
	}
	if len(b.m) < backoffEntries {
		return
	}
	for k, f := range b.m {
		if !now.Before(f.until) {
			delete(b.m, k)
		}
	}
	if len(b.m) >= backoffEntries {
		clear(b.m) // all blocked: start over rather than grow
	}
}

func (b *backoff[K]) len() int { // for tests
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}
