package config

import (
	"cmp"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
)

// check runs once the whole file is read: derived defaults, then what no
// single key can check alone. Each problem points at the line to change.
func (p *parser) check(cfg *Config) {
	p.required(cfg)
	p.checkSite(cfg)
	p.checkPools(cfg)
	p.checkReservations(cfg)
	p.checkRecords(cfg)
	p.fillDefaults(cfg)
	p.checkServices(cfg)
	p.checkListeners(cfg)
}

// required reports the Required keys missing from each repeated section, at
// the section's header.
func (p *parser) required(cfg *Config) {
	for _, s := range Keys() {
		var headers []int
		switch s.Name {
		case "DHCPPool":
			for _, e := range cfg.DHCPPools {
				headers = append(headers, e.Line)
			}
		case "DHCPReservation":
			for _, e := range cfg.Reservations {
				headers = append(headers, e.Line)
			}
		}
		for i, line := range headers {
			for _, k := range s.Keys {
				if k.Required && p.line(s.Name, i, k.Name) == 0 {
					p.errorf(line, fmt.Sprintf("[%s] has no %s=: add %s=%s", s.Name, k.Name, k.Name, example(s.Name, k.Name)))
				}
			}
		}
	}
}

func example(section, key string) string {
	switch section + "." + key {
	case "DHCPPool.Subnet":
		return "192.0.2.0/24"
	case "DHCPPool.Range":
		return "192.0.2.100-192.0.2.199"
	case "DHCPReservation.MACAddress":
		return "00:16:3e:12:34:56"
	case "DHCPReservation.Address":
		return "192.0.2.20"
	}
	return "…"
}

func (p *parser) checkSite(cfg *Config) {
	seen := map[string]int{}
	for i, d := range cfg.Site.Domains {
		line := p.lines[lineKey{"Site", 0, "Domain"}][i]
		if first, dup := seen[d]; dup {
			p.errorf(line, fmt.Sprintf("[Site] Domain=%s is already given at line %d", d, first))
			continue
		}
		seen[d] = line
		switch {
		case d == "local" || strings.HasSuffix(d, ".local"):
			p.warnf(line, "[Site] Domain=%s: .local is for multicast DNS (RFC 6762); resolvers may never ask amtd for ProvisionServer.%s", d, d)
		case !strings.Contains(d, "."):
			p.warnf(line, "[Site] Domain=%s has one label; Intel AMT compares DNS suffixes, and a single-label one is easily shared with other networks", d)
		}
	}
	seenAddr := map[netip.Addr]int{}
	for i, a := range cfg.Site.Addresses {
		line := p.lines[lineKey{"Site", 0, "Address"}][i]
		if first, dup := seenAddr[a]; dup {
			p.errorf(line, fmt.Sprintf("[Site] Address=%s is already given at line %d", a, first))
		}
		seenAddr[a] = line
	}
}

// checkPools checks each [DHCPPool] against itself, the others and [Site].
func (p *parser) checkPools(cfg *Config) {
	type span struct {
		start, end netip.Addr
		line       int
		what       string
	}
	var subnets, ranges []span
	for i, pool := range cfg.DHCPPools {
		if line := p.line("DHCPPool", i, "Domain"); line > 0 && !slices.Contains(cfg.Site.Domains, pool.Domain) {
			hint := suggest(pool.Domain, cfg.Site.Domains, "", "")
			p.errorf(line, fmt.Sprintf("[DHCPPool] Domain=%s is not a [Site] Domain=%s: devices in this pool would look up ProvisionServer.%s, which amtd does not answer; correct the spelling or add Domain=%s to [Site]", pool.Domain, hint, pool.Domain, pool.Domain))
		}
		rangeLines := p.lines[lineKey{"DHCPPool", i, "Range"}]
		for j, r := range pool.Ranges {
			ranges = append(ranges, span{r.Start, r.End, rangeLines[j], fmt.Sprintf("Range=%s-%s", r.Start, r.End)})
		}
		sub := pool.Subnet
		if !sub.IsValid() {
			continue
		}
		subnets = append(subnets, span{sub.Addr(), lastAddr(sub), p.line("DHCPPool", i, "Subnet"), "Subnet=" + sub.String()})
		for j, r := range pool.Ranges {
			switch {
			case !sub.Contains(r.Start) || !sub.Contains(r.End):
				p.errorf(rangeLines[j], fmt.Sprintf("[DHCPPool] Range=%s-%s is not inside Subnet=%s", r.Start, r.End, sub))
			case r.Start == sub.Addr():
				p.errorf(rangeLines[j], fmt.Sprintf("[DHCPPool] Range=%s-%s includes %s, the subnet's own address: start it at %s", r.Start, r.End, r.Start, r.Start.Next()))
			case r.End == lastAddr(sub):
				p.errorf(rangeLines[j], fmt.Sprintf("[DHCPPool] Range=%s-%s includes %s, the subnet's broadcast address: end it at %s", r.Start, r.End, r.End, r.End.Prev()))
			}
		}
		routerLines := p.lines[lineKey{"DHCPPool", i, "Router"}]
		for j, r := range pool.Routers {
			if !sub.Contains(r) || r == sub.Addr() || r == lastAddr(sub) {
				p.errorf(routerLines[j], fmt.Sprintf("[DHCPPool] Router=%s is not a host address inside Subnet=%s: clients could not reach it", r, sub))
			}
		}
	}
	overlaps := func(list []span, kind string) {
		slices.SortStableFunc(list, func(a, b span) int {
			return cmp.Or(a.start.Compare(b.start), b.end.Compare(a.end))
		})
		var widest *span // the span reaching furthest so far
		for i := range list {
			cur := &list[i]
			if widest != nil && cur.start.Compare(widest.end) <= 0 {
				earlier, later := widest, cur
				if later.line < earlier.line {
					earlier, later = later, earlier
				}
				p.errorf(later.line, fmt.Sprintf("[DHCPPool] %s overlaps %s at line %d: %s", later.what, earlier.what, earlier.line, kind))
			}
			if widest == nil || cur.end.Compare(widest.end) > 0 {
				widest = cur
			}
		}
	}
	overlaps(subnets, "each link needs a subnet of its own")
	overlaps(ranges, "an address can be leased from one range only")
}

