package dhcp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"amtd/daemon/config"
)

// defaultLeaseTime is short on purpose: AMT learns option 15 only from a DHCP
// exchange it observes, so short leases make it see one soon
// (spec/network.md §1.1).
const defaultLeaseTime = 10 * time.Minute

// policy is everything the handler decides from configuration: pools,
// reservations and options. It is immutable once built, so Reload builds a new
// one aside, validates it, and swaps the pointer (leases are kept).
type policy struct {
	pools         []*pool
	reservations  map[string]config.DHCPReservation // by string(MAC)
	reservedBy    map[netip.Addr]string             // reserved address → string(MAC)
	authoritative bool
	updateDNS     bool
	interfaces    []string
	siteDomains   []string // lower case, no trailing dot
	warnings      []string // shown in Status(), logged at warn on build
}

// pool is one [DHCPPool] with its options resolved.
type pool struct {
	subnet    netip.Prefix
	ranges    []config.AddrRange
	mask      net.IPMask
	routers   []net.IP
	dns       []net.IP
	domain    string // option 15, no trailing dot
	leaseTime time.Duration
	size      int
}

func (p *pool) inRanges(a netip.Addr) bool {
	for _, r := range p.ranges {
		if r.Start.Compare(a) <= 0 && a.Compare(r.End) <= 0 {
			return true
		}
	}
	return false
}

