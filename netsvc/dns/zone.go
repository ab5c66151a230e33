package dns

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"amtd/daemon/config"
	"amtd/netsvc"
)

// provisionLabel is the name AMT looks up in every suffix it knows, written
// ProvisionServer, provisionserver or Provisionserver by different sources
// (spec/network.md §2); matching is case-insensitive.
const provisionLabel = "provisionserver"

// zoneData is everything the authoritative side answers from except the live
// tables (netsvc.Hosts and the records added by RFC 2136 updates). It is built
// once per configuration, never changed after, and swapped whole on reload,
// so handlers read it without a lock.
type zoneData struct {
	forward     []string // site zones, canonical, longest first
	reverse     []string // in-addr.arpa / ip6.arpa zones, canonical, longest first
	hostname    string   // the appliance's FQDN: NS target and SOA MNAME
	addrs       []netip.Addr
	singleLabel bool
	ttl         uint32
	serial      uint32
	static      map[string][]dns.RR // by canonical owner name
	nonTerminal map[string]bool     // names that exist only because a static record is below them
}

// Defaults from amtd.conf(5) for a Config built without the parser.
const (
	defaultTTL    = 5 * time.Minute
	defaultListen = "0.0.0.0:53"
)

// newZoneData validates cfg and builds the zone snapshot. Every problem is an
// error naming the key, so a bad reload changes nothing.
func newZoneData(cfg *config.Config, now time.Time) (*zoneData, error) {
	z := &zoneData{
		singleLabel: cfg.DNS.SingleLabel,
		static:      map[string][]dns.RR{},
		nonTerminal: map[string]bool{},
		serial:      uint32(now.Unix()),
	}
	ttl := cfg.DNS.TTL
	if ttl == 0 {
		ttl = defaultTTL
	}
	if ttl < 0 || ttl > 7*24*time.Hour {
		return nil, fmt.Errorf("dns: [DNS] TTL=%s is out of range (0s to 168h)", ttl)
	}
	z.ttl = uint32(ttl / time.Second)
	if len(cfg.Site.Domains) == 0 {
		return nil, fmt.Errorf("dns: [Site] Domain= is required: the DNS service is authoritative for it")
	}
	// The suffixes AMT learns are the site domains and every pool's option
	// 15, so ProvisionServer must resolve under each (spec/network.md §2).
	suffixes := slices.Clone(cfg.Site.Domains)
	for _, p := range cfg.DHCPPools {
		if p.Domain != "" {
			suffixes = append(suffixes, p.Domain)
		}
	}
	for _, d := range suffixes {
		name := netsvc.Canonical(d)
		if _, ok := dns.IsDomainName(name); !ok || name == "." {
			return nil, fmt.Errorf("dns: domain %q is not a valid DNS name", d)
		}
		if !slices.Contains(z.forward, name) {
			z.forward = append(z.forward, name)
		}
	}
	z.hostname = netsvc.Canonical(cfg.Site.Hostname)
	if cfg.Site.Hostname == "" {
		z.hostname = "amtd." + z.forward[0]
	}
	if _, ok := dns.IsDomainName(z.hostname); !ok {
		return nil, fmt.Errorf("dns: [Site] Hostname=%q is not a valid DNS name", cfg.Site.Hostname)
	}
	if len(cfg.Site.Addresses) == 0 {
		return nil, fmt.Errorf("dns: [Site] Address= is required: ProvisionServer resolves to it")
	}
	for _, a := range cfg.Site.Addresses {
		z.addrs = append(z.addrs, a.Unmap())
	}
	var prefixes []netip.Prefix
	for _, p := range cfg.DHCPPools {
		prefixes = append(prefixes, p.Subnet)
	}
	for _, a := range z.addrs {
		bits := 24
		if a.Is6() {
			bits = 64
		}
		p, _ := a.Prefix(bits)
		prefixes = append(prefixes, p)
	}
	for _, p := range prefixes {
		for _, r := range reverseZones(p) {
			if !slices.Contains(z.reverse, r) {
				z.reverse = append(z.reverse, r)
			}
		}
	}
	longestFirst := func(a, b string) int { return dns.CountLabel(b) - dns.CountLabel(a) }
	slices.SortStableFunc(z.forward, longestFirst)
	slices.SortStableFunc(z.reverse, longestFirst)
	for _, r := range cfg.DNSRecords {
		rr, err := staticRR(r, z.ttl)
		if err != nil {
			return nil, fmt.Errorf("dns: line %d: [DNS] Record=%s %s %s: %w", r.Line, r.Name, r.Type, r.Value, err)
		}
		name := rr.Header().Name
		if z.zoneOf(name) == "" {
			return nil, fmt.Errorf("dns: line %d: [DNS] Record=%s is outside the zones amtd serves (%s); add the domain with [Site] Domain=",
				r.Line, r.Name, strings.Join(z.forward, ", "))
		}
		z.static[name] = append(z.static[name], rr)
	}
	for name, rrs := range z.static {
		if err := checkCNAME(name, rrs); err != nil {
			return nil, err
		}
		zone := z.zoneOf(name)
		for n := parent(name); n != "" && dns.CountLabel(n) > dns.CountLabel(zone); n = parent(n) {
			z.nonTerminal[n] = true
		}
	}
	return z, nil
}

