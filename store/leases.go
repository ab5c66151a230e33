package store

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Lease states as the DHCP server records them.
const (
	LeaseOffered  = "offered"
	LeaseBound    = "bound"
	LeaseDeclined = "declined"
	LeaseReleased = "released"
)

// Lease is one DHCP lease, keyed by the client's hardware address.
type Lease struct {
	MAC        net.HardwareAddr
	IP         netip.Addr
	Hostname   string // option 12
	ClientFQDN string // option 81
	Expires    time.Time
	State      string // offered|bound|declined|released
}

// Leases is the dhcp_leases table.
type Leases struct{ s *Store }

func validLeaseState(st string) bool {
	switch st {
	case LeaseOffered, LeaseBound, LeaseDeclined, LeaseReleased:
		return true
	}
	return false
}

// Put inserts or replaces the lease for x.MAC.
func (l *Leases) Put(ctx context.Context, x Lease) error {
	if len(x.MAC) == 0 {
		return fmt.Errorf("lease put: no MAC address")
	}
	if !x.IP.IsValid() {
		return fmt.Errorf("lease put %s: no IP address", x.MAC)
	}
	if !validLeaseState(x.State) {
		return fmt.Errorf("lease put %s: state %q is not offered, bound, declined or released", x.MAC, x.State)
	}
	_, err := l.s.db.ExecContext(ctx, `INSERT INTO dhcp_leases(mac, ip, hostname, client_fqdn, expires, state, updated)
		VALUES (?,?,?,?,?,?,?)
		ON CONFLICT(mac) DO UPDATE SET ip=excluded.ip, hostname=excluded.hostname, client_fqdn=excluded.client_fqdn,
			expires=excluded.expires, state=excluded.state, updated=excluded.updated`,
		x.MAC.String(), x.IP.String(), x.Hostname, x.ClientFQDN, toNS(x.Expires), x.State, toNS(l.s.now()))
	if err != nil {
		return fmt.Errorf("lease put %s: %w", x.MAC, err)
	}
	return nil
}

// Delete removes the lease of mac; deleting an absent lease is not an error.
func (l *Leases) Delete(ctx context.Context, mac net.HardwareAddr) error {
	if _, err := l.s.db.ExecContext(ctx, `DELETE FROM dhcp_leases WHERE mac = ?`, mac.String()); err != nil {
		return fmt.Errorf("lease delete %s: %w", mac, err)
	}
	return nil
}

// All returns every lease, ordered by MAC address.
func (l *Leases) All(ctx context.Context) ([]Lease, error) {
	rows, err := l.s.db.QueryContext(ctx, `SELECT mac, ip, hostname, client_fqdn, expires, state FROM dhcp_leases ORDER BY mac`)
	if err != nil {
		return nil, fmt.Errorf("leases: %w", err)
	}
	defer rows.Close()
	var out []Lease
	for rows.Next() {
		var mac, ip string
		var exp int64
		var x Lease
		if err := rows.Scan(&mac, &ip, &x.Hostname, &x.ClientFQDN, &exp, &x.State); err != nil {
			return nil, fmt.Errorf("leases: %w", err)
		}
		if x.MAC, err = net.ParseMAC(mac); err != nil {
			return nil, fmt.Errorf("leases: row %q: %w", mac, err)
		}
		if x.IP, err = netip.ParseAddr(ip); err != nil {
			return nil, fmt.Errorf("leases: row %s: %w", mac, err)
		}
		x.Expires = fromNS(exp)
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("leases: %w", err)
	}
	return out, nil
}

// ExpireBefore deletes leases that expired before t and returns how many.
func (l *Leases) ExpireBefore(ctx context.Context, t time.Time) (int, error) {
	res, err := l.s.db.ExecContext(ctx, `DELETE FROM dhcp_leases WHERE expires < ?`, toNS(t))
	if err != nil {
		return 0, fmt.Errorf("leases expire before %s: %w", t.Format(time.RFC3339), err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
