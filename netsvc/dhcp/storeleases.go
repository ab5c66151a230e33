package dhcp

import (
	"context"
	"net"
	"time"

	"amtd/netsvc"
	"amtd/store"
)

// leasesFrom returns the lease table of the store in deps, or nil when the
// daemon runs without one.
func leasesFrom(deps netsvc.Deps) LeaseStore {
	if deps.Store == nil {
		return nil
	}
	return storeLeases{deps.Store.Leases()}
}

// storeLeases adapts store.Leases (the dhcp_leases table) to LeaseStore.
type storeLeases struct{ l *store.Leases }

func (s storeLeases) Put(ctx context.Context, l Lease) error {
	return s.l.Put(ctx, store.Lease(l))
}

func (s storeLeases) Delete(ctx context.Context, mac net.HardwareAddr) error {
	return s.l.Delete(ctx, mac)
}

func (s storeLeases) All(ctx context.Context) ([]Lease, error) {
	all, err := s.l.All(ctx)
	out := make([]Lease, len(all))
	for i, l := range all {
		out[i] = Lease(l)
	}
	return out, err
}

func (s storeLeases) ExpireBefore(ctx context.Context, t time.Time) (int, error) {
	return s.l.ExpireBefore(ctx, t)
}