// staticRR parses one [DNS] Record= line into a resource record.
func staticRR(r config.DNSRecord, ttl uint32) (dns.RR, error) {
	typ := strings.ToUpper(r.Type)
	switch typ {
	case "A", "AAAA", "CNAME", "TXT", "PTR":
	default:
		return nil, fmt.Errorf("type %q is not A, AAAA, CNAME, TXT or PTR", r.Type)
	}
	value := r.Value
	if typ == "TXT" && !strings.HasPrefix(value, `"`) {
		value = `"` + strings.ReplaceAll(value, `"`, `\"`) + `"`
	}
	rr, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", netsvc.Canonical(r.Name), ttl, typ, value))
	if err != nil {
		return nil, err
	}
	if rr == nil {
		return nil, fmt.Errorf("empty record")
	}
	rr.Header().Name = netsvc.Canonical(rr.Header().Name)
	return rr, nil
}

func checkCNAME(name string, rrs []dns.RR) error {
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeCNAME && len(rrs) > 1 {
			return fmt.Errorf("dns: [DNS] Record=%s: a CNAME cannot stand beside other records of the same name (RFC 1034 §3.6.2)", name)
		}
	}
	return nil
}

// reverseZones returns the reverse zones that cover p exactly: octet (IPv4)
// or nibble (IPv6) aligned, so a /22 becomes four /24 zones rather than one
// /16 that would claim addresses amtd knows nothing of. Prefixes that would
// need more than 256 zones are rounded to the covering boundary instead.
func reverseZones(p netip.Prefix) []string {
	p = p.Masked()
	step := 8
	if p.Addr().Is6() {
		step = 4
	}
	bits := (p.Bits() + step - 1) / step * step
	if bits == 0 {
		bits = step
	}
	// Longer than /24 in IPv4 (RFC 2317 territory): serve the /24.
	if p.Addr().Is4() && p.Bits() > 24 {
		bits = 24
		p = netip.PrefixFrom(p.Addr(), 24).Masked()
	}
	if bits-p.Bits() > 8 {
		bits = p.Bits() / step * step
		if bits == 0 {
			bits = step
		}
	}
	var out []string
	n := 1 << max(0, bits-p.Bits())
	a := p.Addr()
	for range n {
		sub := netip.PrefixFrom(a, bits)
		out = append(out, reverseName(sub))
		a = nextPrefixAddr(sub)
	}
	return out
}

// reverseName is the in-addr.arpa or ip6.arpa name of an aligned prefix.
func reverseName(p netip.Prefix) string {
	full := dns.Fqdn(mustReverse(p.Addr()))
	labels := dns.SplitDomainName(full)
	keep := p.Bits() / 8
	if p.Addr().Is6() {
		keep = p.Bits() / 4
	}
	all := len(labels) - 2 // without in-addr/ip6 and arpa
	return strings.Join(labels[all-keep:], ".") + "."
}

func mustReverse(a netip.Addr) string {
	r, err := dns.ReverseAddr(a.String())
	if err != nil {
		panic(err) // a netip.Addr always has a reverse name
	}
	return r
}

// nextPrefixAddr returns the first address after p.
func nextPrefixAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	// add 1 at bit position p.Bits()-1
	bit := p.Bits() - 1
	for i := bit / 8; i >= 0; i-- {
		inc := byte(1)
		if i == bit/8 {
			inc = 1 << (7 - bit%8)
		}
		s := b[i] + inc
		carry := s < b[i]
		b[i] = s
		if !carry {
			break
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// parent returns name without its first label, or "" for the root.
func parent(name string) string {
	i, end := dns.NextLabel(name, 0)
	if end {
		return ""
	}
	return name[i:]
}

// zoneOf returns the forward or reverse zone name belongs to (canonical
// name), or "".
func (z *zoneData) zoneOf(name string) string {
	for _, list := range [][]string{z.forward, z.reverse} {
		for _, zone := range list {
			if inZone(zone, name) {
				return zone
			}
		}
	}
	return ""
}

// inZone is dns.IsSubDomain(zone, name) for fully qualified names, without
// splitting either into labels: every query asks it, so it must not
// allocate. name ends in "."+zone with that dot not escaped, or is zone.
func inZone(zone, name string) bool {
	if zone == "." {
		return true
	}
	i := len(name) - len(zone) // where zone would start in name
	switch {
	case i < 0:
		return false
	case i == 0:
		return strings.EqualFold(name, zone)
	case name[i-1] != '.':
		return false
	}
	escapes := 0
	for j := i - 2; j >= 0 && name[j] == '\\'; j-- {
		escapes++
	}
	return escapes%2 == 0 && strings.EqualFold(name[i:], zone)
}

// isForward reports whether zone is one of the site's forward zones.
func (z *zoneData) isForward(zone string) bool { return slices.Contains(z.forward, zone) }

// provisionName reports whether name is ProvisionServer under a served
// suffix, or the single label when that is on.
func (z *zoneData) provisionName(name string) bool {
	if name == provisionLabel+"." {
		return z.singleLabel
	}
	first, rest, ok := strings.Cut(name, ".")
	return ok && first == provisionLabel && slices.Contains(z.forward, rest)
}

// reserved reports whether name is one amtd itself defines (apex,
// ProvisionServer, the appliance's own name, a static record): unsigned
// updates may not touch these (spec/network.md §2: secure the record against
// hijacking).
func (z *zoneData) reserved(name string) bool {
	return slices.Contains(z.forward, name) || z.provisionName(name) || name == z.hostname || len(z.static[name]) > 0 || z.nonTerminal[name]
}

func (z *zoneData) soa(zone string) *dns.SOA {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: z.ttl},
		Ns:      z.hostname,
		Mbox:    "hostmaster." + z.forward[0],
		Serial:  z.serial,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		// RFC 2308 §4: the negative-caching TTL. Short, so a device that
		// appears (a new lease) resolves soon after an NXDOMAIN.
		Minttl: min(z.ttl, 60),
	}
}

func (z *zoneData) ns(zone string) *dns.NS {
	return &dns.NS{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: z.ttl}, Ns: z.hostname}
}