// lastAddr is the highest address of p, its broadcast address for IPv4.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := range a {
		for b := 7; b >= 0; b-- {
			if i*8+(7-b) >= bits {
				a[i] |= 1 << b
			}
		}
	}
	last, _ := netip.AddrFromSlice(a)
	return last
}

func (p *parser) checkReservations(cfg *Config) {
	macs := map[[6]byte]int{}
	addrs := map[netip.Addr]int{}
	for i, r := range cfg.Reservations {
		if line := p.line("DHCPReservation", i, "MACAddress"); line > 0 {
			if first, dup := macs[r.MAC]; dup {
				p.errorf(line, fmt.Sprintf("[DHCPReservation] MACAddress=%s is already reserved at line %d", macString(r.MAC), first))
			} else {
				macs[r.MAC] = line
			}
		}
		line := p.line("DHCPReservation", i, "Address")
		if line == 0 {
			continue
		}
		a := r.Address
		if first, dup := addrs[a]; dup {
			p.errorf(line, fmt.Sprintf("[DHCPReservation] Address=%s is already reserved at line %d", a, first))
			continue
		}
		addrs[a] = line
		var pool *DHCPPool
		for j := range cfg.DHCPPools {
			if cfg.DHCPPools[j].Subnet.IsValid() && cfg.DHCPPools[j].Subnet.Contains(a) {
				pool = &cfg.DHCPPools[j]
				break
			}
		}
		switch {
		case pool == nil:
			p.errorf(line, fmt.Sprintf("[DHCPReservation] Address=%s is inside no [DHCPPool] Subnet=: the device could never be reached there", a))
		case a == pool.Subnet.Addr() || a == lastAddr(pool.Subnet):
			p.errorf(line, fmt.Sprintf("[DHCPReservation] Address=%s is the network or broadcast address of Subnet=%s", a, pool.Subnet))
		case slices.Contains(pool.Routers, a):
			p.errorf(line, fmt.Sprintf("[DHCPReservation] Address=%s is a Router= of its pool", a))
		case slices.Contains(cfg.Site.Addresses, a):
			p.errorf(line, fmt.Sprintf("[DHCPReservation] Address=%s is this appliance's own [Site] Address=", a))
		}
	}
}

