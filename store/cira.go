package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// CIRALink is the CIRA relay's view of one device's link, written in
// batches by PutCIRALinks. It leaves the device's MPS user name alone (that
// belongs to provisioning).
type CIRALink struct {
	UUID             string
	Connected        bool
	ConnectedSince   time.Time
	LastSeen         time.Time
	LastDisconnected time.Time
	Owner            string // the relay instance holding the link
	BoundPorts       []uint16
	RemoteAddr       string
}

// PutCIRALinks writes many devices' link state in one transaction: the
// relay collects connects, disconnects and keep-alives and writes them
// every few seconds, since one write per event per device would be the
// heaviest load on the store (spec/apf.md §10). A device deleted meanwhile
// is skipped. last_seen never moves backwards.
func (ds *Devices) PutCIRALinks(ctx context.Context, links []CIRALink) error {
	if len(links) == 0 {
		return nil
	}
	now := toNS(ds.s.now())
	return ds.s.tx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `UPDATE devices SET cira_connected = ?, connected_since = ?,
			last_seen = max(last_seen, ?), last_disconnected = ?, owner_instance = ?, bound_ports = ?, remote_addr = ?,
			updated = ? WHERE uuid = ?`)
		if err != nil {
			return fmt.Errorf("devices cira links: %w", err)
		}
		defer st.Close()
		for _, l := range links {
			u, err := NormalizeUUID(l.UUID)
			if err != nil {
				return fmt.Errorf("devices cira links: %w", err)
			}
			ports := l.BoundPorts
			if ports == nil {
				ports = []uint16{}
			}
			connected := 0
			if l.Connected {
				connected = 1
			}
			if _, err := st.ExecContext(ctx, connected, toNS(l.ConnectedSince), toNS(l.LastSeen), toNS(l.LastDisconnected),
				l.Owner, jsonText(ports), l.RemoteAddr, now, u); err != nil {
				return fmt.Errorf("devices cira link %s: %w", u, err)
			}
		}
		return nil
	})
}
