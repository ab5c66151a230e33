package rps

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a protocol version major[.minor[.revision]]; missing parts are 0.
type Version struct{ Major, Minor, Revision int }

// ParseVersion reads 1–3 dot-separated non-negative numbers.
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(s, ".")
	if s == "" || len(parts) > 3 {
		return Version{}, fmt.Errorf("rps: version %q: want major[.minor[.revision]]", s)
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || p[0] == '+' {
			return Version{}, fmt.Errorf("rps: version %q: part %d is not a number", s, i+1)
		}
		n[i] = v
	}
	return Version{n[0], n[1], n[2]}, nil
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Revision) }

// Compatible reports whether a server of version s accepts a client of
// version c (RPS VersionChecker.isCompatible, spec/rpc-protocol.md §8): a
// different major is incompatible; with the same minor the server's revision
// must be at least the client's; otherwise the server's minor must be at
// least the client's.
func Compatible(s, c Version) bool {
	if s.Major != c.Major {
		return false
	}
	if s.Minor == c.Minor {
		return s.Revision >= c.Revision
	}
	return s.Minor >= c.Minor
}

// CheckProtocolVersion checks a client's protocolVersion against
// ProtocolVersion and returns RPS's error text when it is not accepted.
func CheckProtocolVersion(client string) error {
	c, err := ParseVersion(client)
	if err != nil {
		return ErrProtocolVersion(client)
	}
	s, _ := ParseVersion(ProtocolVersion)
	if !Compatible(s, c) {
		return ErrProtocolVersion(client)
	}
	return nil
}
