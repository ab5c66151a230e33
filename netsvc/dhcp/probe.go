package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/miekg/dns"
)

// ProbeOptions say what `amtd check-network` asks the site's DHCP.
type ProbeOptions struct {
	Interface string
	Timeout   time.Duration
	// Discover also sends a DISCOVER (never followed by a REQUEST, so no
	// address is taken) for servers that do not answer INFORM.
	Discover bool
	// Domains are the appliance's [Site] domains; Addresses its [Site] addresses.
	Domains   []string
	Addresses []netip.Addr
}

// Finding is one problem, with what to do about it.
type Finding struct {
	Problem string `json:"problem"`
	Fix     string `json:"fix"`
}

// DHCPAnswer is what one DHCP reply said.
type DHCPAnswer struct {
	Kind     string   `json:"kind"` // "INFORM" or "DISCOVER"
	Server   string   `json:"server"`
	Domain   string   `json:"domain"` // option 15, "" if absent
	DNS      []string `json:"dns"`    // option 6
	Offered  string   `json:"offered,omitempty"`
	HasOpt15 bool     `json:"has_option_15"`
}

// Lookup is one ProvisionServer query.
type Lookup struct {
	Name    string   `json:"name"`
	Server  string   `json:"server"`
	Answers []string `json:"answers"`
	Error   string   `json:"error,omitempty"`
}

// ProbeReport is the whole check, printed as text or JSON.
type ProbeReport struct {
	Interface string       `json:"interface"`
	LocalIP   string       `json:"local_ip"`
	Answers   []DHCPAnswer `json:"dhcp"`
	Lookups   []Lookup     `json:"lookups"`
	Problems  []Finding    `json:"problems"`
	OK        bool         `json:"ok"`
}

// Probe asks the site's DHCP server on opts.Interface what it hands out, by
// a real DHCPINFORM (RFC 2131 §3.4: it takes no address) and optionally a
// DISCOVER, then checks that option 15 names one of the appliance's domains
// and that ProvisionServer.<option 15> resolves to the appliance through the
// DNS servers DHCP hands out (spec/network.md §1, §2).
func Probe(ctx context.Context, opts ProbeOptions) (*ProbeReport, error) {
	ifc, err := net.InterfaceByName(opts.Interface)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w (list them with `ip link`)", opts.Interface, err)
	}
	local, err := interfaceIPv4(ifc)
	if err != nil {
		return nil, err
	}
	r := &ProbeReport{Interface: ifc.Name, LocalIP: local.String()}
	c, err := nclient4.New(ifc.Name, nclient4.WithTimeout(opts.Timeout/3), nclient4.WithRetry(3))
	if err != nil {
		return nil, fmt.Errorf("DHCP client on %s: %w (needs root or CAP_NET_RAW)", ifc.Name, err)
	}
	defer c.Close()

	ictx, cancel := context.WithTimeout(ctx, opts.Timeout)
	ack, ierr := c.Inform(ictx, local.AsSlice())
	cancel()
	if ierr == nil {
		r.Answers = append(r.Answers, answerOf("INFORM", ack))
	}
	if opts.Discover {
		dctx, cancel := context.WithTimeout(ctx, opts.Timeout)
		off, derr := c.DiscoverOffer(dctx, dhcpv4.WithBroadcast(true))
		cancel()
		if derr == nil {
			r.Answers = append(r.Answers, answerOf("DISCOVER", off))
		}
	}
	if len(r.Answers) == 0 {
		asked := "DHCPINFORM"
		if opts.Discover {
			asked += " or DHCPDISCOVER"
		}
		r.Problems = append(r.Problems, Finding{
			Problem: fmt.Sprintf("no DHCP server answered a %s on %s within %s", asked, ifc.Name, opts.Timeout),
			Fix:     "check that the site's DHCP server (or its relay, ip helper-address) serves this link; try --discover for servers that ignore INFORM",
		})
		return r, nil
	}
	r.assess(ctx, opts)
	return r, nil
}

func answerOf(kind string, m *dhcpv4.DHCPv4) DHCPAnswer {
	a := DHCPAnswer{Kind: kind, Domain: normDomain(m.DomainName()), HasOpt15: m.Options.Has(dhcpv4.OptionDomainName)}
	if sid := m.ServerIdentifier(); sid != nil {
		a.Server = sid.String()
	}
	for _, d := range m.DNS() {
		a.DNS = append(a.DNS, d.String())
	}
	if kind == "DISCOVER" {
		a.Offered = m.YourIPAddr.String()
	}
	return a
}

