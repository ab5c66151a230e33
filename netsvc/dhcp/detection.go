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
// 15 against: the well-known risky intranet suffixes, which operators enter
// on devices configured elsewhere. Devices amtd configures for CIRA get a
// random "<hex>.amtd.invalid" string (netsvc/provision, as RPS does with
// "<uuid>.com"), which no served domain can equal or end with.
func detectionStrings(*config.Config) []string {
	return append([]string(nil), riskyDetectionStrings...)
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