// newPolicy validates cfg and resolves every default. Errors name the
// [DHCPPool] or [DHCPReservation] line and say what to change.
func newPolicy(cfg *config.Config) (*policy, error) {
	d := cfg.DHCP
	p := &policy{
		reservations:  map[string]config.DHCPReservation{},
		reservedBy:    map[netip.Addr]string{},
		authoritative: d.Authoritative,
		updateDNS:     d.UpdateDNS,
		interfaces:    d.Interfaces,
	}
	for _, dom := range cfg.Site.Domains {
		p.siteDomains = append(p.siteDomains, normDomain(dom))
	}
	if len(cfg.DHCPPools) == 0 {
		return nil, errors.New("dhcp: no [DHCPPool] configured: add a [DHCPPool] section with Subnet= and Range=, or set [DHCP] Enable=no")
	}
	defaultDNS := d.DNS
	if len(defaultDNS) == 0 {
		for _, a := range cfg.Site.Addresses {
			if a.Is4() {
				defaultDNS = append(defaultDNS, a)
			}
		}
	}
	lease := d.LeaseTime
	if lease <= 0 {
		lease = defaultLeaseTime
	}
	for i, pc := range cfg.DHCPPools {
		where := fmt.Sprintf("[DHCPPool] #%d (line %d)", i+1, pc.Line)
		if !pc.Subnet.IsValid() || !pc.Subnet.Addr().Is4() {
			return nil, fmt.Errorf("dhcp: %s: Subnet=%s is not an IPv4 prefix such as 192.0.2.0/24", where, pc.Subnet)
		}
		subnet := pc.Subnet.Masked()
		if subnet.Bits() > 30 {
			return nil, fmt.Errorf("dhcp: %s: Subnet=%s leaves no room for clients; use /30 or larger", where, subnet)
		}
		for _, other := range p.pools {
			if other.subnet.Overlaps(subnet) {
				return nil, fmt.Errorf("dhcp: %s: Subnet=%s overlaps %s; each link needs its own subnet", where, subnet, other.subnet)
			}
		}
		if len(pc.Ranges) == 0 {
			return nil, fmt.Errorf("dhcp: %s: no Range=; add Range=START-END inside %s", where, subnet)
		}
		np := &pool{subnet: subnet, ranges: pc.Ranges, mask: net.CIDRMask(subnet.Bits(), 32), leaseTime: pc.LeaseTime}
		for _, r := range pc.Ranges {
			if !subnet.Contains(r.Start) || !subnet.Contains(r.End) || r.End.Less(r.Start) {
				return nil, fmt.Errorf("dhcp: %s: Range=%s-%s is not an ascending range inside %s", where, r.Start, r.End, subnet)
			}
			if n := rangeSize(r); n > 1<<20 {
				return nil, fmt.Errorf("dhcp: %s: Range=%s-%s has %d addresses; at most %d per range", where, r.Start, r.End, n, 1<<20)
			} else {
				np.size += n
			}
		}
		if np.leaseTime <= 0 {
			np.leaseTime = lease
		}
		for _, r := range pc.Routers {
			np.routers = append(np.routers, r.AsSlice())
		}
		dns := pc.DNS
		if len(dns) == 0 {
			dns = defaultDNS
		}
		for _, a := range dns {
			if a.Is4() {
				np.dns = append(np.dns, a.AsSlice())
			}
		}
		np.domain = normDomain(pc.Domain)
		if np.domain == "" && len(p.siteDomains) > 0 {
			np.domain = p.siteDomains[0]
		}
		if np.domain == "" {
			return nil, fmt.Errorf("dhcp: %s: no domain for option 15: set [Site] Domain= or Domain= in the pool (AMT needs option 15, spec/network.md §1)", where)
		}
		if strings.HasSuffix(np.domain, ".local") || strings.HasSuffix(np.domain, ".corp") {
			p.warnings = append(p.warnings, fmt.Sprintf("%s serves option 15 %q: an internal suffix cannot match a purchased provisioning certificate (spec/network.md §1.2)", where, np.domain))
		}
		p.pools = append(p.pools, np)
	}
	for _, r := range cfg.Reservations {
		mac := string(r.MAC[:])
		hw := net.HardwareAddr(r.MAC[:])
		where := fmt.Sprintf("[DHCPReservation] %s (line %d)", hw, r.Line)
		if _, dup := p.reservations[mac]; dup {
			return nil, fmt.Errorf("dhcp: %s: MACAddress= reserved twice; keep one section per device", where)
		}
		if other, dup := p.reservedBy[r.Address]; dup {
			return nil, fmt.Errorf("dhcp: %s: Address=%s is already reserved for %s", where, r.Address, net.HardwareAddr(other))
		}
		if p.poolFor(r.Address) == nil {
			return nil, fmt.Errorf("dhcp: %s: Address=%s is in no [DHCPPool] Subnet=; add the pool or fix the address", where, r.Address)
		}
		if r.Hostname != "" && hostLabel(r.Hostname) == "" {
			return nil, fmt.Errorf("dhcp: %s: Hostname=%q is not a host name (letters, digits, hyphens)", where, r.Hostname)
		}
		p.reservations[mac] = r
		p.reservedBy[r.Address] = mac
	}
	for _, pl := range p.pools {
		if w := detectionWarning(pl.domain, detectionStrings(cfg)); w != "" {
			p.warnings = append(p.warnings, w)
		}
	}
	return p, nil
}

// poolFor returns the pool whose subnet contains a, or nil.
func (p *policy) poolFor(a netip.Addr) *pool {
	for _, pl := range p.pools {
		if pl.subnet.Contains(a) {
			return pl
		}
	}
	return nil
}

func rangeSize(r config.AddrRange) int {
	s, e := r.Start.As4(), r.End.As4()
	return int(be32(e[:])-be32(s[:])) + 1
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// normDomain lower-cases a domain and drops the trailing dot.
func normDomain(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
}

// hostLabel turns a client-supplied host name into one DNS label (letters,
// digits, hyphens; at most 63), or "" when nothing usable is left. Clients
// send anything in option 12; only the first label is ever used.
func hostLabel(s string) string {
	s, _, _ = strings.Cut(strings.ToLower(s), ".")
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
			b.WriteByte(c)
		case c == '_' || c == ' ':
			b.WriteByte('-')
		}
	}
	l := strings.Trim(b.String(), "-")
	if len(l) > 63 {
		l = strings.TrimRight(l[:63], "-")
	}
	return l
}
