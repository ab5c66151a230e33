package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// recordTypes are the static record types [DNS] Record= accepts.
var recordTypes = []string{"A", "AAAA", "CNAME", "TXT", "PTR"}

// addRecord reads Record=NAME TYPE VALUE. Names are checked for syntax here;
// where a short name lands (one label: in the first [Site] Domain=) is decided
// in resolveRecords, once the whole file has been read.
func addRecord(t *target, v string) error {
	name, rest := cutSpace(v)
	typ, value := cutSpace(rest)
	typ = strings.ToUpper(typ)
	if name == "" || typ == "" || value == "" {
		return errors.New("not a record: write NAME TYPE VALUE, as nas A 192.0.2.5")
	}
	r := DNSRecord{Line: t.line, Type: typ}
	switch typ {
	case "A", "AAAA":
		a, err := parseAddr(value)
		if err != nil {
			return err
		}
		if typ == "A" && !a.Is4() || typ == "AAAA" && !a.Is6() {
			return fmt.Errorf("%s is not an %s address: an A record holds IPv4, an AAAA record IPv6", a, map[bool]string{true: "IPv4", false: "IPv6"}[typ == "A"])
		}
		r.Value = a.String()
	case "CNAME", "PTR":
		target, err := parseDomain(value)
		if err != nil {
			return fmt.Errorf("target %s", err)
		}
		r.Value = target + "."
	case "TXT":
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
		}
		if strings.HasPrefix(value, `"`) || strings.Contains(value, `\`) {
			return errors.New("TXT text cannot start with a quote or hold a backslash: write the text as it is, or in one pair of quotes")
		}
		if len(value) > 255 {
			return errors.New("TXT text is longer than 255 bytes, the most one string holds (RFC 1035 §3.3)")
		}
		r.Value = value
	default:
		return fmt.Errorf("type %s is not one of %s", clip(typ), strings.Join(recordTypes, ", "))
	}
	switch {
	case typ == "PTR":
		if a, err := netip.ParseAddr(name); err == nil {
			r.Name = reverseName(a.Unmap())
			break
		}
		n, err := parseDomain(name)
		if err != nil {
			return fmt.Errorf("name %s", err)
		}
		if !strings.HasSuffix(n, ".in-addr.arpa") && !strings.HasSuffix(n, ".ip6.arpa") {
			return errors.New("a PTR record's name is an address, or a name under in-addr.arpa or ip6.arpa")
		}
		r.Name = n + "."
	case name == "@":
		r.Name = "@"
	default:
		n, err := recordName(name, typ == "TXT")
		if err != nil {
			return fmt.Errorf("name %s", err)
		}
		if strings.HasSuffix(name, ".") {
			n += "." // written fully qualified: no domain is appended
		}
		r.Name = n
	}
	t.cfg.DNSRecords = append(t.cfg.DNSRecords, r)
	return nil
}

// recordName is a domain name; TXT names may have labels with '_'
// (_acme-challenge, _dmarc), which RFC 1123 host names may not.
func recordName(v string, underscore bool) (string, error) {
	if !underscore {
		return parseDomain(v)
	}
	if _, err := parseDomain(strings.ReplaceAll(v, "_", "x")); err != nil {
		return "", err
	}
	return strings.TrimSuffix(strings.ToLower(v), "."), nil
}

// cutSpace splits s at its first space or tab; the rest is trimmed.
func cutSpace(s string) (head, rest string) {
	s = strings.TrimSpace(s)
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i:])
}

// reverseName is the in-addr.arpa or ip6.arpa name of a (RFC 1035 §3.5,
// RFC 3596 §2.5), fully qualified.
func reverseName(a netip.Addr) string {
	var b strings.Builder
	s := a.AsSlice()
	if a.Is4() {
		for i := len(s) - 1; i >= 0; i-- {
			fmt.Fprintf(&b, "%d.", s[i])
		}
		return b.String() + "in-addr.arpa."
	}
	const hex = "0123456789abcdef"
	for i := len(s) - 1; i >= 0; i-- {
		b.WriteByte(hex[s[i]&0xf])
		b.WriteByte('.')
		b.WriteByte(hex[s[i]>>4])
		b.WriteByte('.')
	}
	return b.String() + "ip6.arpa."
}
