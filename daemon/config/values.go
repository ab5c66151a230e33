package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Value parsers. Each takes the trimmed text after '=' and returns the typed
// value or an error that says what is wrong and what to write instead; the
// parser prefixes "[Section] Key=value: ".

// parseBool accepts what systemd's parse_boolean accepts.
func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "yes", "y", "true", "t", "on":
		return true, nil
	case "0", "no", "n", "false", "f", "off":
		return false, nil
	}
	return false, errors.New("not a boolean: write yes or no")
}

// durationUnits are systemd's time span units (systemd.time(7)) and Go's.
var durationUnits = map[string]time.Duration{
	"ns": time.Nanosecond, "nsec": time.Nanosecond,
	"us": time.Microsecond, "usec": time.Microsecond, "µs": time.Microsecond, "μs": time.Microsecond,
	"ms": time.Millisecond, "msec": time.Millisecond,
	"s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	"w": 7 * 24 * time.Hour, "week": 7 * 24 * time.Hour, "weeks": 7 * 24 * time.Hour,
}

// maxDuration bounds every duration: ten years is beyond any lease or TTL and
// far from time.Duration's overflow.
const maxDuration = 10 * 365 * 24 * time.Hour

var errDuration = errors.New("not a duration: write a number and a unit, as 90s, 10min, 1h 30min, 2d or Go's 1h30m")

// parseDuration reads systemd time spans ("90s", "10min", "1h 30min", "2d",
// "1.5h", a bare number is seconds) and Go durations ("10m", "1h30m0s").
func parseDuration(v string) (time.Duration, error) {
	s := strings.TrimSpace(v)
	if s == "" {
		return 0, errDuration
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return checkDuration(float64(n) * float64(time.Second))
	}
	var total float64
	for s != "" {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		if i == 0 || i > 20 {
			return 0, errDuration
		}
		numText := s[:i]
		num, err := strconv.ParseFloat(numText, 64)
		if err != nil {
			return 0, errDuration
		}
		s = strings.TrimLeft(s[i:], " \t")
		j := 0
		for j < len(s) && !(s[j] >= '0' && s[j] <= '9' || s[j] == '.' || s[j] == ' ' || s[j] == '\t') {
			j++
		}
		unit, ok := durationUnits[s[:j]]
		switch {
		case !ok && j == 0:
			return 0, fmt.Errorf("%s has no unit: write %ss or %smin", numText, numText, numText)
		case !ok:
			return 0, fmt.Errorf("unknown unit %s: use s, min, h, d or w (systemd.time(7))", show(s[:j]))
		}
		total += num * float64(unit)
		if total > float64(maxDuration) {
			return 0, fmt.Errorf("longer than %s", formatDuration(maxDuration))
		}
		s = strings.TrimLeft(s[j:], " \t")
	}
	return checkDuration(total)
}

func checkDuration(ns float64) (time.Duration, error) {
	if ns > float64(maxDuration) {
		return 0, fmt.Errorf("longer than %s", formatDuration(maxDuration))
	}
	return time.Duration(math.Round(ns)), nil
}

// formatDuration writes d the way the sample and the man page do: "10min",
// "1h 30min", "5min", "90s".
func formatDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	var parts []string
	for _, u := range []struct {
		name string
		d    time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"min", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}, {"us", time.Microsecond}, {"ns", 1}} {
		if n := d / u.d; n > 0 {
			parts = append(parts, strconv.FormatInt(int64(n), 10)+u.name)
			d -= n * u.d
		}
	}
	return strings.Join(parts, " ")
}

// positiveDuration is a duration that must not be zero (a lease, a refresh
// interval): zero would make the service spin.
func positiveDuration(v string) (time.Duration, error) {
	d, err := parseDuration(v)
	if err == nil && d < time.Second {
		return 0, errors.New("must be at least 1s")
	}
	return d, err
}

// ttl is a DNS TTL: whole seconds, at most 2^31-1 (RFC 2181 §8).
func ttl(v string) (time.Duration, error) {
	d, err := parseDuration(v)
	if err != nil {
		return 0, err
	}
	if d%time.Second != 0 {
		return 0, errors.New("a DNS TTL is whole seconds")
	}
	if d > math.MaxInt32*time.Second {
		return 0, errors.New("a DNS TTL is at most 2147483647s (RFC 2181 §8)")
	}
	return d, nil
}