func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// checkRecords qualifies the names of [DNS] Record= and checks amtd would
// answer them: inside a site domain, not ProvisionServer (amtd answers that
// itself), and no CNAME beside other data (RFC 1034 §3.6.2).
func (p *parser) checkRecords(cfg *Config) {
	byName := map[string]*DNSRecord{}
	siteDomains := map[string]bool{}
	for _, d := range cfg.Site.Domains {
		siteDomains[d] = true
	}
	for i := range cfg.DNSRecords {
		r := &cfg.DNSRecords[i]
		if r.Type != "PTR" {
			switch {
			case strings.HasSuffix(r.Name, "."):
			case len(cfg.Site.Domains) == 0:
				p.errorf(r.Line, fmt.Sprintf("[DNS] Record=%s: needs a [Site] Domain= to be in", r.Name))
				continue
			case r.Name == "@":
				r.Name = cfg.Site.Domains[0] + "."
			case !strings.Contains(r.Name, "."):
				r.Name += "." + cfg.Site.Domains[0] + "."
			default:
				r.Name += "."
			}
			fqdn := strings.TrimSuffix(r.Name, ".")
			if label, d, _ := strings.Cut(fqdn, "."); label == "provisionserver" && siteDomains[d] {
				p.errorf(r.Line, fmt.Sprintf("[DNS] Record=%s: amtd answers ProvisionServer.%s itself, from [Site] Address=; remove this record", r.Name, d))
			}
			inside := false
			for n := fqdn; n != "" && !inside; _, n, _ = strings.Cut(n, ".") {
				inside = siteDomains[n]
			}
			if !inside {
				p.errorf(r.Line, fmt.Sprintf("[DNS] Record=%s is not inside any [Site] Domain= (%s), so amtd would never answer it; write a short name, or a name ending in a site domain", r.Name, strings.Join(cfg.Site.Domains, ", ")))
				continue
			}
		}
		if other, ok := byName[r.Name]; ok && (r.Type == "CNAME" || other.Type == "CNAME") {
			p.errorf(r.Line, fmt.Sprintf("[DNS] Record=%s %s: the name already has a record (%s, line %d), and a CNAME cannot share its name (RFC 1034 §3.6.2)", r.Name, r.Type, other.Type, other.Line))
			continue
		}
		byName[r.Name] = r
	}
	for i, pre := range cfg.DNS.UpdateFrom {
		if pre.Bits() == 0 {
			p.warnf(p.lines[lineKey{"DNS", 0, "UpdateFrom"}][i], "[DNS] UpdateFrom=%s lets every address change records in the site's domains without a key", pre)
		}
	}
}

// fillDefaults computes the defaults that depend on other keys, as the
// comments in config.go document them.
func (p *parser) fillDefaults(cfg *Config) {
	if cfg.Site.Hostname == "" && len(cfg.Site.Domains) > 0 {
		cfg.Site.Hostname = "amtd." + cfg.Site.Domains[0]
	}
	if cfg.Store.BackupDir == "" {
		cfg.Store.BackupDir = filepath.Join(filepath.Dir(cfg.Store.Path), "backup")
	}
	if len(cfg.DHCP.DNS) == 0 {
		for _, a := range cfg.Site.Addresses {
			if a.Is4() {
				cfg.DHCP.DNS = append(cfg.DHCP.DNS, a)
			}
		}
	}
	for i := range cfg.DHCPPools {
		pool := &cfg.DHCPPools[i]
		if len(pool.DNS) == 0 {
			pool.DNS = slices.Clone(cfg.DHCP.DNS)
		}
		if pool.Domain == "" && len(cfg.Site.Domains) > 0 {
			pool.Domain = cfg.Site.Domains[0]
		}
		if pool.LeaseTime == 0 {
			pool.LeaseTime = cfg.DHCP.LeaseTime
		}
	}
	if cfg.Registrar.Zone == "" && len(cfg.Site.Domains) > 0 {
		cfg.Registrar.Zone = cfg.Site.Domains[0]
	}
}

