package dhcp

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"amtd/netsvc"
)

// How long an OFFER holds its address for the client's REQUEST, and how long
// a DECLINEd address (someone else answered ARP for it) stays out of use.
const (
	offerHold   = 30 * time.Second
	declineHold = 10 * time.Minute
)

// inbound is where a request arrived, from the socket's IP_PKTINFO.
type inbound struct {
	ifindex int
	local   netip.Addr // the local address the request reached (ipi_spec_dst)
}

// outbound is a reply and where it must go (see destination).
type outbound struct {
	resp    *dhcpv4.DHCPv4
	dst     netip.AddrPort
	ifindex int  // interface for broadcasts and layer-2 unicasts
	l2      bool // unicast to chaddr at layer 2: the client has no address yet
}

// server is the DHCP logic: a short handler over an injected, lock-guarded
// view of state (../shared/STYLE.md). It owns no socket.
type server struct {
	mu    sync.Mutex
	pol   *policy
	tab   *table
	store LeaseStore
	hosts *netsvc.Hosts
	now   func() time.Time
	log   *slog.Logger
}

// handle answers one request, or returns nil when no reply is due.
func (s *server) handle(ctx context.Context, req *dhcpv4.DHCPv4, in inbound) *outbound {
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pol := s.pol
	pl := selectPool(pol, req, in)
	mt := req.MessageType()
	log := s.log.With("type", mt.String(), "mac", req.ClientHWAddr.String(), "xid", req.TransactionID.String())
	if pl == nil {
		log.Debug("dhcp: no pool for this link", "giaddr", req.GatewayIPAddr, "local", in.local)
		return nil
	}
	serverID := in.local
	if !serverID.Is4() {
		return nil
	}
	mac := string(req.ClientHWAddr)
	if len(mac) == 0 || len(mac) > 16 {
		return nil
	}
	now := s.now()
	switch mt {
	case dhcpv4.MessageTypeDiscover:
		ip, ok := s.allocate(pol, pl, req, now)
		if !ok {
			log.Warn("dhcp: pool exhausted", "subnet", pl.subnet)
			return nil
		}
		l := s.tab.byMAC[mac]
		if l == nil || l.ip != ip || l.state != StateBound || !now.Before(l.expires) {
			if l != nil {
				s.unregister(l)
			}
			l = &lease{mac: mac, ip: ip, state: StateOffered, expires: now.Add(offerHold)}
			s.tab.put(l)
		}
		return s.reply(req, dhcpv4.MessageTypeOffer, pol, pl, serverID, ip, l, in)

	case dhcpv4.MessageTypeRequest:
		if sid := req.ServerIdentifier(); sid != nil && !sid.IsUnspecified() {
			// SELECTING (RFC 2131 §4.3.2): the client picked a server.
			if a, _ := netip.AddrFromSlice(sid.To4()); a != serverID {
				if l := s.tab.byMAC[mac]; l != nil && l.state == StateOffered {
					s.tab.remove(l)
				}
				return nil
			}
		}
		want := addrOf(req.RequestedIPAddress())
		if !want.IsValid() {
			want = addrOf(req.ClientIPAddr) // RENEWING or REBINDING
		}
		if !want.IsValid() || !pl.subnet.Contains(want) || !s.mayHold(pol, pl, mac, want, now) {
			if !pol.authoritative && (!want.IsValid() || !pl.subnet.Contains(want)) {
				return nil
			}
			log.Info("dhcp: NAK", "requested", want, "subnet", pl.subnet)
			return s.nak(req, serverID, in)
		}
		l := s.tab.byMAC[mac]
		if l == nil || l.ip != want {
			if l != nil {
				s.unregister(l)
			}
			l = &lease{mac: mac, ip: want}
		}
		l.state = StateBound
		l.expires = now.Add(pl.leaseTime)
		l.hostname = req.HostName()
		l.fqdn = ""
		fq, fqOK := clientFQDN(req, log)
		if fqOK {
			l.fqdn = fq.Name
		}
		s.tab.put(l)
		s.register(ctx, pol, pl, l, fq, fqOK, log)
		s.persist(ctx, l, log)
		log.Info("dhcp: ACK", "ip", l.ip, "host", l.dnsName, "expires", l.expires.Format(time.RFC3339))
		return s.reply(req, dhcpv4.MessageTypeAck, pol, pl, serverID, want, l, in)

	case dhcpv4.MessageTypeDecline:
		ip := addrOf(req.RequestedIPAddress())
		l := s.tab.byMAC[mac]
		if !ip.IsValid() || l == nil || l.ip != ip {
			return nil
		}
		// Another host answered ARP for the address: keep it out of use
		// for a while rather than hand it to the next client (RFC 2131 §4.3.3).
		s.tab.declined[ip] = now.Add(declineHold)
		s.unregister(l)
		l.state = StateDeclined
		l.expires = now.Add(declineHold)
		s.persist(ctx, l, log)
		s.tab.remove(l)
		log.Warn("dhcp: client declined its address: another host uses it", "ip", ip)
		return nil

	case dhcpv4.MessageTypeRelease:
		ip := addrOf(req.ClientIPAddr)
		l := s.tab.byMAC[mac]
		if l == nil || l.ip != ip || l.state != StateBound {
			return nil
		}
		s.unregister(l)
		l.state = StateReleased
		l.expires = now
		s.persist(ctx, l, log)
		log.Info("dhcp: released", "ip", ip)
		return nil

	case dhcpv4.MessageTypeInform:
		// INFORM: the host has its address; answer with options only, no
		// yiaddr and no lease time (RFC 2131 §3.4). This is how statically
		// addressed hosts, AMT among them, learn option 15.
		return s.reply(req, dhcpv4.MessageTypeAck, pol, pl, serverID, netip.Addr{}, nil, in)
	}
	return nil
}