// parseAddr is an IPv4 or IPv6 address without a zone.
func parseAddr(v string) (netip.Addr, error) {
	a, err := netip.ParseAddr(v)
	if err != nil {
		if _, perr := netip.ParsePrefix(v); perr == nil {
			return netip.Addr{}, errors.New("is a subnet, not an address: drop the /length")
		}
		return netip.Addr{}, errors.New("not an IP address: write 192.0.2.10 or 2001:db8::10")
	}
	if a.Zone() != "" {
		return netip.Addr{}, errors.New("has a zone (%...): write the address without it")
	}
	return a.Unmap(), nil
}

// parseAddr4 is an IPv4 address: DHCPv4 options carry nothing else.
func parseAddr4(v string) (netip.Addr, error) {
	a, err := parseAddr(v)
	if err == nil && !a.Is4() {
		return netip.Addr{}, errors.New("is not IPv4: DHCPv4 options carry IPv4 addresses only")
	}
	return a, err
}

// siteAddr is an address devices reach the appliance on: a real unicast one.
func siteAddr(v string) (netip.Addr, error) {
	a, err := parseAddr(v)
	if err != nil {
		return a, err
	}
	if a.IsUnspecified() || a.IsMulticast() {
		return netip.Addr{}, errors.New("is not an address devices can reach: give this appliance's own address")
	}
	return a, nil
}

// parsePrefix is a CIDR subnet with no host bits set: "192.0.2.1/24" is more
// likely a mistyped length than a subnet, so it is refused with the fix.
func parsePrefix(v string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(v)
	if err != nil {
		if _, aerr := netip.ParseAddr(v); aerr == nil {
			return netip.Prefix{}, errors.New("is an address, not a subnet: add the prefix length, as 192.0.2.0/24")
		}
		return netip.Prefix{}, errors.New("not a subnet: write ADDRESS/LENGTH, as 192.0.2.0/24 or 2001:db8::/64")
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, errors.New("has a zone (%...): write the subnet without it")
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("has host bits set: the subnet is %s", m)
	}
	return p, nil
}

// subnet4 is a DHCPv4 pool subnet.
func subnet4(v string) (netip.Prefix, error) {
	p, err := parsePrefix(v)
	if err != nil {
		return p, err
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, errors.New("is not IPv4: amtd serves DHCPv4 only")
	}
	if p.Bits() > 30 {
		return netip.Prefix{}, errors.New("leaves no addresses for clients: use /30 or shorter")
	}
	return p, nil
}

// parseListen is a listen address ADDRESS:PORT, normalized so that
// netip.ParseAddrPort reads it. The address is explicit: ":53" would mean
// IPv4 or both families depending on the listener, so it is refused with the
// two spellings that say which. Port 0 asks the kernel for a free port (tests).
func parseListen(v string) (string, error) {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", errors.New("not a listen address: write ADDRESS:PORT, as 0.0.0.0:53, [::]:53 or 127.0.0.1:10053")
	}
	p, err := parsePort(port)
	if err != nil {
		return "", err
	}
	if host == "" {
		return "", fmt.Errorf("has no address: write 0.0.0.0:%d for every IPv4 address or [::]:%d for every address", p, p)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return "", fmt.Errorf("host %s is not an IP address: amtd listens on addresses, not names", show(host))
	}
	if a.Zone() != "" {
		return "", errors.New("has a zone (%...): write the address without it")
	}
	return netip.AddrPortFrom(a.Unmap(), p).String(), nil
}

// parseListen4 is a DHCPv4 listen address: IPv4 or every address.
func parseListen4(v string) (string, error) {
	l, err := parseListen(v)
	if err == nil && strings.HasPrefix(l, "[") {
		return "", errors.New("is IPv6: DHCPv4 listens on an IPv4 address, or on every address as 0.0.0.0:67")
	}
	return l, err
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("port %s is not a number from 0 to 65535", show(s))
	}
	return uint16(n), nil
}

