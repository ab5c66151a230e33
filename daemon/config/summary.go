package config

import (
	"fmt"
	"strings"
)

// Services names the services the configuration enables, in the order the
// daemon starts them.
func (c *Config) Services() []string {
	var s []string
	for _, name := range []string{"DNS", "DHCP", "DNSRegistrar", "Provisioning", "CIRA", "API"} {
		if enabled(c, name) {
			s = append(s, strings.ToLower(name))
		}
	}
	return s
}

// Summary is one line saying what the configuration runs, for `amtd
// check-config` and the daemon's start message:
// "site corp.example.com (amtd.corp.example.com, 192.0.2.10); enabled: dns (2 records), dhcp (1 pool, 1 reservation)".
func (c *Config) Summary() string {
	var b strings.Builder
	if len(c.Site.Domains) > 0 {
		fmt.Fprintf(&b, "site %s (%s", strings.Join(c.Site.Domains, ", "), c.Site.Hostname)
		for _, a := range c.Site.Addresses {
			fmt.Fprintf(&b, ", %s", a)
		}
		b.WriteString("); ")
	}
	var on []string
	for _, s := range c.Services() {
		switch s {
		case "dns":
			s += fmt.Sprintf(" on %s (%s)", c.DNS.Listen, plural(len(c.DNSRecords), "record"))
		case "dhcp":
			s += fmt.Sprintf(" on %s (%s, %s)", c.DHCP.Listen, plural(len(c.DHCPPools), "pool"), plural(len(c.Reservations), "reservation"))
		case "dnsregistrar":
			s += fmt.Sprintf(" to %s", c.Registrar.Server)
		}
		on = append(on, s)
	}
	if len(on) == 0 {
		b.WriteString("no network service enabled (only the control socket)")
	} else {
		b.WriteString("enabled: " + strings.Join(on, ", "))
	}
	return b.String()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