// assess turns the answers into findings and runs the ProvisionServer lookups.
func (r *ProbeReport) assess(ctx context.Context, opts ProbeOptions) {
	var want []string
	for _, d := range opts.Domains {
		want = append(want, normDomain(d))
	}
	var mine []string
	for _, a := range opts.Addresses {
		if a.Is4() {
			mine = append(mine, a.String())
		}
	}
	seen := map[string]bool{}
	for _, a := range r.Answers {
		who := fmt.Sprintf("the DHCP server %s (%s)", a.Server, a.Kind)
		switch {
		case !a.HasOpt15 || a.Domain == "":
			r.add(fmt.Sprintf("%s sends no option 15 (domain name)", who),
				fmt.Sprintf("configure option 15 = %s on the site's DHCP scope; AMT finds ProvisionServer.<option 15> and matches the provisioning certificate against it (spec/network.md §1)", first(want)))
			continue
		case strings.HasSuffix(a.Domain, ".local") || a.Domain == "local":
			r.add(fmt.Sprintf("%s sends option 15 %q, a .local suffix", who, a.Domain),
				fmt.Sprintf("serve the public domain the provisioning certificate names (%s): internal suffixes such as .local cannot match a purchased certificate (spec/network.md §1.2, Intel KB 000100444)", first(want)))
		case !slices.Contains(want, a.Domain):
			r.add(fmt.Sprintf("%s sends option 15 %q, which is not a [Site] Domain= of this appliance (%s)", who, a.Domain, strings.Join(want, ", ")),
				fmt.Sprintf("set option 15 to %s on the site's DHCP scope, or add Domain=%s to [Site] if this appliance holds a certificate for it", first(want), a.Domain))
		}
		if len(a.DNS) == 0 {
			r.add(fmt.Sprintf("%s sends no DNS servers (option 6)", who),
				"configure option 6 with DNS servers that answer ProvisionServer.<domain>; AMT resolves it with the DHCP-supplied DNS (spec/network.md §1)")
			continue
		}
		name := "provisionserver." + a.Domain + "."
		for _, srv := range a.DNS {
			if seen[name+srv] {
				continue
			}
			seen[name+srv] = true
			r.lookup(ctx, opts.Timeout, name, srv, mine)
		}
	}
	r.OK = len(r.Problems) == 0
}

func (r *ProbeReport) add(problem, fix string) {
	r.Problems = append(r.Problems, Finding{Problem: problem, Fix: fix})
}

// lookup resolves ProvisionServer.<domain> A through one DNS server and
// records whether it names this appliance.
func (r *ProbeReport) lookup(ctx context.Context, timeout time.Duration, name, server string, mine []string) {
	l := Lookup{Name: "ProvisionServer." + strings.TrimPrefix(strings.TrimSuffix(name, "."), "provisionserver."), Server: server}
	c := &dns.Client{Timeout: timeout}
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, _, err := c.ExchangeContext(qctx, m, net.JoinHostPort(server, "53"))
	switch {
	case err != nil:
		l.Error = err.Error()
		r.add(fmt.Sprintf("DNS server %s (from DHCP option 6) did not answer for %s: %v", server, l.Name, err),
			"make the DNS servers DHCP hands out reachable from this link, or hand out ones that are")
	case resp.Rcode != dns.RcodeSuccess || len(aRecords(resp)) == 0:
		l.Error = dns.RcodeToString[resp.Rcode]
		if resp.Rcode == dns.RcodeSuccess {
			l.Error = "no A record"
		}
		r.add(fmt.Sprintf("%s does not resolve through %s (%s)", l.Name, server, l.Error),
			fmt.Sprintf("add an A record %s → %s in the site's DNS (amtd's [DNSRegistrar] can keep it there), or hand out amtd's own DNS", l.Name, strings.Join(mine, ", ")))
	default:
		l.Answers = aRecords(resp)
		var foreign []string
		for _, a := range l.Answers {
			if !slices.Contains(mine, a) {
				foreign = append(foreign, a)
			}
		}
		if len(foreign) > 0 {
			r.add(fmt.Sprintf("%s resolves through %s to %s, not to this appliance (%s)", l.Name, server, strings.Join(foreign, ", "), strings.Join(mine, ", ")),
				fmt.Sprintf("point %s at %s (another provisioning server would receive the AMT hellos), or add that address to [Site] Address= if it is this appliance", l.Name, strings.Join(mine, ", ")))
		}
	}
	r.Lookups = append(r.Lookups, l)
}

func aRecords(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

func first(s []string) string {
	if len(s) == 0 {
		return "the site's domain"
	}
	return s[0]
}

func interfaceIPv4(ifc *net.Interface) (netip.Addr, error) {
	addrs, err := ifc.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("interface %s: %w", ifc.Name, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP.To4()); ok && !ip.IsLoopback() {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, errors.New("interface " + ifc.Name + " has no IPv4 address: DHCPINFORM needs one (run check-network on the appliance's configured interface)")
}