// parseUpstream is a resolver: an address, or address:port (default 53).
func parseUpstream(v string) (string, error) {
	if a, err := netip.ParseAddr(v); err == nil && a.Zone() == "" {
		return netip.AddrPortFrom(a.Unmap(), 53).String(), nil
	}
	ap, err := netip.ParseAddrPort(v)
	if err != nil {
		return "", errors.New("not a resolver address: write 192.0.2.53, 192.0.2.53:53 or [2001:db8::53]:53 (names cannot be resolved before there is a resolver)")
	}
	if ap.Addr().Zone() != "" {
		return "", errors.New("has a zone (%...): write the address without it")
	}
	if ap.Port() == 0 {
		return "", errors.New("port 0 is not a resolver's port")
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String(), nil
}

// parseServer is a DNS server to send updates to: HOST or HOST:PORT, HOST an
// address or a name; the port defaults to 53.
func parseServer(v string) (string, error) {
	if a, err := netip.ParseAddr(v); err == nil && a.Zone() == "" {
		return netip.AddrPortFrom(a.Unmap(), 53).String(), nil
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		host, port = v, "53"
	}
	p, err := parsePort(port)
	if err != nil {
		return "", err
	}
	if p == 0 {
		return "", errors.New("port 0 is not a DNS server's port")
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Zone() == "" {
		return netip.AddrPortFrom(a.Unmap(), p).String(), nil
	}
	name, err := parseDomain(host)
	if err != nil {
		return "", errors.New("not a server: write an address or host name, optionally with :PORT, as 192.0.2.53 or ns1.corp.example.com:53")
	}
	return net.JoinHostPort(name, strconv.Itoa(int(p))), nil
}

// parseMAC is an Ethernet address, aa:bb:cc:dd:ee:ff or aa-bb-cc-dd-ee-ff.
func parseMAC(v string) ([6]byte, error) {
	var mac [6]byte
	hw, err := net.ParseMAC(v)
	if err != nil || len(hw) != 6 {
		return mac, errors.New("not a MAC address: write six hex bytes, as 00:16:3e:12:34:56")
	}
	copy(mac[:], hw)
	switch {
	case mac == [6]byte{}:
		return mac, errors.New("is all zeros, which no network card has")
	case mac[0]&1 == 1:
		return mac, errors.New("is a multicast address (low bit of the first byte set), which no network card has")
	}
	return mac, nil
}

// parseDomain is a DNS name made of RFC 1123 host name labels (letters,
// digits, '-', not at a label's ends), at most 253 characters. It returns it
// in lower case without a trailing dot.
func parseDomain(v string) (string, error) {
	s := strings.TrimSuffix(strings.ToLower(v), ".")
	if s == "" {
		return "", errors.New("is empty: write a domain name, as corp.example.com")
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return "", errors.New("is an IP address, not a domain name")
	}
	if len(s) > 253 {
		return "", errors.New("is longer than 253 characters, the most a DNS name can have")
	}
	for label := range strings.SplitSeq(s, ".") {
		if err := checkLabel(label); err != nil {
			return "", err
		}
	}
	return s, nil
}

func checkLabel(l string) error {
	switch {
	case l == "":
		return errors.New("has an empty label (two dots in a row, or a leading dot)")
	case len(l) > 63:
		return fmt.Errorf("label %s is longer than 63 characters", show(l))
	case l[0] == '-' || l[len(l)-1] == '-':
		return fmt.Errorf("label %s starts or ends with '-' (RFC 1123)", show(l))
	}
	for _, c := range []byte(l) {
		if c >= 0x80 {
			return fmt.Errorf("label %s is not ASCII: write an internationalized name in its xn-- form (RFC 5891)", show(l))
		}
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("label %s has %s: host names use letters, digits and '-' (RFC 1123)", show(l), show(string(rune(c))))
		}
	}
	return nil
}

// parseKeyName is a TSIG key name: a domain name (RFC 8945 §4.2) whose
// labels may also have '_', as BIND key names often do.
func parseKeyName(v string) (string, error) {
	if _, err := parseDomain(strings.ReplaceAll(v, "_", "x")); err != nil {
		return "", err
	}
	return strings.TrimSuffix(strings.ToLower(v), "."), nil
}

// parseFQDN is a host name with at least two labels: the name in the
// appliance's certificates and the one devices dial.
func parseFQDN(v string) (string, error) {
	s, err := parseDomain(v)
	if err == nil && !strings.Contains(s, ".") {
		return "", fmt.Errorf("is not fully qualified: write %s.corp.example.com", s)
	}
	return s, err
}

// parseHostname is a reservation's host name: one label or a full name.
func parseHostname(v string) (string, error) { return parseDomain(v) }

// parsePath is an absolute path, cleaned. systemd starts services with / as
// the working directory, so a relative path would mean something else there.
func parsePath(v string) (string, error) {
	if !strings.HasPrefix(v, "/") {
		return "", errors.New("is not an absolute path: start it with /")
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return "", errors.New("has a control character")
		}
	}
	return filepath.Clean(v), nil
}

