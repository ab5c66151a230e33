package dhcp

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Lease states, as the store records them.
const (
	StateOffered  = "offered"
	StateBound    = "bound"
	StateDeclined = "declined"
	StateReleased = "released"
)

// Lease is one client's address, as persisted.
type Lease struct {
	MAC        net.HardwareAddr
	IP         netip.Addr
	Hostname   string // option 12 as sent
	ClientFQDN string // option 81 name as sent
	Expires    time.Time
	State      string
}

// LeaseStore persists leases across restarts (the store's Leases table; see
// storeLeases). Put upserts by MAC.
type LeaseStore interface {
	Put(ctx context.Context, l Lease) error
	Delete(ctx context.Context, mac net.HardwareAddr) error
	All(ctx context.Context) ([]Lease, error)
	ExpireBefore(ctx context.Context, t time.Time) (int, error)
}

// MemoryLeases is a LeaseStore kept in memory, for a daemon built without a
// store and for tests that model a restart by handing the same one to a
// second Service.
type MemoryLeases struct {
	mu sync.Mutex
	m  map[string]Lease
}

// NewMemoryLeases returns an empty MemoryLeases.
func NewMemoryLeases() *MemoryLeases { return &MemoryLeases{m: map[string]Lease{}} }

// Put implements LeaseStore.
func (m *MemoryLeases) Put(_ context.Context, l Lease) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	l.MAC = append(net.HardwareAddr(nil), l.MAC...)
	m.m[string(l.MAC)] = l
	return nil
}

// Delete implements LeaseStore.
func (m *MemoryLeases) Delete(_ context.Context, mac net.HardwareAddr) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, string(mac))
	return nil
}

// All implements LeaseStore.
func (m *MemoryLeases) All(context.Context) ([]Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Lease, 0, len(m.m))
	for _, l := range m.m {
		out = append(out, l)
	}
	return out, nil
}

// ExpireBefore implements LeaseStore.
func (m *MemoryLeases) ExpireBefore(_ context.Context, t time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k, l := range m.m {
		if l.Expires.Before(t) {
			delete(m.m, k)
			n++
		}
	}
	return n, nil
}

// lease is the in-memory record; table is guarded by the server's mutex.
type lease struct {
	mac      string // string(chaddr)
	ip       netip.Addr
	hostname string
	fqdn     string
	dnsName  string // the name registered in netsvc.Hosts, "" if none
	expires  time.Time
	state    string
}

func (l *lease) export() Lease {
	return Lease{MAC: net.HardwareAddr(l.mac), IP: l.ip, Hostname: l.hostname, ClientFQDN: l.fqdn, Expires: l.expires, State: l.state}
}

type table struct {
	byMAC    map[string]*lease
	byIP     map[netip.Addr]*lease
	declined map[netip.Addr]time.Time // address → until
	cursor   map[netip.Prefix]netip.Addr
}

func newTable() *table {
	return &table{byMAC: map[string]*lease{}, byIP: map[netip.Addr]*lease{}, declined: map[netip.Addr]time.Time{}, cursor: map[netip.Prefix]netip.Addr{}}
}

func (t *table) put(l *lease) {
	if old := t.byMAC[l.mac]; old != nil && old != l && t.byIP[old.ip] == old {
		delete(t.byIP, old.ip)
	}
	if other := t.byIP[l.ip]; other != nil && other != l {
		delete(t.byMAC, other.mac)
	}
	t.byMAC[l.mac] = l
	t.byIP[l.ip] = l
}

func (t *table) remove(l *lease) {
	if t.byMAC[l.mac] == l {
		delete(t.byMAC, l.mac)
	}
	if t.byIP[l.ip] == l {
		delete(t.byIP, l.ip)
	}
}

// bound counts unexpired bound leases.
func (t *table) bound(now time.Time) int {
	n := 0
	for _, l := range t.byMAC {
		if l.state == StateBound && now.Before(l.expires) {
			n++
		}
	}
	return n
}
