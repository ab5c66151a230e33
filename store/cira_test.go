package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestPutCIRALinks(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	ds := s.Devices()
	const a, b = "01020304-0506-0708-090a-0b0c0d0e0f10", "11020304-0506-0708-090a-0b0c0d0e0f10"
	if err := ds.Put(ctx, Device{UUID: a, CIRA: CIRAState{MPSUsername: "amtuser"}}); err != nil {
		t.Fatal(err)
	}
	t1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	err := ds.PutCIRALinks(ctx, []CIRALink{
		{UUID: a, Connected: true, ConnectedSince: t1, LastSeen: t1.Add(time.Minute), Owner: "amtd1", BoundPorts: []uint16{16992, 16993}, RemoteAddr: "192.0.2.1:5000"},
		{UUID: b, Connected: true}, // unknown device: skipped
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := ds.Get(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	c := d.CIRA
	if !c.Connected || !c.ConnectedSince.Equal(t1) || !c.LastSeen.Equal(t1.Add(time.Minute)) || c.OwnerInstance != "amtd1" ||
		!slices.Equal(c.BoundPorts, []uint16{16992, 16993}) || c.RemoteAddr != "192.0.2.1:5000" || c.MPSUsername != "amtuser" {
		t.Fatalf("after connect: %+v", c)
	}
	if _, err := ds.Get(ctx, b); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown device created: %v", err)
	}
	// Disconnect with an older last-seen: last_seen keeps the newer time.
	if err := ds.PutCIRALinks(ctx, []CIRALink{{UUID: a, LastSeen: t1, LastDisconnected: t1.Add(2 * time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	d, _ = ds.Get(ctx, a)
	if d.CIRA.Connected || !d.CIRA.LastSeen.Equal(t1.Add(time.Minute)) || len(d.CIRA.BoundPorts) != 0 || d.CIRA.MPSUsername != "amtuser" {
		t.Fatalf("after disconnect: %+v", d.CIRA)
	}
	if err := ds.PutCIRALinks(ctx, []CIRALink{{UUID: "nope"}}); err == nil {
		t.Fatal("bad UUID accepted")
	}
}
