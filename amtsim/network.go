package amtsim

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// NetIdentity is what AMT learns from DHCP (spec/network.md §1): its
// address, the DNS server (option 6) and the domain (option 15), which
// becomes DhcpDNSSuffix and drives the ProvisionServer lookup, certificate
// matching and environment detection.
type NetIdentity struct {
	IP     netip.Addr
	DNS    netip.AddrPort // DNS server, port 53 unless a test moves it
	Suffix string
}

// ReadLease takes the identity from a lease file written by a real DHCP
// client run in the device's network namespace: dhclient's lease file
// ("fixed-address", "option domain-name", "option domain-name-servers"; the
// last lease wins) or a udhcpc script's environment dump (ip=, dns=,
// domain=). Missing fields stay zero.
func ReadLease(path string) (NetIdentity, error) {
	f, err := os.Open(path)
	if err != nil {
		return NetIdentity{}, fmt.Errorf("amtsim: lease file: %w", err)
	}
	defer f.Close()
	var n NetIdentity
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		line := strings.TrimSuffix(strings.TrimSpace(sc.Text()), ";")
		key, val, _ := strings.Cut(line, " ")
		if k, v, ok := strings.Cut(line, "="); ok && !strings.Contains(k, " ") {
			key, val = k, v // udhcpc environment form
		}
		val = strings.Trim(strings.TrimSpace(val), `"`)
		switch key {
		case "fixed-address", "ip":
			if a, err := netip.ParseAddr(val); err == nil {
				n.IP = a
			}
		case "domain":
			n.Suffix = strings.Fields(val + " ")[0]
		case "dns":
			if a, err := netip.ParseAddr(strings.Fields(val + " ")[0]); err == nil {
				n.DNS = netip.AddrPortFrom(a, 53)
			}
		case "option":
			opt, v, _ := strings.Cut(val, " ")
			v = strings.Trim(strings.TrimSpace(v), `"`)
			switch opt {
			case "domain-name":
				n.Suffix = strings.Fields(v + " ")[0]
			case "domain-name-servers":
				first := strings.TrimSpace(strings.Split(v, ",")[0])
				if a, err := netip.ParseAddr(first); err == nil {
					n.DNS = netip.AddrPortFrom(a, 53)
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return NetIdentity{}, fmt.Errorf("amtsim: lease file %s: %w", path, err)
	}
	return n, nil
}
