// Package guid converts AMT device UUIDs between the raw 16 bytes AMT puts on
// the wire and the text form operators, databases and WS-Man use.
//
// AMT sends UUIDs in SMBIOS/Microsoft GUID order: the first three groups are
// little-endian, the last two are as written (spec/apf.md §6). The hello
// packet uses the same order (spec/activation.md §2.2), and rpc-go's 16-byte
// uuid arrays too (spec/rpc-protocol.md §5).
package guid

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// UUID is a device UUID in text (RFC 4122 display) byte order: UUID[0] is
// the first two hex digits of the text form.
//
// The RFC 4122 variant nibble is deliberately not checked anywhere: AMT
// devices exist whose UUIDs do not carry it, and mps-router's regex that
// requires it makes them silently unreachable (spec/apf.md §6, §9).
type UUID [16]byte

// FromSMBIOS converts raw bytes in SMBIOS order to a UUID. For the text form
// reverse bytes 0–3, 4–5 and 6–7 and copy 8–15 (spec/apf.md §6).
func FromSMBIOS(raw [16]byte) UUID {
	return UUID{
		raw[3], raw[2], raw[1], raw[0],
		raw[5], raw[4],
		raw[7], raw[6],
		raw[8], raw[9], raw[10], raw[11], raw[12], raw[13], raw[14], raw[15],
	}
}

// SMBIOS returns u in the byte order AMT sends on the wire. The swap is its
// own inverse.
func (u UUID) SMBIOS() [16]byte {
	return [16]byte(FromSMBIOS([16]byte(u)))
}

// FromSMBIOSBytes is FromSMBIOS for a slice; b must hold exactly 16 bytes.
func FromSMBIOSBytes(b []byte) (UUID, error) {
	if len(b) != 16 {
		return UUID{}, fmt.Errorf("guid: raw UUID is %d bytes, want 16", len(b))
	}
	return FromSMBIOS([16]byte(b)), nil
}

// String returns the lower-case text form, 8-4-4-4-12. AMT reports upper case
// and operators type lower case, so lookups always use this form.
func (u UUID) String() string {
	var buf [36]byte
	hex.Encode(buf[0:8], u[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], u[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], u[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], u[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:36], u[10:16])
	return string(buf[:])
}

// IsZero reports whether u is all zeros (an unset UUID).
func (u UUID) IsZero() bool { return u == UUID{} }

// MarshalText implements encoding.TextMarshaler with the lower-case text form.
func (u UUID) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler; see Parse.
func (u *UUID) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*u = v
	return nil
}

var errSyntax = errors.New("want 8-4-4-4-12 hex digits, e.g. 4c4c4544-0042-3510-8052-b4c04f4e3132")

// Parse reads the 36-character text form in either case. It also accepts
// surrounding braces, as Windows tools print them.
func Parse(s string) (UUID, error) {
	t := s
	if len(t) == 38 && t[0] == '{' && t[37] == '}' {
		t = t[1:37]
	}
	var u UUID
	if len(t) != 36 || t[8] != '-' || t[13] != '-' || t[18] != '-' || t[23] != '-' {
		return u, fmt.Errorf("guid: parse %q: %w", s, errSyntax)
	}
	groups := [5][2]int{{0, 8}, {9, 13}, {14, 18}, {19, 23}, {24, 36}}
	out := 0
	for _, g := range groups {
		n, err := hex.Decode(u[out:], []byte(t[g[0]:g[1]]))
		if err != nil {
			return UUID{}, fmt.Errorf("guid: parse %q: %w", s, errSyntax)
		}
		out += n
	}
	return u, nil
}

// Canonical returns s in the lower-case form used for lookups, or an error if
// s is not a UUID.
func Canonical(s string) (string, error) {
	u, err := Parse(s)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}
