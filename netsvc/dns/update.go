package dns

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"amtd/netsvc"
	"amtd/store"
)

// Bounds on one update message (checked before it is parsed, in acceptMsg).
const (
	maxPrereqs = 32
	maxUpdates = 64
)

// updateTypes are the record types an update may touch; SOA and NS are
// amtd's own and change with the configuration only.
var updateTypes = map[uint16]bool{dns.TypeA: true, dns.TypeAAAA: true, dns.TypeCNAME: true, dns.TypeTXT: true, dns.TypePTR: true}

// refusal is an update turned down: the rcode for the client and the reason
// for the log.
type refusal struct {
	rcode  int
	reason string
}

func refuse(rcode int, format string, args ...any) *refusal {
	return &refusal{rcode: rcode, reason: fmt.Sprintf(format, args...)}
}

// update handles an RFC 2136 UPDATE. Two kinds are accepted:
//   - unsigned, as AMT's own DDNS client sends them (spec/network.md §4):
//     from a [DNS] UpdateFrom= subnet, A/AAAA only, one owner name in a
//     forward site zone, adds (or a replace: delete of that name's A/AAAA,
//     then add) of the sender's own address only;
//   - signed with TSIG by a [DNS] UpdateKey= key: anything in the zones
//     but SOA and NS.
//
// Everything else is refused and logged.
func (s *Service) update(st *state, w dns.ResponseWriter, r *dns.Msg, src netip.Addr) *dns.Msg {
	m := new(dns.Msg).SetReply(r)
	key := ""
	if t := r.IsTsig(); t != nil {
		key = netsvc.Canonical(t.Hdr.Name)
	}
	ref := s.checkUpdate(st, w, r, src, key)
	if ref == nil {
		ref = s.applyUpdate(st, r)
	}
	zone := ""
	if len(r.Question) > 0 {
		zone = r.Question[0].Name
	}
	if ref != nil {
		s.updates.With("refused").Inc()
		s.log.Warn("dns: update refused", "src", src.String(), "zone", zone, "key", key,
			"rcode", dns.RcodeToString[ref.rcode], "reason", ref.reason)
		m.Rcode = ref.rcode
	} else {
		s.updates.With("accepted").Inc()
		s.log.Info("dns: update accepted", "src", src.String(), "zone", zone, "key", key, "records", updateSummary(r.Ns))
	}
	// A signed request gets a signed answer (RFC 8945 §5.3), unless its
	// signature failed: then we cannot sign, and the client sees NOTAUTH.
	if t := r.IsTsig(); t != nil && w.TsigStatus() == nil && st.updateKeys[key] {
		m.SetTsig(t.Hdr.Name, t.Algorithm, 300, s.now().Unix())
	}
	return m
}

// checkUpdate decides whether r may be applied.
func (s *Service) checkUpdate(st *state, w dns.ResponseWriter, r *dns.Msg, src netip.Addr, key string) *refusal {
	if len(r.Question) != 1 || r.Question[0].Qtype != dns.TypeSOA || r.Question[0].Qclass != dns.ClassINET {
		return refuse(dns.RcodeFormatError, "the zone section must hold one IN SOA question (RFC 2136 §3.1.1)")
	}
	zone := netsvc.Canonical(r.Question[0].Name)
	if !slices.Contains(st.zone.forward, zone) && !slices.Contains(st.zone.reverse, zone) {
		return refuse(dns.RcodeNotAuth, "amtd is not authoritative for zone %s", zone)
	}
	if key != "" {
		if err := w.TsigStatus(); err != nil {
			return refuse(dns.RcodeNotAuth, "TSIG signature by key %s does not verify: %v", key, err)
		}
		if !st.updateKeys[key] {
			return refuse(dns.RcodeNotAuth, "key %s is not a [DNS] UpdateKey=", key)
		}
		return checkSigned(st.zone, zone, r.Ns)
	}
	if !slices.ContainsFunc(st.updateFrom, func(p netip.Prefix) bool { return p.Contains(src) }) {
		return refuse(dns.RcodeRefused, "unsigned update from %s, which is not in [DNS] UpdateFrom=", src)
	}
	if st.updRL.check(src) != allow {
		return refuse(dns.RcodeRefused, "too many unsigned updates from %s (more than %d a second)", src, updateRate)
	}
	if !st.zone.isForward(zone) {
		return refuse(dns.RcodeRefused, "unsigned updates are accepted for forward zones only (AMT registers A/AAAA; spec/network.md §4)")
	}
	return s.checkUnsigned(st.zone, zone, r.Ns, src)
}

