package cira

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"amtd/metrics"
	"amtd/store"
)

// registry holds the authenticated links, one per device: when a UUID
// authenticates while another connection holds it, the newer one wins and
// the older is told to go (spec/apf.md §4 step 9). Link state is kept in
// memory and written to the store in batches by flush.
type registry struct {
	mu    sync.Mutex
	links map[string]*session  // by UUID
	dirty map[string]linkState // changed since the last flush, by UUID
	gauge *metrics.Gauge       // links now; set by the service
}

// seenWriteInterval is how far a link's last-seen time may run ahead of the
// store's before a keep-alive alone puts the link in the next flush. AMT
// sends a keep-alive every 30 s; writing each one is the heaviest load on
// the store at scale (spec/apf.md §10: 100,000 devices would mean 3,300
// rows a second). For a connected device the store's last_seen so lags by
// at most this plus flushInterval; connected already says the device was
// heard within IdleTimeout, and the disconnect writes the exact time.
const seenWriteInterval = 5 * time.Minute

// linkState is what is written for one device.
type linkState struct {
	connected        bool
	since, seen      time.Time
	lastDisconnected time.Time
	ports            []uint16
	remote           string
}

func newRegistry() *registry {
	return &registry{links: map[string]*session{}, dirty: map[string]linkState{}}
}

// add registers s as uuid's link and returns the session it replaces, if any.
func (r *registry) add(s *session) (old *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old = r.links[s.uuid]
	r.links[s.uuid] = s
	r.queueLocked(s)
	r.setGaugeLocked()
	return old
}

// remove unregisters s, unless a newer session holds the UUID by now: close
// and timeout handlers update state only if the session is still the
// registered one (spec/apf.md §4 step 9).
func (r *registry) remove(s *session, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.links[s.uuid] != s {
		return
	}
	delete(r.links, s.uuid)
	r.setGaugeLocked()
	st := s.stateLocked()
	st.connected, st.ports, st.lastDisconnected = false, nil, at
	r.dirty[s.uuid] = st
}

func (r *registry) setGaugeLocked() {
	if r.gauge != nil {
		r.gauge.Set(float64(len(r.links)))
	}
}

// touch records s's current state (a bound port) for the next flush, if s
// is the registered link.
func (r *registry) touch(s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.links[s.uuid] == s {
		r.queueLocked(s)
	}
}

// heard records that s sent a keep-alive: its state goes to the next flush
// only if the last-seen time written is seenWriteInterval old.
func (r *registry) heard(s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.links[s.uuid] != s {
		return
	}
	if _, queued := r.dirty[s.uuid]; queued {
		r.queueLocked(s) // the row goes anyway: with the newest time
		return
	}
	s.mu.Lock()
	due := s.seen.Sub(s.seenQueued) >= seenWriteInterval
	s.mu.Unlock()
	if due {
		r.queueLocked(s)
	}
}

// queueLocked puts s's state in the next flush.
func (r *registry) queueLocked(s *session) {
	st := s.stateLocked()
	s.mu.Lock()
	s.seenQueued = st.seen
	s.mu.Unlock()
	r.dirty[s.uuid] = st
}

func (r *registry) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.links)
}

func (r *registry) get(uuid string) *session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.links[uuid]
}

// take returns the changes since the last call as store rows.
func (r *registry) take(owner string) []store.CIRALink {
	r.mu.Lock()
	dirty := r.dirty
	r.dirty = map[string]linkState{}
	r.mu.Unlock()
	out := make([]store.CIRALink, 0, len(dirty))
	for uuid, st := range dirty {
		l := store.CIRALink{UUID: uuid, Connected: st.connected, ConnectedSince: st.since, LastSeen: st.seen,
			LastDisconnected: st.lastDisconnected, BoundPorts: st.ports, RemoteAddr: st.remote}
		if st.connected {
			l.Owner = owner
		}
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b store.CIRALink) int { return strings.Compare(a.UUID, b.UUID) })
	return out
}

// requeue puts rows that failed to write back, unless newer state arrived.
func (r *registry) requeue(links []store.CIRALink) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range links {
		if _, newer := r.dirty[l.UUID]; newer {
			continue
		}
		r.dirty[l.UUID] = linkState{connected: l.Connected, since: l.ConnectedSince, seen: l.LastSeen,
			lastDisconnected: l.LastDisconnected, ports: l.BoundPorts, remote: l.RemoteAddr}
	}
}

// flush writes the pending changes; on failure they are kept for the next try.
func (s *Service) flush(ctx context.Context) error {
	links := s.reg.take(s.instance)
	if len(links) == 0 {
		return nil
	}
	if err := s.dir.PutLinks(ctx, links); err != nil {
		s.reg.requeue(links)
		s.storeErrors.Inc()
		return err
	}
	s.linkWrites.Add(float64(len(links)))
	return nil
}
