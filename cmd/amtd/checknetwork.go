package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os/signal"
	"syscall"
	"time"

	"amtd/daemon/config"
	"amtd/netsvc/dhcp"
)

// cmdCheckNetwork checks a site whose own DHCP serves the network (amtd's
// [DHCP] Enable=no): it sends a real DHCPINFORM (and with --discover a
// DISCOVER, never followed by a REQUEST) on the interface, and reports whether
// option 15 names a [Site] domain and whether ProvisionServer.<domain>
// resolves to this appliance through the DNS servers DHCP hands out
// (spec/network.md §1, §2). Exit status: 0 all good, 1 problems, 2 usage.
func cmdCheckNetwork(c *cli, args []string) int {
	f := newCmdFlags(c, "check-network", "[-c FILE] [--interface IF] [--timeout D] [--discover] [--json]",
		"Ask the site's DHCP server what it tells Intel AMT: option 15 must be a [Site] Domain=,\n"+
			"and ProvisionServer.<domain> must resolve to this appliance through the DNS servers it hands out.\n"+
			"Needs root (raw DHCP socket). Exit status: 0 all good, 1 problems found, 2 usage.")
	fs := f.fs
	path := fs.String("c", defaultConfigPath, "the configuration `FILE` naming the site's domains and addresses")
	ifname := fs.String("interface", "", "the `IF` to probe (default: the one holding a [Site] Address=, else the only one up)")
	timeout := fs.Duration("timeout", 6*time.Second, "how long to wait for DHCP and DNS answers")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	discover := fs.Bool("discover", false, "also send a DHCPDISCOVER (never followed by a REQUEST, so no address is taken)")
	if _, code := f.parse(c, args, 0); code >= 0 {
		return code
	}
	if *timeout <= 0 {
		fmt.Fprintf(c.stderr, "amtd check-network: --timeout must be positive\n")
		return exitUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(c.stderr, "amtd check-network: %v\n", err)
		return exitUsage
	}
	if *ifname == "" {
		if *ifname, err = defaultInterface(cfg.Site.Addresses); err != nil {
			fmt.Fprintf(c.stderr, "amtd check-network: %v\n", err)
			return exitUsage
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := dhcp.Probe(ctx, dhcp.ProbeOptions{Interface: *ifname, Timeout: *timeout, Discover: *discover,
		Domains: cfg.Site.Domains, Addresses: cfg.Site.Addresses})
	if err != nil {
		fmt.Fprintf(c.stderr, "amtd check-network: %v\n", err)
		return exitFailure
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		printProbe(c, rep)
	}
	if !rep.OK {
		return exitFailure
	}
	return exitOK
}

func printProbe(c *cli, r *dhcp.ProbeReport) {
	w := c.stdout
	fmt.Fprintf(w, "check-network on %s (%s)\n", r.Interface, r.LocalIP)
	for _, a := range r.Answers {
		dom := fmt.Sprintf("%q", a.Domain)
		if !a.HasOpt15 {
			dom = "(none)"
		}
		fmt.Fprintf(w, "  DHCP %s answered by %s: option 15 %s, DNS %v", a.Kind, a.Server, dom, a.DNS)
		if a.Offered != "" {
			fmt.Fprintf(w, ", offered %s (not requested)", a.Offered)
		}
		fmt.Fprintln(w)
	}
	for _, l := range r.Lookups {
		if l.Error != "" {
			fmt.Fprintf(w, "  DNS %s via %s: %s\n", l.Name, l.Server, l.Error)
		} else {
			fmt.Fprintf(w, "  DNS %s via %s: %v\n", l.Name, l.Server, l.Answers)
		}
	}
	if r.OK {
		fmt.Fprintf(w, "ok: the site's DHCP serves this appliance's domain and ProvisionServer resolves here\n")
		return
	}
	fmt.Fprintf(w, "%d problem(s) found:\n", len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  PROBLEM: %s\n    fix: %s\n", p.Problem, p.Fix)
	}
}

// defaultInterface is the interface holding one of the appliance's
// addresses, else the only interface that is up with an IPv4 address.
func defaultInterface(mine []netip.Addr) (string, error) {
	ifcs, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	var candidates []string
	for _, ifc := range ifcs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		has4 := false
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(n.IP.To4())
			if !ok {
				continue
			}
			has4 = true
			for _, m := range mine {
				if m == ip {
					return ifc.Name, nil
				}
			}
		}
		if has4 {
			candidates = append(candidates, ifc.Name)
		}
	}
	if len(candidates) == 1 {
		return candidates[0], nil
	}
	return "", fmt.Errorf("cannot tell which interface faces the AMT devices (candidates: %v); name it with --interface IF", candidates)
}