// checkSigned checks a TSIG-authorised update: every record in the zone,
// of a type updates may touch, with a class RFC 2136 §2.5 defines.
func checkSigned(z *zoneData, zone string, ups []dns.RR) *refusal {
	for _, rr := range ups {
		h := rr.Header()
		name := netsvc.Canonical(h.Name)
		if !dns.IsSubDomain(zone, name) {
			return refuse(dns.RcodeNotZone, "%s is outside zone %s", name, zone)
		}
		if h.Rrtype == dns.TypeANY && h.Class == dns.ClassANY {
			if name == zone {
				return refuse(dns.RcodeRefused, "deleting the zone apex is not allowed")
			}
			continue
		}
		if !updateTypes[h.Rrtype] {
			return refuse(dns.RcodeRefused, "%s %s: updates may change A, AAAA, CNAME, TXT and PTR records only", name, dns.TypeToString[h.Rrtype])
		}
		if z.provisionName(name) || name == z.hostname {
			return refuse(dns.RcodeRefused, "%s is amtd's own name; it changes with [Site] in amtd.conf", name)
		}
		if h.Class != dns.ClassINET && h.Class != dns.ClassANY && h.Class != dns.ClassNONE {
			return refuse(dns.RcodeFormatError, "%s: class %s", name, dns.ClassToString[h.Class])
		}
	}
	return nil
}

// checkUnsigned enforces spec/network.md §4 on an update nobody signed:
// anyone on the LAN can send one, so it may only register its sender's own
// address under one name that is not amtd's or another host's.
func (s *Service) checkUnsigned(z *zoneData, zone string, ups []dns.RR, src netip.Addr) *refusal {
	owner, adds := "", 0
	for _, rr := range ups {
		h := rr.Header()
		name := netsvc.Canonical(h.Name)
		if owner == "" {
			owner = name
		}
		if name != owner {
			return refuse(dns.RcodeRefused, "unsigned update touches %s and %s; only one owner name is allowed", owner, name)
		}
		if h.Rrtype != dns.TypeA && h.Rrtype != dns.TypeAAAA {
			return refuse(dns.RcodeRefused, "unsigned update of %s %s; only A and AAAA are accepted", name, dns.TypeToString[h.Rrtype])
		}
		switch h.Class {
		case dns.ClassINET:
			a := rrAddr(rr)
			if a != src {
				return refuse(dns.RcodeRefused, "unsigned update registers %s for %s but comes from %s; the source must be the address registered", a, name, src)
			}
			adds++
		case dns.ClassANY: // delete the owner's RRset: the first half of a replace
		case dns.ClassNONE:
			if a := rrAddr(rr); a != src {
				return refuse(dns.RcodeRefused, "unsigned update deletes %s %s, which is not the sender's address", name, a)
			}
		default:
			return refuse(dns.RcodeFormatError, "%s: class %s", name, dns.ClassToString[h.Class])
		}
	}
	if owner == "" || adds == 0 {
		return refuse(dns.RcodeRefused, "unsigned update adds nothing; only adds and replaces are accepted")
	}
	if !dns.IsSubDomain(zone, owner) {
		return refuse(dns.RcodeNotZone, "%s is outside zone %s", owner, zone)
	}
	if z.reserved(owner) {
		return refuse(dns.RcodeRefused, "%s is served from amtd.conf and cannot be changed by an unsigned update", owner)
	}
	if held := s.hosts.Lookup(owner); len(held) > 0 && !s.dyn.isOwned(owner) && !slices.Contains(held, src) {
		return refuse(dns.RcodeRefused, "%s belongs to another host's DHCP lease (%v)", owner, held)
	}
	return nil
}

func rrAddr(rr dns.RR) netip.Addr {
	var a netip.Addr
	switch rr := rr.(type) {
	case *dns.A:
		a, _ = netip.AddrFromSlice(rr.A)
	case *dns.AAAA:
		a, _ = netip.AddrFromSlice(rr.AAAA)
	}
	return a.Unmap()
}

