package dhcp

import (
	"errors"
	"fmt"
	"strings"
)

// Client FQDN option flags (RFC 4702 §2.1): 0 0 0 0 N E O S.
const (
	fqdnS = 0x01 // S: the server performs the A record update
	fqdnO = 0x02 // O: the server overrode the client's S preference (replies only)
	fqdnE = 0x04 // E: the domain name is in canonical wire format, not ASCII
	fqdnN = 0x08 // N: the server must not perform any DNS update
)

// maxDomainLen is the longest domain name in wire form (RFC 1035 §3.1).
const maxDomainLen = 255

// FQDN is a decoded Client FQDN option, code 81 (RFC 4702).
type FQDN struct {
	Flags          byte
	RCode1, RCode2 byte
	// Name is the domain name without a trailing dot. It may be empty: a
	// client may send option 81 only to set flags (RFC 4702 §3.1).
	Name string
	// Partial is true when the client sent only a leading part of the name
	// (a wire name without the terminating root label, or an ASCII name
	// without a dot) and leaves the rest to the server (RFC 4702 §3.1).
	Partial bool
}

var errFQDNShort = errors.New("option 81: shorter than its 3 fixed bytes")

// ParseFQDN decodes the payload of option 81 (the bytes after code and
// length). It is pure and bounded: a name is at most 255 bytes and every label
// at most 63, as RFC 1035 requires; anything else is an error.
func ParseFQDN(b []byte) (FQDN, error) {
	if len(b) < 3 {
		return FQDN{}, errFQDNShort
	}
	f := FQDN{Flags: b[0], RCode1: b[1], RCode2: b[2]}
	name := b[3:]
	if len(name) > maxDomainLen {
		return FQDN{}, fmt.Errorf("option 81: name of %d bytes, longer than %d", len(name), maxDomainLen)
	}
	if f.Flags&fqdnE == 0 {
		// Deprecated ASCII form (RFC 4702 §2.3.1), still sent by some
		// clients (udhcpc -F without encoding, old dhclient configurations).
		s := string(name)
		s = strings.TrimRight(s, "\x00") // some clients NUL-terminate
		if strings.ContainsAny(s, "\x00") {
			return FQDN{}, errors.New("option 81: NUL inside an ASCII name")
		}
		f.Name = strings.TrimRight(s, ".")
		f.Partial = f.Name != "" && !strings.Contains(s, ".")
		return f, nil
	}
	var labels []string
	for i := 0; ; {
		if i == len(name) {
			// Ran out of bytes before the root label: a partial name.
			f.Partial = len(labels) > 0
			break
		}
		n := int(name[i])
		i++
		if n == 0 {
			if i != len(name) {
				return FQDN{}, errors.New("option 81: bytes after the root label")
			}
			break
		}
		if n > 63 {
			return FQDN{}, fmt.Errorf("option 81: label length %d over 63 (compression is not allowed here)", n)
		}
		if i+n > len(name) {
			return FQDN{}, errors.New("option 81: label runs past the end of the option")
		}
		l := string(name[i : i+n])
		if strings.ContainsAny(l, ".\x00") {
			return FQDN{}, fmt.Errorf("option 81: label %q contains a dot or NUL", l)
		}
		labels = append(labels, l)
		i += n
	}
	f.Name = strings.Join(labels, ".")
	return f, nil
}

// Bytes encodes f as an option 81 payload, in wire form when the E flag is
// set and in ASCII otherwise: the server answers in the encoding the client
// used (RFC 4702 §3.1). A name that is not Partial gets its root label.
func (f FQDN) Bytes() []byte {
	b := []byte{f.Flags, f.RCode1, f.RCode2}
	if f.Flags&fqdnE == 0 {
		return append(b, f.Name...)
	}
	if f.Name != "" {
		for _, l := range strings.Split(f.Name, ".") {
			b = append(b, byte(len(l)))
			b = append(b, l...)
		}
	}
	if !f.Partial {
		b = append(b, 0)
	}
	return b
}
