package dns

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"amtd/netsvc"
)

// view is what the authoritative side answers from: the configuration's
// snapshot plus the live tables, each guarded by its own lock. Its methods
// are the short handler functions of STYLE.md (CoreDNS whoami): a question
// in, records out, no I/O.
type view struct {
	z     *zoneData
	hosts *netsvc.Hosts
	dyn   *dynamic
}

// maxCNAMEChain bounds following CNAMEs inside our own data.
const maxCNAMEChain = 8

// authoritative reports whether name (in any case) is ours to answer.
func (v view) authoritative(name string) bool {
	return v.z.zoneOf(name) != "" || (v.z.singleLabel && strings.EqualFold(name, provisionLabel+"."))
}

// answer resolves one question inside the zones; name is its name in
// canonical form. owner is the question's name as the client wrote it: the
// answer echoes its case (resolvers using DNS 0x20 check it).
func (v view) answer(q dns.Question, name string) (rcode int, ans, auth []dns.RR) {
	owner := q.Name
	zone := v.z.zoneOf(name)
	for range maxCNAMEChain {
		rrs := v.records(name, owner, q.Qtype)
		if len(rrs) == 0 && q.Qtype != dns.TypeCNAME && q.Qtype != dns.TypeANY {
			if c := v.cname(name, owner); c != nil {
				ans = append(ans, c)
				name = strings.ToLower(c.Target)
				owner = c.Target
				if v.z.zoneOf(name) == "" {
					return dns.RcodeSuccess, ans, nil // outside: the client resolves the target
				}
				zone = v.z.zoneOf(name)
				continue
			}
		}
		ans = append(ans, rrs...)
		break
	}
	if len(ans) > 0 {
		return dns.RcodeSuccess, ans, nil
	}
	var soa []dns.RR
	if zone != "" {
		soa = []dns.RR{v.z.soa(zone)} // RFC 2308 §2: negative answers carry the SOA
	}
	if v.exists(name) {
		return dns.RcodeSuccess, nil, soa
	}
	return dns.RcodeNameError, nil, soa
}

// records returns name's records of type qtype (all types for ANY), owned
// by owner.
func (v view) records(name, owner string, qtype uint16) []dns.RR {
	var out []dns.RR
	// add copies records shared with other answers (static, updated) before
	// giving them the client's spelling of the owner.
	add := func(rrs ...dns.RR) {
		for _, rr := range rrs {
			if qtype == dns.TypeANY || rr.Header().Rrtype == qtype {
				rr = dns.Copy(rr)
				rr.Header().Name = owner
				out = append(out, rr)
			}
		}
	}
	z := v.z
	if slices.Contains(z.forward, name) || slices.Contains(z.reverse, name) {
		add(z.soa(name), z.ns(name))
	}
	if z.provisionName(name) || name == z.hostname {
		out = appendAddrRRs(out, owner, z.ttl, z.addrs, qtype)
	}
	add(z.static[name]...)
	add(v.dyn.get(name)...)
	if slices.Contains(z.forward, z.zoneOf(name)) {
		out = appendAddrRRs(out, owner, z.ttl, v.hosts.Lookup(name), qtype)
	}
	if qtype == dns.TypePTR || qtype == dns.TypeANY {
		if target := v.ptr(name); target != "" && len(z.static[name]) == 0 {
			add(&dns.PTR{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: z.ttl}, Ptr: target})
		}
	}
	return out
}

// ptr returns the name an address in a reverse zone belongs to: the
// appliance itself, or a host from netsvc.Hosts.
func (v view) ptr(name string) string {
	a, ok := parseReverse(name)
	if !ok {
		return ""
	}
	if slices.Contains(v.z.addrs, a) {
		return v.z.hostname
	}
	return v.hosts.Reverse(a)
}

func (v view) cname(name, owner string) *dns.CNAME {
	for _, rrs := range [][]dns.RR{v.z.static[name], v.dyn.get(name)} {
		for _, rr := range rrs {
			if c, ok := rr.(*dns.CNAME); ok {
				c = dns.Copy(c).(*dns.CNAME)
				c.Hdr.Name = owner
				return c
			}
		}
	}
	return nil
}

// exists reports whether name has any record (NODATA rather than NXDOMAIN).
func (v view) exists(name string) bool {
	z := v.z
	return slices.Contains(z.forward, name) || slices.Contains(z.reverse, name) ||
		z.provisionName(name) || name == z.hostname || len(z.static[name]) > 0 || z.nonTerminal[name] ||
		len(v.dyn.get(name)) > 0 || len(v.hosts.Lookup(name)) > 0 || v.ptr(name) != ""
}

// addrRRs turns addresses into A and AAAA records.
func addrRRs(owner string, ttl uint32, addrs []netip.Addr) []dns.RR {
	return appendAddrRRs(make([]dns.RR, 0, len(addrs)), owner, ttl, addrs, dns.TypeANY)
}

// appendAddrRRs appends the A and AAAA records of addrs that answer qtype
// (A, AAAA or ANY) to out.
func appendAddrRRs(out []dns.RR, owner string, ttl uint32, addrs []netip.Addr, qtype uint16) []dns.RR {
	for _, a := range addrs {
		a = a.Unmap()
		switch {
		case a.Is4() && (qtype == dns.TypeA || qtype == dns.TypeANY):
			out = append(out, &dns.A{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: a.AsSlice()})
		case a.Is6() && (qtype == dns.TypeAAAA || qtype == dns.TypeANY):
			out = append(out, &dns.AAAA{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}, AAAA: a.AsSlice()})
		}
	}
	return out
}

// parseReverse reads the address out of a full in-addr.arpa (4 labels) or
// ip6.arpa (32 nibbles) name.
func parseReverse(name string) (netip.Addr, bool) {
	switch {
	case strings.HasSuffix(name, ".in-addr.arpa."):
		labels := strings.Split(strings.TrimSuffix(name, ".in-addr.arpa."), ".")
		if len(labels) != 4 {
			return netip.Addr{}, false
		}
		slices.Reverse(labels)
		a, err := netip.ParseAddr(strings.Join(labels, "."))
		return a, err == nil && a.Is4()
	case strings.HasSuffix(name, ".ip6.arpa."):
		nibbles := strings.Split(strings.TrimSuffix(name, ".ip6.arpa."), ".")
		if len(nibbles) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, n := range nibbles {
			if len(n) != 1 {
				return netip.Addr{}, false
			}
			d := strings.IndexByte("0123456789abcdef", n[0])
			if d < 0 {
				return netip.Addr{}, false
			}
			pos := 31 - i
			if pos%2 == 0 {
				b[pos/2] |= byte(d) << 4
			} else {
				b[pos/2] |= byte(d)
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}
