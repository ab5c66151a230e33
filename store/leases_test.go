package store

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"amtd/secret"
)

func TestLeases(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	mac1, _ := net.ParseMAC("00:11:22:33:44:55")
	mac2, _ := net.ParseMAC("00:11:22:33:44:66")
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l := s.Leases()
	must(t, l.Put(ctx, Lease{MAC: mac1, IP: netip.MustParseAddr("10.0.0.10"), Hostname: "pc1", Expires: t0, State: LeaseOffered}))
	must(t, l.Put(ctx, Lease{MAC: mac2, IP: netip.MustParseAddr("10.0.0.11"), ClientFQDN: "pc2.corp.example.", Expires: t0.Add(time.Hour), State: LeaseBound}))
	// Upsert by MAC.
	must(t, l.Put(ctx, Lease{MAC: mac1, IP: netip.MustParseAddr("10.0.0.12"), Hostname: "pc1", Expires: t0.Add(2 * time.Minute), State: LeaseBound}))
	all, err := l.All(ctx)
	must(t, err)
	if len(all) != 2 {
		t.Fatalf("All: %d leases, want 2: %+v", len(all), all)
	}
	if all[0].MAC.String() != mac1.String() || all[0].IP != netip.MustParseAddr("10.0.0.12") || all[0].State != LeaseBound ||
		!all[0].Expires.Equal(t0.Add(2*time.Minute)) || all[0].Hostname != "pc1" {
		t.Errorf("lease 1 after upsert: %+v", all[0])
	}
	if all[1].ClientFQDN != "pc2.corp.example." {
		t.Errorf("lease 2: %+v", all[1])
	}
	if err := l.Put(ctx, Lease{MAC: mac1, IP: netip.MustParseAddr("10.0.0.12"), State: "stolen"}); err == nil {
		t.Error("Put accepted state \"stolen\"")
	}
	n, err := l.ExpireBefore(ctx, t0.Add(time.Minute*30))
	must(t, err)
	if n != 1 {
		t.Errorf("ExpireBefore: %d, want 1", n)
	}
	must(t, l.Delete(ctx, mac2))
	all, err = l.All(ctx)
	must(t, err)
	if len(all) != 0 {
		t.Errorf("after delete: %+v", all)
	}
}

func TestDNSRecords(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	d := s.DNSRecords()
	must(t, d.Put(ctx, DNSRecord{Name: "pc1.corp.example.", Type: "A", Value: "10.0.0.10", TTL: 5 * time.Minute, Source: SourceDHCP}))
	must(t, d.Put(ctx, DNSRecord{Name: "pc1.corp.example.", Type: "A", Value: "10.0.0.11", TTL: 5 * time.Minute, Source: SourceDHCP}))
	must(t, d.Put(ctx, DNSRecord{Name: "provisionserver.corp.example.", Type: "A", Value: "10.0.0.1", TTL: time.Minute, Source: SourceStatic}))
	// Upsert by (name, type, value).
	must(t, d.Put(ctx, DNSRecord{Name: "provisionserver.corp.example.", Type: "A", Value: "10.0.0.1", TTL: time.Hour, Source: SourceStatic}))
	if err := d.Put(ctx, DNSRecord{Name: "x.", Type: "A", Value: "1.2.3.4", Source: "gossip"}); err == nil {
		t.Error("Put accepted source \"gossip\"")
	}
	all, err := d.List(ctx, "")
	must(t, err)
	if len(all) != 3 {
		t.Fatalf("List all: %+v", all)
	}
	st, err := d.List(ctx, SourceStatic)
	must(t, err)
	if len(st) != 1 || st[0].TTL != time.Hour || st[0].Updated.IsZero() {
		t.Errorf("List static: %+v", st)
	}
	must(t, d.Delete(ctx, "pc1.corp.example.", "A"))
	dh, err := d.List(ctx, SourceDHCP)
	must(t, err)
	if len(dh) != 0 {
		t.Errorf("after Delete: %+v", dh)
	}
}

func TestKeys(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	k := s.Keys()
	if _, err := k.Get(ctx, "tsig1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get absent: %v, want ErrNotFound", err)
	}
	must(t, k.Put(ctx, "tsig1", KeyTSIG, secret.FromString("c2VjcmV0LXRzaWcta2V5"), "test", "setup"))
	v, err := k.Get(ctx, "tsig1")
	must(t, err)
	if v.RevealString() != "c2VjcmV0LXRzaWcta2V5" {
		t.Errorf("Get: wrong value back (len %d)", v.Len())
	}
	must(t, k.Put(ctx, "tsig1", KeyTSIG, secret.FromString("bmV3LWtleQ=="), "test", "replace"))
	v, err = k.Get(ctx, "tsig1")
	must(t, err)
	if v.RevealString() != "bmV3LWtleQ==" {
		t.Error("Get after replace: old value")
	}
	if err := k.Put(ctx, "x", "rot13", secret.FromString("y"), "test", ""); err == nil {
		t.Error("Put accepted kind rot13")
	}
	au, err := s.AuditList(ctx, AuditQuery{Object: "key/tsig1"})
	must(t, err)
	if len(au) != 2 || au[0].Reason != "replace" || au[0].Action != "key.put" || au[0].Actor != "test" {
		t.Errorf("audit: %+v", au)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
