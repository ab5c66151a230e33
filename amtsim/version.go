package amtsim

import (
	"crypto/tls"
	"fmt"
	"strconv"
	"strings"
)

// Version is an AMT firmware version. The simulator keys every
// generation-dependent behaviour on it (spec/network.md §6: "key on the
// reported version").
type Version struct {
	Major, Minor, Patch, Build int
}

// defaultBuilds gives each supported major a plausible full version string,
// used when a flag names only the major.
var defaultBuilds = map[int]Version{
	11: {11, 8, 94, 4494},
	12: {12, 0, 93, 2334},
	15: {15, 0, 23, 1706},
	16: {16, 0, 15, 1620},
	19: {19, 0, 5, 2090},
}

// ParseVersion reads "15", "16.1" or "15.0.23.1706". A bare major takes the
// default build of that generation; "16" means 16.0, which still has 16992
// open (the port closes from 16.1, spec/network.md §6).
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) == 0 || len(parts) > 4 {
		return Version{}, fmt.Errorf("amtsim: version %q: want MAJOR[.MINOR[.PATCH[.BUILD]]], e.g. 16.1", s)
	}
	var n [4]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || v > 65535 {
			return Version{}, fmt.Errorf("amtsim: version %q: %q is not a number 0–65535", s, p)
		}
		n[i] = v
	}
	if n[0] < 7 || n[0] > 30 {
		return Version{}, fmt.Errorf("amtsim: version %q: major %d is outside AMT's 7–30", s, n[0])
	}
	if len(parts) == 1 {
		if v, ok := defaultBuilds[n[0]]; ok {
			return v, nil
		}
	}
	return Version{n[0], n[1], n[2], n[3]}, nil
}

func (v Version) String() string {
	return fmt.Sprintf("%d.%d.%d.%d", v.Major, v.Minor, v.Patch, v.Build)
}

// short is the three-part form CIM_SoftwareIdentity reports ("12.0.67").
func (v Version) short() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// atLeast reports v ≥ major.minor.
func (v Version) atLeast(major, minor int) bool {
	return v.Major > major || v.Major == major && v.Minor >= minor
}

// NonTLSRemote reports whether remote 16992/16994 are open: they close from
// CSME 16.1 (spec/network.md §6, Intel "Security Considerations").
func (v Version) NonTLSRemote() bool { return !v.atLeast(16, 1) }

// TLSVersions is the range of TLS versions the firmware offers on 16993
// (spec/network.md §6): ≤ 11 TLS 1.0–1.1; 12 adds 1.2 and drops 1.0; 15/16
// drop 1.1. TLS 1.3 support is unverified, so no version offers it.
func (v Version) TLSVersions() (minV, maxV uint16) {
	switch {
	case v.Major <= 11:
		return tls.VersionTLS10, tls.VersionTLS11
	case v.Major < 15:
		return tls.VersionTLS11, tls.VersionTLS12
	default:
		return tls.VersionTLS12, tls.VersionTLS12
	}
}

// CIRAPorts is the list of tcpip-forward requests, in the observed order
// 16993, 16992, 664, 623, 16995, 16994, 5900 (spec/apf.md §4 step 6). From
// 16.1, with the non-TLS ports closed, only the TLS ports and 5900 are
// forwarded: a guess, since whether CSME 16.1+ still forwards 16992/16994
// inside CIRA is unverified.
func (v Version) CIRAPorts() []uint32 {
	if v.NonTLSRemote() {
		return []uint32{16993, 16992, 664, 623, 16995, 16994, 5900}
	}
	return []uint32{16993, 664, 16995, 5900}
}

// rejectsSHA1 reports whether a SHA-1 signature anywhere in a provisioning
// chain fails: from AMT 14 (Intel KB 000090051, spec/activation.md §12).
func (v Version) rejectsSHA1() bool { return v.Major >= 14 }

// serverHeader is AMT's Server: header, a cheap version hint
// (spec/wsman.md §1).
func (v Version) serverHeader() string {
	return "Intel(R) Active Management Technology " + v.String()
}
