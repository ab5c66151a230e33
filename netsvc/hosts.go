package netsvc

import (
	"net/netip"
	"strings"
	"sync"
)

// Hosts is the table of host names the site's DNS answers for: DHCP writes the
// names of leased hosts (option 12/81), accepted RFC 2136 updates write theirs,
// and the DNS handler reads it on every query. It is the "injected, lock-guarded
// view of state" of ../shared/STYLE.md: handlers stay short functions over it.
//
// Names are stored fully qualified, lower case, with a trailing dot.
type Hosts struct {
	mu     sync.RWMutex
	byName map[string][]netip.Addr
	byAddr map[netip.Addr]string
}

// NewHosts returns an empty table.
func NewHosts() *Hosts {
	return &Hosts{byName: map[string][]netip.Addr{}, byAddr: map[netip.Addr]string{}}
}

// Canonical lower-cases name and adds the trailing dot.
func Canonical(name string) string {
	name = strings.ToLower(name)
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name
}

// Set makes name resolve to exactly addrs, and each of addrs resolve back to
// name, replacing what name and those addresses had before.
func (h *Hosts) Set(name string, addrs ...netip.Addr) {
	name = Canonical(name)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(name)
	for _, a := range addrs {
		if old, ok := h.byAddr[a]; ok && old != name {
			h.byName[old] = remove(h.byName[old], a)
			if len(h.byName[old]) == 0 {
				delete(h.byName, old)
			}
		}
		h.byAddr[a] = name
	}
	if len(addrs) > 0 {
		h.byName[name] = append([]netip.Addr(nil), addrs...)
	}
}

// Remove deletes name and its addresses' reverse entries.
func (h *Hosts) Remove(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(Canonical(name))
}

func (h *Hosts) removeLocked(name string) {
	for _, a := range h.byName[name] {
		if h.byAddr[a] == name {
			delete(h.byAddr, a)
		}
	}
	delete(h.byName, name)
}

// Lookup returns the addresses of name (any case, with or without the trailing dot).
func (h *Hosts) Lookup(name string) []netip.Addr {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.byName[Canonical(name)]
}

// Reverse returns the name an address belongs to, or "".
func (h *Hosts) Reverse(a netip.Addr) string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.byAddr[a]
}

// Len returns the number of names.
func (h *Hosts) Len() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.byName)
}

func remove(s []netip.Addr, a netip.Addr) []netip.Addr {
	out := s[:0]
	for _, x := range s {
		if x != a {
			out = append(out, x)
		}
	}
	return out
}