// applyUpdate checks the prerequisites and applies the updates, to the
// store first (so an accepted update survives a restart) and then to the
// live tables.
func (s *Service) applyUpdate(st *state, r *dns.Msg) *refusal {
	s.updMu.Lock()
	defer s.updMu.Unlock()
	v := view{z: st.zone, hosts: s.hosts, dyn: s.dyn}
	if ref := checkPrereqs(v, netsvc.Canonical(r.Question[0].Name), r.Answer); ref != nil {
		return ref
	}
	// The new contents of every name touched, computed aside.
	type contents struct {
		addrs []netip.Addr
		other []dns.RR
	}
	next := map[string]*contents{}
	var order []string
	for _, rr := range r.Ns {
		h := rr.Header()
		name := netsvc.Canonical(h.Name)
		c := next[name]
		if c == nil {
			c = &contents{addrs: slices.Clone(s.hosts.Lookup(name)), other: slices.Clone(s.dyn.get(name))}
			next[name] = c
			order = append(order, name)
		}
		switch {
		case h.Class == dns.ClassANY && h.Rrtype == dns.TypeANY:
			c.addrs, c.other = nil, nil
		case h.Class == dns.ClassANY && (h.Rrtype == dns.TypeA || h.Rrtype == dns.TypeAAAA):
			c.addrs = slices.DeleteFunc(c.addrs, func(a netip.Addr) bool { return a.Is4() == (h.Rrtype == dns.TypeA) })
		case h.Class == dns.ClassANY:
			c.other = slices.DeleteFunc(c.other, func(x dns.RR) bool { return x.Header().Rrtype == h.Rrtype })
		case h.Class == dns.ClassNONE && (h.Rrtype == dns.TypeA || h.Rrtype == dns.TypeAAAA):
			a := rrAddr(rr)
			c.addrs = slices.DeleteFunc(c.addrs, func(x netip.Addr) bool { return x == a })
		case h.Class == dns.ClassNONE:
			c.other = slices.DeleteFunc(c.other, func(x dns.RR) bool { return sameRData(x, rr) })
		case h.Rrtype == dns.TypeA || h.Rrtype == dns.TypeAAAA:
			if a := rrAddr(rr); a.IsValid() && !slices.Contains(c.addrs, a) {
				c.addrs = append(c.addrs, a)
			}
		default:
			add := dns.Copy(rr)
			add.Header().Name = name
			add.Header().Ttl = st.zone.ttl
			if h.Rrtype == dns.TypeCNAME {
				// RFC 2136 §3.4.2.2: a CNAME replaces a CNAME.
				c.other = slices.DeleteFunc(c.other, func(x dns.RR) bool { return x.Header().Rrtype == dns.TypeCNAME })
			}
			if !slices.ContainsFunc(c.other, func(x dns.RR) bool { return sameRData(x, add) }) {
				c.other = append(c.other, add)
			}
		}
	}
	for _, name := range order {
		c := next[name]
		hasCNAME := slices.ContainsFunc(c.other, func(x dns.RR) bool { return x.Header().Rrtype == dns.TypeCNAME })
		if hasCNAME && (len(c.addrs) > 0 || len(c.other) > 1) {
			return refuse(dns.RcodeRefused, "%s: a CNAME cannot stand beside other records (RFC 1034 §3.6.2)", name)
		}
		if len(c.addrs) > 0 && !st.zone.isForward(st.zone.zoneOf(name)) {
			return refuse(dns.RcodeRefused, "%s: address records belong in a forward zone", name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, name := range order {
		c := next[name]
		if err := s.persist(ctx, name, c.addrs, c.other, st.zone.ttl); err != nil {
			s.log.Error("dns: storing an accepted update failed", "name", name, "err", err)
			return refuse(dns.RcodeServerFailure, "store: %v", err)
		}
	}
	for _, name := range order {
		c := next[name]
		if len(c.addrs) > 0 {
			s.hosts.Set(name, c.addrs...)
			s.dyn.setOwned(name, true)
		} else if len(s.hosts.Lookup(name)) > 0 {
			s.hosts.Remove(name)
			s.dyn.setOwned(name, false)
		}
		s.dyn.set(name, c.other)
	}
	return nil
}

// persist replaces what the store holds for name with addrs and other.
func (s *Service) persist(ctx context.Context, name string, addrs []netip.Addr, other []dns.RR, ttl uint32) error {
	if s.deps.Store == nil {
		return nil
	}
	recs := s.deps.Store.DNSRecords()
	for t := range updateTypes {
		if err := recs.Delete(ctx, name, dns.TypeToString[t]); err != nil {
			return err
		}
	}
	put := func(typ, value string) error {
		return recs.Put(ctx, store.DNSRecord{Name: name, Type: typ, Value: value, TTL: time.Duration(ttl) * time.Second, Source: store.SourceDDNS})
	}
	for _, a := range addrs {
		typ := "A"
		if a.Is6() {
			typ = "AAAA"
		}
		if err := put(typ, a.String()); err != nil {
			return err
		}
	}
	for _, rr := range other {
		if err := put(dns.TypeToString[rr.Header().Rrtype], rdata(rr)); err != nil {
			return err
		}
	}
	return nil
}

// rdata is the presentation form of rr's data (what follows the type).
func rdata(rr dns.RR) string {
	h := rr.Header()
	return strings.TrimPrefix(rr.String(), h.String())
}

func sameRData(a, b dns.RR) bool {
	return a.Header().Rrtype == b.Header().Rrtype && rdata(a) == rdata(b)
}

// checkPrereqs evaluates the prerequisite section (RFC 2136 §3.2) against
// what amtd serves now.
func checkPrereqs(v view, zone string, pre []dns.RR) *refusal {
	for _, rr := range pre {
		h := rr.Header()
		name := netsvc.Canonical(h.Name)
		if !dns.IsSubDomain(zone, name) {
			return refuse(dns.RcodeNotZone, "prerequisite %s is outside zone %s", name, zone)
		}
		if h.Ttl != 0 {
			return refuse(dns.RcodeFormatError, "prerequisite %s has a non-zero TTL", name)
		}
		have := v.records(name, name, dns.TypeANY)
		ofType := slices.DeleteFunc(slices.Clone(have), func(x dns.RR) bool { return x.Header().Rrtype != h.Rrtype })
		switch {
		case h.Class == dns.ClassANY && h.Rrtype == dns.TypeANY:
			if len(have) == 0 {
				return refuse(dns.RcodeNameError, "prerequisite: %s is not in use", name)
			}
		case h.Class == dns.ClassANY:
			if len(ofType) == 0 {
				return refuse(dns.RcodeNXRrset, "prerequisite: %s has no %s records", name, dns.TypeToString[h.Rrtype])
			}
		case h.Class == dns.ClassNONE && h.Rrtype == dns.TypeANY:
			if len(have) > 0 {
				return refuse(dns.RcodeYXDomain, "prerequisite: %s is in use", name)
			}
		case h.Class == dns.ClassNONE:
			if len(ofType) > 0 {
				return refuse(dns.RcodeYXRrset, "prerequisite: %s has %s records", name, dns.TypeToString[h.Rrtype])
			}
		case h.Class == dns.ClassINET:
			if !slices.ContainsFunc(ofType, func(x dns.RR) bool { return sameRData(x, rr) }) {
				return refuse(dns.RcodeNXRrset, "prerequisite: %s %s %s is not served", name, dns.TypeToString[h.Rrtype], rdata(rr))
			}
		default:
			return refuse(dns.RcodeFormatError, "prerequisite %s: class %s", name, dns.ClassToString[h.Class])
		}
	}
	return nil
}

func updateSummary(ups []dns.RR) string {
	parts := make([]string, 0, len(ups))
	for _, rr := range ups {
		h := rr.Header()
		op := "add"
		switch h.Class {
		case dns.ClassANY:
			op = "delete"
		case dns.ClassNONE:
			op = "delete-one"
		}
		parts = append(parts, fmt.Sprintf("%s %s %s%s", op, h.Name, dns.TypeToString[h.Rrtype], rdata(rr)))
	}
	return strings.Join(parts, "; ")
}
