package dns

import (
	"sync"

	"github.com/miekg/dns"
)

// dynamic holds what accepted RFC 2136 updates added besides addresses
// (addresses go to netsvc.Hosts, where DHCP's names live too), and which
// names got their addresses from an update rather than from a DHCP lease:
// an unsigned update may move its own name to a new address, never take a
// name a lease holds (spec/network.md §4).
type dynamic struct {
	mu    sync.RWMutex
	rrs   map[string][]dns.RR // by canonical owner name
	owned map[string]bool     // names whose addresses came from an update
}

func newDynamic() *dynamic {
	return &dynamic{rrs: map[string][]dns.RR{}, owned: map[string]bool{}}
}

func (d *dynamic) get(name string) []dns.RR {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.rrs[name]
}

func (d *dynamic) set(name string, rrs []dns.RR) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(rrs) == 0 {
		delete(d.rrs, name)
		return
	}
	d.rrs[name] = rrs
}

func (d *dynamic) isOwned(name string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.owned[name]
}

func (d *dynamic) setOwned(name string, owned bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if owned {
		d.owned[name] = true
	} else {
		delete(d.owned, name)
	}
}

func (d *dynamic) len() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.rrs) + len(d.owned)
}
