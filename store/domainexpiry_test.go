package store

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"amtd/secret"
)

func TestDomainDaysLeft(t *testing.T) {
	exp := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	d := Domain{LeafExpiry: exp}
	for _, tc := range []struct {
		now          time.Time
		days         int
		soon, passed bool
	}{
		{exp.AddDate(0, 0, -90), 90, false, false},
		{exp.Add(-ExpiryWarning - time.Second), 30, false, false},
		{exp.Add(-ExpiryWarning + time.Second), 29, true, false},
		{exp.Add(-time.Hour), 0, true, false},
		{exp, 0, true, true},
		{exp.Add(time.Hour), -1, true, true},
		{exp.AddDate(0, 0, 10), -10, true, true},
	} {
		if got := d.DaysLeft(tc.now); got != tc.days {
			t.Errorf("DaysLeft at %s = %d, want %d", tc.now, got, tc.days)
		}
		if d.ExpiresSoon(tc.now) != tc.soon || d.Expired(tc.now) != tc.passed {
			t.Errorf("at %s: soon %v expired %v, want %v %v", tc.now, d.ExpiresSoon(tc.now), d.Expired(tc.now), tc.soon, tc.passed)
		}
	}
}

// TestDomainsLifecycle adds, replaces, lists by expiry and removes domains
// in a real SQLite file, and checks that neither .pfx bytes nor password
// reach the file in the clear.
func TestDomainsLifecycle(t *testing.T) {
	ctx := context.Background()
	s, opts := newTestStore(t)
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	ds := s.Domains()
	pfx1, pfx2, pw := "PFX-ONE-plaintext-bytes", "PFX-TWO-plaintext-bytes", "pfx-password-plaintext"
	put := func(suffix, pfx string, exp time.Time) {
		t.Helper()
		must(t, ds.Put(ctx, Domain{Suffix: suffix, PFX: secret.FromString(pfx), PFXPassword: secret.FromString(pw), RootSHA256: "aa", LeafExpiry: exp,
			Metadata: json.RawMessage(`{"leaf_cn":"x"}`)}, "test", "add"))
	}
	put("corp.example.com", pfx1, now.AddDate(0, 0, 10))
	put("lab.example.com", pfx1, now.AddDate(1, 0, 0))
	put("old.example.com", pfx1, now.AddDate(0, 0, -1))
	if ok, err := ds.Exists(ctx, "Corp.Example.com."); !ok || err != nil {
		t.Fatalf("Exists = %v, %v", ok, err)
	}
	if ok, err := ds.Exists(ctx, "nope.example.com"); ok || err != nil {
		t.Fatalf("Exists(absent) = %v, %v", ok, err)
	}
	exp, err := ds.Expiring(ctx, now)
	must(t, err)
	if len(exp) != 2 || exp[0].Suffix != "old.example.com" || exp[1].Suffix != "corp.example.com" {
		t.Fatalf("Expiring = %+v", exp)
	}
	before, err := ds.Get(ctx, "corp.example.com")
	must(t, err)
	// replace-cert: same suffix, new file; created stays, updated moves.
	s.now = func() time.Time { return time.Now().Add(time.Hour) }
	put("corp.example.com", pfx2, now.AddDate(2, 0, 0))
	after, err := ds.Get(ctx, "corp.example.com")
	must(t, err)
	if !after.Created.Equal(before.Created) || !after.Updated.After(before.Updated) {
		t.Errorf("replace: created %s→%s updated %s→%s", before.Created, after.Created, before.Updated, after.Updated)
	}
	if string(after.PFX.Reveal()) != pfx2 || string(after.PFXPassword.Reveal()) != pw {
		t.Error("replaced domain does not open to the new file")
	}
	if exp, _ := ds.Expiring(ctx, now); len(exp) != 1 {
		t.Errorf("after replace, expiring = %+v", exp)
	}
	must(t, ds.Delete(ctx, "old.example.com", "test", "remove"))
	if ok, _ := ds.Exists(ctx, "old.example.com"); ok {
		t.Error("deleted domain exists")
	}
	must(t, s.Close())
	raw, err := os.ReadFile(opts.Path)
	must(t, err)
	wal, _ := os.ReadFile(opts.Path + "-wal")
	for _, p := range []string{pfx1, pfx2, pw} {
		if bytes.Contains(raw, []byte(p)) || bytes.Contains(wal, []byte(p)) {
			t.Errorf("%q is in the database file in the clear", p)
		}
	}
}
