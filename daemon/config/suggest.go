package config

import "strings"

// suggest returns " (did you mean [Name]?)" for the candidate closest to
// name, when one is close enough to be a plausible typo, or "". Case is
// ignored when comparing, since a wrong case is the commonest slip and
// systemd's keys are case-sensitive.
func suggest(name string, candidates []string, before, after string) string {
	// Long garbage is no typo, and an edit distance over it would be slow.
	if len(name) > 64 {
		return ""
	}
	low := strings.ToLower(strings.TrimSpace(name))
	best, bestDist := "", -1
	for _, c := range candidates {
		lc := strings.ToLower(c)
		d := editDistance(low, lc)
		// A prefix or a missing suffix ("Lease" for "LeaseTime") is as
		// likely a slip as a changed letter.
		if len(low) >= 3 && (strings.HasPrefix(lc, low) || strings.HasPrefix(low, lc)) {
			d = min(d, 2)
		}
		if d <= max(2, len(lc)/3) && (bestDist < 0 || d < bestDist) {
			best, bestDist = c, d
		}
	}
	if best == "" || best == name {
		return ""
	}
	return " (did you mean " + before + best + after + "?)"
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