// selectPool picks the pool for the client's link: RFC 3527 link selection in
// option 82 first, then the relay's giaddr, then the address the request
// arrived on.
func selectPool(pol *policy, req *dhcpv4.DHCPv4, in inbound) *pool {
	if rai := req.RelayAgentInfo(); rai != nil {
		if b := rai.Get(dhcpv4.LinkSelectionSubOption); len(b) == 4 {
			return pol.poolFor(netip.AddrFrom4([4]byte(b)))
		}
	}
	if gi := addrOf(req.GatewayIPAddr); gi.IsValid() {
		return pol.poolFor(gi)
	}
	if in.local.IsValid() {
		if p := pol.poolFor(in.local); p != nil {
			return p
		}
	}
	if req.MessageType() == dhcpv4.MessageTypeInform {
		if ci := addrOf(req.ClientIPAddr); ci.IsValid() {
			return pol.poolFor(ci)
		}
	}
	return nil
}

// allocate chooses the address to offer: the client's reservation, then its
// current lease, then the address it asks for, then the next free one.
func (s *server) allocate(pol *policy, pl *pool, req *dhcpv4.DHCPv4, now time.Time) (netip.Addr, bool) {
	mac := string(req.ClientHWAddr)
	if r, ok := pol.reservations[mac]; ok && pl.subnet.Contains(r.Address) {
		return r.Address, true
	}
	if l := s.tab.byMAC[mac]; l != nil && pl.inRanges(l.ip) && s.mayHold(pol, pl, mac, l.ip, now) {
		return l.ip, true
	}
	if want := addrOf(req.RequestedIPAddress()); want.IsValid() && pl.inRanges(want) && s.mayHold(pol, pl, mac, want, now) {
		return want, true
	}
	// Walk the ranges from where the last search stopped, so a busy pool does
	// not rescan its bound prefix on every DISCOVER.
	start := s.tab.cursor[pl.subnet]
	if !pl.inRanges(start) {
		start = pl.ranges[0].Start
	}
	a := start
	for range pl.size {
		if s.mayHold(pol, pl, mac, a, now) {
			s.tab.cursor[pl.subnet] = next(pl, a)
			return a, true
		}
		a = next(pl, a)
	}
	return netip.Addr{}, false
}

