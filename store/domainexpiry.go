package store

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"
)

// ExpiryWarning is how long before its leaf expires a domain's provisioning
// certificate is reported as expiring: vendors take days to reissue, and an
// expired chain stops every ACM activation of the domain (spec/activation.md
// §12.5).
const ExpiryWarning = 30 * 24 * time.Hour

// DaysLeft is the number of whole days until the leaf expires at now: 0 on
// its last day, negative once it has expired.
func (d Domain) DaysLeft(now time.Time) int {
	return int(math.Floor(d.LeafExpiry.Sub(now).Hours() / 24))
}

// ExpiresSoon reports whether the leaf expires within ExpiryWarning of now,
// or already has.
func (d Domain) ExpiresSoon(now time.Time) bool {
	return d.LeafExpiry.Sub(now) < ExpiryWarning
}

// Expired reports whether the leaf has expired at now.
func (d Domain) Expired(now time.Time) bool { return !now.Before(d.LeafExpiry) }

// Expiring lists the domains whose certificate expires within ExpiryWarning
// of now (or has expired), soonest first, without their sealed values.
func (ds *Domains) Expiring(ctx context.Context, now time.Time) ([]Domain, error) {
	all, err := ds.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []Domain
	for _, d := range all {
		if d.ExpiresSoon(now) {
			out = append(out, d)
		}
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].LeafExpiry.Before(out[j-1].LeafExpiry); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

// Exists reports whether the store has the domain, without opening its
// sealed values.
func (ds *Domains) Exists(ctx context.Context, suffix string) (bool, error) {
	suffix = strings.TrimSuffix(strings.ToLower(suffix), ".")
	var n int
	if err := ds.s.db.QueryRowContext(ctx, `SELECT count(*) FROM domains WHERE suffix = ?`, suffix).Scan(&n); err != nil {
		return false, fmt.Errorf("domain %s: %w", suffix, err)
	}
	return n > 0, nil
}