// unixSocketMax is sun_path's size less the NUL (unix(7)).
const unixSocketMax = 107

func parseSocketPath(v string) (string, error) {
	p, err := parsePath(v)
	if err == nil && len(p) > unixSocketMax {
		return "", fmt.Errorf("is %d bytes: a unix socket path has at most %d (unix(7)); choose a shorter one", len(p), unixSocketMax)
	}
	return p, err
}

func parseLevel(v string) (string, error) {
	switch s := strings.ToLower(v); s {
	case "debug", "info", "warn", "error":
		return s, nil
	case "warning":
		return "warn", nil
	}
	return "", errors.New("not a log level: write debug, info, warn or error")
}

func parseFormat(v string) (string, error) {
	switch s := strings.ToLower(v); s {
	case "auto", "journal", "text", "json":
		return s, nil
	}
	return "", errors.New("not a log format: write auto, journal, text or json")
}

// parseTunnelTrust is [Provisioning] AgentTLSTrust=.
func parseTunnelTrust(v string) (string, error) {
	switch s := strings.ToLower(v); s {
	case "odca", "log":
		return s, nil
	}
	return "", errors.New("not a trust policy: write odca (AMT's On-Die CA chain, checked) or log (anything, logged)")
}

// parseGroup is a group name as useradd accepts it, or a numeric gid. Whether
// the group exists is the daemon's check at start, not the file's.
func parseGroup(v string) (string, error) {
	if _, err := strconv.ParseUint(v, 10, 32); err == nil {
		return v, nil
	}
	ok := len(v) <= 32 && v[0] != '-'
	for _, c := range []byte(v) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			ok = false
		}
	}
	if !ok {
		return "", errors.New("not a group name: letters, digits, '_', '-' and '.', at most 32, or a numeric gid")
	}
	return v, nil
}

// parseInterface is a network interface name (IFNAMSIZ is 16 with the NUL).
func parseInterface(v string) (string, error) {
	if len(v) > 15 || v == "." || v == ".." || strings.ContainsAny(v, "/ \t:") {
		return "", errors.New("not an interface name: at most 15 characters, no '/', ':' or spaces, as eth0 or enp3s0")
	}
	return v, nil
}

func countIn(lo, hi int) func(string) (int, error) {
	return func(v string) (int, error) {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return 0, fmt.Errorf("not a whole number from %d to %d", lo, hi)
		}
		return n, nil
	}
}

// tsigAlgorithms are the HMACs RFC 8945 §6 lists as implementable, as the
// names nsupdate and BIND use.
var tsigAlgorithms = []string{"hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1"}

func parseAlgorithm(v string) (string, error) {
	s := strings.TrimSuffix(strings.ToLower(v), ".")
	for _, a := range tsigAlgorithms {
		if s == a {
			return s, nil
		}
	}
	if s == "hmac-md5" || s == "hmac-md5.sig-alg.reg.int" {
		return "", errors.New("HMAC-MD5 is not supported (RFC 8945 §6 deprecates it): use hmac-sha256")
	}
	return "", fmt.Errorf("not a TSIG algorithm: write one of %s", strings.Join(tsigAlgorithms, ", "))
}

// parseRange is START-END, two IPv4 addresses, START <= END. Whether it lies
// inside the pool's subnet is checked when the whole section is read.
func parseRange(v string) (AddrRange, error) {
	a, b, ok := strings.Cut(v, "-")
	if !ok {
		return AddrRange{}, errors.New("not a range: write START-END, as 192.0.2.100-192.0.2.199")
	}
	start, err := parseAddr4(strings.TrimSpace(a))
	if err != nil {
		return AddrRange{}, fmt.Errorf("start %s", err)
	}
	end, err := parseAddr4(strings.TrimSpace(b))
	if err != nil {
		return AddrRange{}, fmt.Errorf("end %s", err)
	}
	if end.Less(start) {
		return AddrRange{}, fmt.Errorf("ends before it starts: write %s-%s", end, start)
	}
	return AddrRange{Start: start, End: end}, nil
}