// next returns the address after a in pl's ranges, wrapping around.
func next(pl *pool, a netip.Addr) netip.Addr {
	n := a.Next()
	for i, r := range pl.ranges {
		if r.Start.Compare(a) <= 0 && a.Compare(r.End) <= 0 {
			if n.IsValid() && n.Compare(r.End) <= 0 {
				return n
			}
			return pl.ranges[(i+1)%len(pl.ranges)].Start
		}
	}
	return pl.ranges[0].Start
}

// mayHold reports whether mac may have address a: inside the pool, not
// reserved for someone else, not declined, not leased to another client.
func (s *server) mayHold(pol *policy, pl *pool, mac string, a netip.Addr, now time.Time) bool {
	if r, ok := pol.reservations[mac]; ok && pl.subnet.Contains(r.Address) {
		return a == r.Address
	}
	if !pl.inRanges(a) {
		return false
	}
	if owner, ok := pol.reservedBy[a]; ok && owner != mac {
		return false
	}
	if until, ok := s.tab.declined[a]; ok {
		if now.Before(until) {
			return false
		}
		delete(s.tab.declined, a)
	}
	if l := s.tab.byIP[a]; l != nil && l.mac != mac && now.Before(l.expires) && l.state != StateReleased {
		return false
	}
	return true
}

// reply builds an OFFER or ACK with the options AMT depends on: 1, 3, 6, 15
// on every answer, renewals included (spec/network.md §1.1), and 51/58/59 when
// an address is leased.
func (s *server) reply(req *dhcpv4.DHCPv4, mt dhcpv4.MessageType, pol *policy, pl *pool, serverID, yiaddr netip.Addr, l *lease, in inbound) *outbound {
	resp, err := dhcpv4.NewReplyFromRequest(req)
	if err != nil {
		return nil
	}
	resp.UpdateOption(dhcpv4.OptMessageType(mt))
	resp.UpdateOption(dhcpv4.OptServerIdentifier(serverID.AsSlice()))
	if yiaddr.IsValid() {
		resp.YourIPAddr = yiaddr.AsSlice()
	}
	resp.UpdateOption(dhcpv4.OptSubnetMask(pl.mask))
	if len(pl.routers) > 0 {
		resp.UpdateOption(dhcpv4.OptRouter(pl.routers...))
	}
	dns := pl.dns
	if len(dns) == 0 {
		dns = []net.IP{serverID.AsSlice()} // amtd's own DNS on this link
	}
	resp.UpdateOption(dhcpv4.OptDNS(dns...))
	resp.UpdateOption(dhcpv4.OptDomainName(pl.domain))
	if l != nil {
		lt := l.expires.Sub(s.now())
		if mt == dhcpv4.MessageTypeOffer || lt <= 0 {
			lt = pl.leaseTime
		}
		lt = lt.Round(time.Second)
		resp.UpdateOption(dhcpv4.OptIPAddressLeaseTime(lt))
		resp.UpdateOption(dhcpv4.OptRenewTimeValue(lt / 2))
		resp.UpdateOption(dhcpv4.OptRebindingTimeValue(lt * 7 / 8))
		if r, ok := pol.reservations[l.mac]; ok && r.Hostname != "" {
			resp.UpdateOption(dhcpv4.OptHostName(hostLabel(r.Hostname)))
		}
	}
	if fq, ok := clientFQDN(req, s.log); ok {
		resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionFQDN, fqdnReply(pol, pl, fq, l, pol.reservations[string(req.ClientHWAddr)].Hostname).Bytes()))
	}
	return destination(req, resp, in)
}

func (s *server) nak(req *dhcpv4.DHCPv4, serverID netip.Addr, in inbound) *outbound {
	resp, err := dhcpv4.NewReplyFromRequest(req)
	if err != nil {
		return nil
	}
	resp.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeNak))
	resp.UpdateOption(dhcpv4.OptServerIdentifier(serverID.AsSlice()))
	if addrOf(req.GatewayIPAddr).IsValid() {
		resp.SetBroadcast() // the relay must broadcast a NAK (RFC 2131 §4.3.2)
	}
	return destination(req, resp, in)
}

