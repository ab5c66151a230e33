package dhcp

import (
	"fmt"
	"strings"

	"amtd/daemon/config"
)

// riskyDetectionStrings are intranet suffixes operators commonly enter as AMT
// environment-detection strings ("am I inside the enterprise?"). A device
// whose detection string matches the DHCP domain believes it is inside and
// never starts CIRA (spec/network.md §5; MeshCentral #5679, Intel KB 000059019).
var riskyDetectionStrings = []string{"local", "localdomain", "lan", "home", "internal", "intranet", "corp"}

// detectionStrings returns the detection strings to compare the served option
// 15 against. amtd will later configure devices itself with a random
// "<uuid>.com" string, as RPS does; until config carries the devices' strings,
// it uses the well-known risky suffixes plus, when CIRA is enabled, the domain
// of the appliance's own host name, which is the name devices dial for CIRA and
// so the first thing an operator would enter as "the intranet".
func detectionStrings(cfg *config.Config) []string {
	s := append([]string(nil), riskyDetectionStrings...)
	if cfg.CIRA.Enable {
		host := normDomain(cfg.Site.Hostname)
		if _, dom, ok := strings.Cut(host, "."); ok && dom != "" {
			s = append(s, dom)
		} else if host == "" && len(cfg.Site.Domains) > 0 {
			s = append(s, normDomain(cfg.Site.Domains[0]))
		}
	}
	return s
}

// detectionMatch reports the first detection string that domain equals or
// ends with (at a label boundary). Whether AMT compares exactly or by suffix
// is unverified (spec/network.md §5), so both count as a match.
func detectionMatch(domain string, detection []string) (string, bool) {
	domain = normDomain(domain)
	for _, d := range detection {
		d = normDomain(d)
		if d == "" {
			continue
		}
		if domain == d || strings.HasSuffix(domain, "."+d) {
			return d, true
		}
	}
	return "", false
}

// detectionWarning is the warning logged and shown in Status() when the
// served option 15 would keep CIRA devices from connecting, or "".
func detectionWarning(domain string, detection []string) string {
	d, ok := detectionMatch(domain, detection)
	if !ok {
		return ""
	}
	return fmt.Sprintf("option 15 %q matches CIRA environment-detection string %q: AMT devices that have it will think they are inside the enterprise and never start CIRA; give devices a detection string that differs (a random <uuid>.com, as RPS does) or serve another domain (spec/network.md §5)", domain, d)
}
