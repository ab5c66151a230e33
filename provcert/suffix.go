package provcert

import (
	"fmt"
	"strings"
)

// NormalizeSuffix returns a domain suffix in the form the store keeps (lower
// case, no trailing dot), or an error saying why it cannot be one: AMT
// matches at least the last two labels, so a suffix has at least two.
func NormalizeSuffix(s string) (string, error) {
	n := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
	if n == "" {
		return "", fmt.Errorf("the domain suffix is empty: give the DNS suffix devices get (DHCP option 15 or the MEBx PKI DNS suffix), like corp.example.com")
	}
	if len(n) > 253 {
		return "", fmt.Errorf("the domain suffix %q is longer than a DNS name can be (253 characters)", s)
	}
	labels := strings.Split(n, ".")
	for _, l := range labels {
		if !validLabel(l) {
			return "", fmt.Errorf("the domain suffix %q has the label %q, which is not a DNS label (letters, digits and '-', 1 to 63 characters, no '-' at either end)", s, l)
		}
	}
	if len(labels) < significantLabels(labels) {
		return "", fmt.Errorf("the domain suffix %q is a public suffix, not a domain: give the site's domain, like corp.example.com", s)
	}
	return n, nil
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// secondLevel are the labels that, under a two-letter country code, form a
// public suffix of two labels (co.uk, com.au, ac.jp...): there the
// registered domain has three labels. MeshCentral keeps such a table of 2 or
// 3 significant labels (spec/activation.md §13).
var secondLevel = map[string]bool{"co": true, "com": true, "net": true, "org": true, "ac": true, "gov": true,
	"edu": true, "ne": true, "or": true, "go": true, "ltd": true, "plc": true, "gv": true, "gob": true}

// privateTLD are suffixes public CAs do not issue for (spec/activation.md §13).
var privateTLD = map[string]bool{"local": true, "corp": true, "lan": true, "internal": true, "home": true, "localdomain": true}

// significantLabels is how many trailing labels name the registered domain.
func significantLabels(labels []string) int {
	n := len(labels)
	if n >= 2 && len(labels[n-1]) == 2 && secondLevel[labels[n-2]] {
		return 3
	}
	return 2
}

// CheckSuffix compares a leaf CN with the domain suffix by the union of the
// rules of spec/activation.md §13:
//   - AMT 2.6 and RPS at upload compare the last two labels (three under
//     co.uk-style suffixes): a CN outside the suffix's registered domain is
//     an error, as no source accepts it;
//   - MeshCentral wants the CN (minus "*.") to be the suffix or a parent of
//     it, and vendor certificates name a host in the suffix: either is clean;
//   - a CN that shares only the registered domain passes current RPS only,
//     and wildcards are unverified in firmware: those are warnings.
func CheckSuffix(cn, suffix string) Problems {
	s, err := NormalizeSuffix(suffix)
	if err != nil {
		return Problems{problem(CheckDomain, "%v", err)}
	}
	if cn == "" {
		return Problems{problem(CheckDomain, "the leaf has no common name (CN), which AMT matches against the device's DNS suffix: get a certificate whose CN is a name in %s", s)}
	}
	c := strings.TrimSuffix(strings.ToLower(cn), ".")
	var ps Problems
	if strings.HasPrefix(c, "*.") {
		c = c[2:]
		ps = append(ps, warning(CheckDomain, "the leaf CN %q is a wildcard: whether AMT firmware accepts wildcard names is unverified (spec/activation.md §13); a certificate for a plain name in %s is the safe choice", cn, s))
	}
	cl, sl := strings.Split(c, "."), strings.Split(s, ".")
	k := significantLabels(sl)
	if len(cl) < k || strings.Join(cl[len(cl)-k:], ".") != strings.Join(sl[len(sl)-k:], ".") {
		if tld := sl[len(sl)-1]; privateTLD[tld] {
			return append(ps, problem(CheckDomain, "the leaf CN %q is not in the domain %s, and no public CA issues certificates for .%s names (Intel KB 000100444): issue one from your own CA for a name in %s and add its root hash to each device, or give devices a public DNS suffix", cn, s, tld, s))
		}
		return append(ps, problem(CheckDomain, "the leaf CN %q is not in the domain %s: AMT compares the CN's last %d labels with the device's DNS suffix, so devices in %s would refuse it; use the certificate for the domain it was issued for, or get one for a name in %s", cn, s, k, s, s))
	}
	if c == s || strings.HasSuffix(c, "."+s) || strings.HasSuffix(s, "."+c) {
		return ps
	}
	return append(ps, warning(CheckDomain, "the leaf CN %q shares only %s with the suffix %s: current RPS accepts that, but MeshCentral and older RPS want the CN to be the suffix, a parent of it or a name in it; prefer a certificate for a name in %s", cn, strings.Join(sl[len(sl)-k:], "."), s, s))
}