// destination applies RFC 2131 §4.1's reply addressing, in coredhcp's order
// (server/handle.go): a relay gets the reply on port 67; a NAK is broadcast; a
// client with an address (ciaddr) gets unicast; the broadcast flag means
// broadcast; otherwise unicast to yiaddr at the client's MAC, which the
// service sends on a packet socket (or broadcasts when it has none).
func destination(req, resp *dhcpv4.DHCPv4, in inbound) *outbound {
	o := &outbound{resp: resp, ifindex: in.ifindex}
	bcast := netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), dhcpv4.ClientPort)
	switch {
	case addrOf(req.GatewayIPAddr).IsValid():
		o.dst = netip.AddrPortFrom(addrOf(req.GatewayIPAddr), dhcpv4.ServerPort)
		o.ifindex = 0 // routed
	case resp.MessageType() == dhcpv4.MessageTypeNak:
		o.dst = bcast
	case addrOf(req.ClientIPAddr).IsValid():
		o.dst = netip.AddrPortFrom(addrOf(req.ClientIPAddr), dhcpv4.ClientPort)
		o.ifindex = 0
	case req.IsBroadcast() || !addrOf(resp.YourIPAddr).IsValid() || len(req.ClientHWAddr) != 6:
		o.dst = bcast
	default:
		o.dst = netip.AddrPortFrom(addrOf(resp.YourIPAddr), dhcpv4.ClientPort)
		o.l2 = true
	}
	return o
}

// addrOf converts a packet field to netip, treating 0.0.0.0 as absent.
func addrOf(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip.To4())
	if !ok || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}

// clientFQDN decodes option 81 if the client sent one; a malformed one is
// logged and ignored, as if absent.
func clientFQDN(req *dhcpv4.DHCPv4, log *slog.Logger) (FQDN, bool) {
	b := req.GetOneOption(dhcpv4.OptionFQDN)
	if b == nil {
		return FQDN{}, false
	}
	f, err := ParseFQDN(b)
	if err != nil {
		log.Info("dhcp: ignoring malformed client FQDN", "mac", req.ClientHWAddr.String(), "err", err)
		return FQDN{}, false
	}
	return f, true
}

// fqdnReply is the option 81 the server answers with (RFC 4702 §3.1, §4):
// S=1 when the server does the update (it always does when DNS updates are
// on, and O=1 says it overrode a client that wanted to do it itself); N=1
// and S=0 when it does none; E as in the request; RCODEs 255.
func fqdnReply(pol *policy, pl *pool, req FQDN, l *lease, reserved string) FQDN {
	r := FQDN{Flags: req.Flags & fqdnE, RCode1: 255, RCode2: 255}
	switch {
	case !pol.updateDNS || req.Flags&fqdnN != 0:
		r.Flags |= fqdnN
	default:
		r.Flags |= fqdnS
		if req.Flags&fqdnS == 0 {
			r.Flags |= fqdnO
		}
	}
	name := ""
	if l != nil && l.dnsName != "" {
		name = strings.TrimSuffix(l.dnsName, ".")
	} else if n := dnsName(pol, pl, reserved, req, true, ""); n != "" {
		name = strings.TrimSuffix(n, ".")
	}
	r.Name = name
	return r
}

// dnsName is the name a lease is registered under: the reservation's
// Hostname=, else the client's FQDN when it lies inside a site domain, else
// its first label (from option 81 or 12) under the pool's domain. Clients
// never get names outside the zones amtd serves.
func dnsName(pol *policy, pl *pool, reserved string, fq FQDN, fqOK bool, hostname string) string {
	if reserved != "" {
		if strings.Contains(reserved, ".") {
			return netsvc.Canonical(normDomain(reserved))
		}
		return netsvc.Canonical(hostLabel(reserved) + "." + pl.domain)
	}
	if fqOK && fq.Name != "" {
		full := normDomain(fq.Name)
		if !fq.Partial && validName(full) {
			for _, d := range append([]string{pl.domain}, pol.siteDomains...) {
				if strings.HasSuffix(full, "."+d) {
					return netsvc.Canonical(full)
				}
			}
		}
		if l := hostLabel(full); l != "" {
			return netsvc.Canonical(l + "." + pl.domain)
		}
	}
	if l := hostLabel(hostname); l != "" {
		return netsvc.Canonical(l + "." + pl.domain)
	}
	return ""
}