// checkServices checks what enabling a service needs.
func (p *parser) checkServices(cfg *Config) {
	for _, s := range Keys() {
		what, ok := notYet[s.Name]
		if ok && enabled(cfg, s.Name) {
			p.errorf(p.line(s.Name, 0, "Enable"), fmt.Sprintf("[%s] Enable=yes: this build of amtd does not have the %s yet; set Enable=no or remove the line", s.Name, what))
		}
	}

	// The agent endpoint authenticates agents by the enrolment token
	// (spec/rpc-protocol.md §10): no token, no endpoint.
	if pv := cfg.Provisioning; enabled(cfg, "Provisioning") && pv.AgentListen != "" && pv.AgentTokenFile == "" {
		p.errorf(p.line("Provisioning", 0, "AgentListen"), "[Provisioning] AgentListen= needs AgentTokenFile=: agents are accepted only with the site's enrolment token (create one with amtd agent-token --out FILE)")
	}

	// A device sends a keep-alive every KeepAlive=; the idle limit must leave
	// room for one lost or late, or links drop and redial in a loop (the Dell
	// AMT 15 case, spec/apf.md §4 step 7).
	if c := cfg.CIRA; c.IdleTimeout < 2*c.KeepAlive {
		line := p.line("CIRA", 0, "IdleTimeout")
		if line == 0 {
			line = p.line("CIRA", 0, "KeepAlive")
		}
		p.errorf(line, fmt.Sprintf("[CIRA] IdleTimeout=%s must be at least twice KeepAlive=%s, or links drop between keep-alives", c.IdleTimeout, c.KeepAlive))
	}

	// The site's identity is what DHCP, DNS, provisioning and CIRA hand out.
	var needSite []string
	first := 0
	for _, name := range []string{"DHCP", "DNS", "Provisioning", "CIRA"} {
		if enabled(cfg, name) {
			needSite = append(needSite, "["+name+"]")
			if l := p.line(name, 0, "Enable"); first == 0 || l < first {
				first = l
			}
		}
	}
	if len(needSite) > 0 {
		who := strings.Join(needSite, ", ") + " enabled"
		if len(cfg.Site.Domains) == 0 {
			p.errorf(first, fmt.Sprintf("%s: [Site] needs at least one Domain=, the site's DNS suffix, as Domain=corp.example.com", who))
		}
		if len(cfg.Site.Addresses) == 0 {
			p.errorf(first, fmt.Sprintf("%s: [Site] needs at least one Address=, this appliance's address that devices reach, as Address=192.0.2.10", who))
		}
	}

	if cfg.DHCP.Enable {
		if len(cfg.DHCPPools) == 0 {
			p.errorf(p.line("DHCP", 0, "Enable"), "[DHCP] Enable=yes needs at least one [DHCPPool] section with Subnet= and Range=")
		}
		if cfg.DHCP.UpdateDNS && !cfg.DNS.Enable {
			line := p.line("DHCP", 0, "UpdateDNS")
			if line == 0 {
				line = p.line("DHCP", 0, "Enable")
			}
			p.warnf(line, "[DHCP] UpdateDNS=yes does nothing while [DNS] Enable=no: leased host names are not registered anywhere")
		}
	}
	if cfg.Registrar.Enable {
		line := p.line("DNSRegistrar", 0, "Enable")
		if cfg.Registrar.Server == "" {
			p.errorf(line, "[DNSRegistrar] Enable=yes needs Server=, the site's primary DNS server, as Server=ns1.corp.example.com")
		}
		if cfg.Registrar.Key == "" {
			p.errorf(line, "[DNSRegistrar] Enable=yes needs Key=, the name of the TSIG key the site's DNS server accepts updates with")
		}
		if cfg.Registrar.Zone == "" {
			p.errorf(line, "[DNSRegistrar] Enable=yes needs Zone= or a [Site] Domain=")
		}
	}
}

func enabled(cfg *Config, section string) bool {
	switch section {
	case "DHCP":
		return cfg.DHCP.Enable
	case "DNS":
		return cfg.DNS.Enable
	case "DNSRegistrar":
		return cfg.Registrar.Enable
	case "Provisioning":
		return cfg.Provisioning.Enable
	case "CIRA":
		return cfg.CIRA.Enable
	case "API":
		return cfg.API.Enable
	}
	return false
}

// checkListeners refuses two enabled services on one port: the second would
// fail to start, far from the line that caused it.
func (p *parser) checkListeners(cfg *Config) {
	type listener struct {
		section, key, addr string
		tcp, udp           bool
	}
	var ls []listener
	add := func(section, key, addr string, tcp, udp bool) {
		if enabled(cfg, section) && addr != "" {
			ls = append(ls, listener{section, key, addr, tcp, udp})
		}
	}
	add("DHCP", "Listen", cfg.DHCP.Listen, false, true)
	add("DNS", "Listen", cfg.DNS.Listen, true, true)
	add("Provisioning", "HelloListen", cfg.Provisioning.HelloListen, true, false)
	add("Provisioning", "AgentListen", cfg.Provisioning.AgentListen, true, false)
	add("CIRA", "Listen", cfg.CIRA.Listen, true, false)
	add("API", "Listen", cfg.API.Listen, true, false)
	add("API", "MetricsListen", cfg.API.MetricsListen, true, false)
	lineOf := func(l listener) int {
		if line := p.line(l.section, 0, l.key); line > 0 {
			return line
		}
		return p.line(l.section, 0, "Enable")
	}
	for i, a := range ls {
		for _, b := range ls[:i] {
			if (a.tcp && b.tcp || a.udp && b.udp) && sameSocket(a.addr, b.addr) {
				p.errorf(max(lineOf(a), lineOf(b)), fmt.Sprintf("[%s] %s=%s and [%s] %s=%s use the same port: give one of them another", a.section, a.key, a.addr, b.section, b.key, b.addr))
			}
		}
	}
}

// sameSocket reports whether two listen addresses would collide: same port,
// and the same address or either one every address.
func sameSocket(a, b string) bool {
	ha, pa := splitListen(a)
	hb, pb := splitListen(b)
	if pa != pb || pa == "0" {
		return false
	}
	any := func(h string) bool {
		ad, err := netip.ParseAddr(h)
		return h == "" || err == nil && ad.IsUnspecified()
	}
	return ha == hb || any(ha) || any(hb)
}

func splitListen(s string) (host, port string) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return s, ""
	}
	return strings.Trim(s[:i], "[]"), s[i+1:]
}