func validName(s string) bool {
	for _, l := range strings.Split(s, ".") {
		if l == "" || hostLabel(l) != l {
			return false
		}
	}
	return len(s) <= 253
}

// register writes the lease's name into netsvc.Hosts so amtd's DNS answers A
// and PTR for it. A name held by another client's live lease is not taken
// over (the first holder keeps it, as RFC 4703's conflict rules intend).
func (s *server) register(_ context.Context, pol *policy, pl *pool, l *lease, fq FQDN, fqOK bool, log *slog.Logger) {
	if !pol.updateDNS || s.hosts == nil || (fqOK && fq.Flags&fqdnN != 0) {
		s.unregister(l)
		return
	}
	name := dnsName(pol, pl, pol.reservations[l.mac].Hostname, fq, fqOK, l.hostname)
	if name == "" {
		s.unregister(l)
		return
	}
	for _, a := range s.hosts.Lookup(name) {
		if other := s.tab.byIP[a]; a != l.ip && other != nil && other.mac != l.mac && other.state == StateBound && s.now().Before(other.expires) {
			log.Warn("dhcp: host name already held by another lease; not registering", "name", name, "holder", net.HardwareAddr(other.mac).String(), "holder_ip", a)
			s.unregister(l)
			return
		}
	}
	if l.dnsName != "" && l.dnsName != name {
		s.hosts.Remove(l.dnsName)
	}
	s.hosts.Set(name, l.ip)
	l.dnsName = name
}

func (s *server) unregister(l *lease) {
	if l.dnsName != "" && s.hosts != nil {
		// Only remove the name if it still points at this lease's address.
		addrs := s.hosts.Lookup(l.dnsName)
		if len(addrs) == 1 && addrs[0] == l.ip {
			s.hosts.Remove(l.dnsName)
		}
	}
	l.dnsName = ""
}

func (s *server) persist(ctx context.Context, l *lease, log *slog.Logger) {
	if s.store == nil {
		return
	}
	if err := s.store.Put(ctx, l.export()); err != nil {
		log.Error("dhcp: saving lease failed; it will be lost on restart", "ip", l.ip, "err", err)
	}
}

// expire drops leases past their end: their names leave DNS and their rows
// leave the store. It returns how many bound leases ended.
func (s *server) expire(ctx context.Context) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	n := 0
	for _, l := range s.tab.byMAC {
		if now.Before(l.expires) {
			continue
		}
		if l.state == StateBound {
			n++
			s.log.Info("dhcp: lease expired", "mac", net.HardwareAddr(l.mac).String(), "ip", l.ip)
		}
		s.unregister(l)
		s.tab.remove(l)
	}
	for a, until := range s.tab.declined {
		if !now.Before(until) {
			delete(s.tab.declined, a)
		}
	}
	if s.store != nil {
		if _, err := s.store.ExpireBefore(ctx, now); err != nil {
			s.log.Error("dhcp: expiring stored leases failed", "err", err)
		}
	}
	return n
}

// restore loads persisted leases after a restart and registers the names of
// the bound ones again.
func (s *server) restore(ctx context.Context) error {
	if s.store == nil {
		return nil
	}
	all, err := s.store.All(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, sl := range all {
		if !now.Before(sl.Expires) || len(sl.MAC) == 0 {
			continue
		}
		l := &lease{mac: string(sl.MAC), ip: sl.IP, hostname: sl.Hostname, fqdn: sl.ClientFQDN, expires: sl.Expires, state: sl.State}
		if l.state == StateDeclined {
			s.tab.declined[l.ip] = l.expires
			continue
		}
		s.tab.put(l)
		if pl := s.pol.poolFor(l.ip); pl != nil && l.state == StateBound {
			fq := FQDN{Name: l.fqdn, Flags: fqdnE | fqdnS}
			s.register(ctx, s.pol, pl, l, fq, l.fqdn != "", s.log)
		}
	}
	return nil
}
