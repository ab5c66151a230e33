package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Device is one AMT device the appliance knows.
type Device struct {
	UUID         string // lower-case text form (spec/apf.md §6)
	Hostname     string
	FriendlyName string
	DNSSuffix    string
	Addresses    []netip.Addr
	MAC          net.HardwareAddr
	AMTVersion   string
	AMTBuild     string
	AMTSKU       string
	// ControlMode is AMT's CurrentControlMode: 0 pre-provisioning, 1 CCM, 2 ACM.
	ControlMode       int
	ProvisioningState string
	LastError         string
	NextAction        string
	CIRA              CIRAState
	Tags              []string
	Created, Updated  time.Time // set by the store
}

// CIRAState is what the relay knows of a device's CIRA link
// (spec/apf.md §5, §10; spec/redirection.md §8).
type CIRAState struct {
	MPSUsername      string
	Connected        bool
	ConnectedSince   time.Time
	LastSeen         time.Time
	LastDisconnected time.Time
	OwnerInstance    string   // the relay instance holding the link
	BoundPorts       []uint16 // ports AMT asked to forward (TCPIP_FORWARD)
	RemoteAddr       string   // host:port the device connected from
}

// Devices is the devices table.
type Devices struct{ s *Store }

// NormalizeUUID returns the store's form of a device UUID: lower case,
// 8-4-4-4-12. AMT sends upper case, operators type lower case
// (spec/apf.md §6); the variant nibble is not checked.
func NormalizeUUID(u string) (string, error) {
	u = strings.ToLower(strings.TrimSpace(u))
	if len(u) != 36 {
		return "", fmt.Errorf("device uuid %q: want 36 characters (8-4-4-4-12)", u)
	}
	for i, c := range u {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", fmt.Errorf("device uuid %q: want '-' at position %d", u, i)
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return "", fmt.Errorf("device uuid %q: %q is not a hex digit", u, c)
			}
		}
	}
	return u, nil
}

const deviceColumns = `uuid, hostname, friendly_name, dns_suffix, addresses, mac, amt_version, amt_build, amt_sku,
	control_mode, provisioning_state, last_error, next_action, mps_username, cira_connected, connected_since,
	last_seen, last_disconnected, owner_instance, bound_ports, remote_addr, tags, created, updated`

type scanner interface{ Scan(...any) error }

func scanDevice(r scanner) (Device, error) {
	var d Device
	var addrs, mac, ports, tags string
	var connected int
	var since, seen, disc, created, updated int64
	err := r.Scan(&d.UUID, &d.Hostname, &d.FriendlyName, &d.DNSSuffix, &addrs, &mac, &d.AMTVersion, &d.AMTBuild, &d.AMTSKU,
		&d.ControlMode, &d.ProvisioningState, &d.LastError, &d.NextAction, &d.CIRA.MPSUsername, &connected, &since,
		&seen, &disc, &d.CIRA.OwnerInstance, &ports, &d.CIRA.RemoteAddr, &tags, &created, &updated)
	if err != nil {
		return d, err
	}
	var as []string
	if err := json.Unmarshal([]byte(addrs), &as); err != nil {
		return d, fmt.Errorf("device %s: addresses: %w", d.UUID, err)
	}
	for _, a := range as {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return d, fmt.Errorf("device %s: addresses: %w", d.UUID, err)
		}
		d.Addresses = append(d.Addresses, ip)
	}
	if mac != "" {
		if d.MAC, err = net.ParseMAC(mac); err != nil {
			return d, fmt.Errorf("device %s: mac: %w", d.UUID, err)
		}
	}
	if err := json.Unmarshal([]byte(ports), &d.CIRA.BoundPorts); err != nil {
		return d, fmt.Errorf("device %s: bound ports: %w", d.UUID, err)
	}
	if err := json.Unmarshal([]byte(tags), &d.Tags); err != nil {
		return d, fmt.Errorf("device %s: tags: %w", d.UUID, err)
	}
	d.CIRA.Connected = connected != 0
	d.CIRA.ConnectedSince, d.CIRA.LastSeen, d.CIRA.LastDisconnected = fromNS(since), fromNS(seen), fromNS(disc)
	d.Created, d.Updated = fromNS(created), fromNS(updated)
	return d, nil
}

// Get returns the device with uuid (any case), or ErrNotFound.
func (ds *Devices) Get(ctx context.Context, uuid string) (Device, error) {
	u, err := NormalizeUUID(uuid)
	if err != nil {
		return Device{}, err
	}
	d, err := getDevice(ctx, ds.s.db, u)
	if err != nil {
		return Device{}, fmt.Errorf("device %s: %w", u, err)
	}
	return d, nil
}

// getDevice reads the device row u (normalized) through the database or a
// transaction; ErrNotFound when there is none.
func getDevice(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, u string) (Device, error) {
	d, err := scanDevice(q.QueryRowContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE uuid = ?`, u))
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, ErrNotFound
	}
	return d, err
}

func jsonText(v any) string {
	b, _ := json.Marshal(v) // strings, addresses and ints only: cannot fail
	return string(b)
}

// Put inserts or updates the device d.UUID. A change of provisioning state
// is recorded in the device's history in the same transaction. On an
// existing device Put leaves alone what others own: the console's name and
// tags (Edit) and the CIRA link (PutCIRALinks). Provisioning reads a device
// and writes it back; a console edit or a link flush landing in between
// would otherwise be lost.
func (ds *Devices) Put(ctx context.Context, d Device) error {
	u, err := NormalizeUUID(d.UUID)
	if err != nil {
		return fmt.Errorf("device put: %w", err)
	}
	if d.ControlMode < 0 || d.ControlMode > 2 {
		return fmt.Errorf("device put %s: control mode %d is not 0, 1 or 2", u, d.ControlMode)
	}
	addrs := make([]string, 0, len(d.Addresses))
	for _, a := range d.Addresses {
		addrs = append(addrs, a.String())
	}
	ports := d.CIRA.BoundPorts
	if ports == nil {
		ports = []uint16{}
	}
	tags := nonNil(d.Tags)
	mac := ""
	if len(d.MAC) > 0 {
		mac = d.MAC.String()
	}
	connected := 0
	if d.CIRA.Connected {
		connected = 1
	}
	now := toNS(ds.s.now())
	err = ds.s.tx(ctx, func(tx *sql.Tx) error {
		var from string
		err := tx.QueryRowContext(ctx, `SELECT provisioning_state FROM devices WHERE uuid = ?`, u).Scan(&from)
		isNew := errors.Is(err, sql.ErrNoRows)
		if err != nil && !isNew {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO devices(`+deviceColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
			ON CONFLICT(uuid) DO UPDATE SET hostname=excluded.hostname,
				dns_suffix=excluded.dns_suffix, addresses=excluded.addresses, mac=excluded.mac,
				amt_version=excluded.amt_version, amt_build=excluded.amt_build, amt_sku=excluded.amt_sku,
				control_mode=excluded.control_mode, provisioning_state=excluded.provisioning_state,
				last_error=excluded.last_error, next_action=excluded.next_action, mps_username=excluded.mps_username,
				updated=excluded.updated`,
			u, d.Hostname, d.FriendlyName, d.DNSSuffix, jsonText(addrs), mac, d.AMTVersion, d.AMTBuild, d.AMTSKU,
			d.ControlMode, d.ProvisioningState, d.LastError, d.NextAction, d.CIRA.MPSUsername, connected,
			toNS(d.CIRA.ConnectedSince), toNS(d.CIRA.LastSeen), toNS(d.CIRA.LastDisconnected), d.CIRA.OwnerInstance,
			jsonText(ports), d.CIRA.RemoteAddr, jsonText(tags), now, now)
		if err != nil {
			return err
		}
		if from != d.ProvisioningState && (!isNew || d.ProvisioningState != "") {
			return insertHistory(ctx, tx, u, now, from, d.ProvisioningState, "", "")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("device put %s: %w", u, err)
	}
	return nil
}

func insertHistory(ctx context.Context, tx *sql.Tx, uuid string, now int64, from, to, step, detail string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO device_history(device, time, from_state, to_state, step, detail) VALUES (?,?,?,?,?,?)`,
		uuid, now, from, to, step, detail)
	return err
}

// SetState moves the device to provisioning state to, records the step that
// did it and any detail (an error, a return code) in the history, and sets
// last_error to detail when isError is true. It returns ErrNotFound for an
// unknown device.
func (ds *Devices) SetState(ctx context.Context, uuid, to, step, detail string, isError bool) error {
	u, err := NormalizeUUID(uuid)
	if err != nil {
		return err
	}
	now := toNS(ds.s.now())
	err = ds.s.tx(ctx, func(tx *sql.Tx) error {
		var from, lastErr string
		err := tx.QueryRowContext(ctx, `SELECT provisioning_state, last_error FROM devices WHERE uuid = ?`, u).Scan(&from, &lastErr)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if isError {
			lastErr = detail
		}
		if _, err := tx.ExecContext(ctx, `UPDATE devices SET provisioning_state = ?, last_error = ?, updated = ? WHERE uuid = ?`,
			to, lastErr, now, u); err != nil {
			return err
		}
		return insertHistory(ctx, tx, u, now, from, to, step, detail)
	})
	if err != nil {
		return fmt.Errorf("device %s: set state %q: %w", u, to, err)
	}
	return nil
}

// Transition is one provisioning state change of a device.
type Transition struct {
	Time     time.Time
	From, To string
	Step     string
	Detail   string
}

// History returns the device's provisioning state changes, oldest first.
func (ds *Devices) History(ctx context.Context, uuid string) ([]Transition, error) {
	u, err := NormalizeUUID(uuid)
	if err != nil {
		return nil, err
	}
	rows, err := ds.s.db.QueryContext(ctx, `SELECT time, from_state, to_state, step, detail FROM device_history
		WHERE device = ? ORDER BY time, id`, u)
	if err != nil {
		return nil, fmt.Errorf("device %s: history: %w", u, err)
	}
	defer rows.Close()
	var out []Transition
	for rows.Next() {
		var tr Transition
		var t int64
		if err := rows.Scan(&t, &tr.From, &tr.To, &tr.Step, &tr.Detail); err != nil {
			return nil, fmt.Errorf("device %s: history: %w", u, err)
		}
		tr.Time = fromNS(t)
		out = append(out, tr)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("device %s: history: %w", u, err)
	}
	return out, nil
}

// DeviceQuery pages through devices; zero fields match everything.
type DeviceQuery struct {
	Tag       string // devices carrying this tag
	Connected *bool  // CIRA connected or not
	Limit     int    // default 100, at most 10000
	Offset    int
}

// List returns devices ordered by UUID.
func (ds *Devices) List(ctx context.Context, q DeviceQuery) ([]Device, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	q.Limit = min(q.Limit, 10000)
	rows, err := ds.s.db.QueryContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE `+deviceFilter+`
		ORDER BY uuid LIMIT ?3 OFFSET ?4`, q.Tag, q.connected(), q.Limit, q.Offset)
	if err != nil {
		return nil, fmt.Errorf("devices: %w", err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("devices: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("devices: %w", err)
	}
	return out, nil
}

// deviceFilter is the WHERE clause of a DeviceQuery: ?1 the tag (” any),
// ?2 the CIRA state (-1 any, 0 disconnected, 1 connected).
const deviceFilter = `(?1 = '' OR EXISTS (SELECT 1 FROM json_each(devices.tags) WHERE value = ?1))
		  AND (?2 < 0 OR cira_connected = ?2)`

func (q DeviceQuery) connected() int {
	switch {
	case q.Connected == nil:
		return -1
	case *q.Connected:
		return 1
	}
	return 0
}

// CountWhere returns how many devices the query's tag and CIRA state
// select (its Limit and Offset are ignored), counted by the database.
func (ds *Devices) CountWhere(ctx context.Context, q DeviceQuery) (int, error) {
	var n int
	if err := ds.s.db.QueryRowContext(ctx, `SELECT count(*) FROM devices WHERE `+deviceFilter, q.Tag, q.connected()).Scan(&n); err != nil {
		return 0, fmt.Errorf("devices: count: %w", err)
	}
	return n, nil
}

// Count returns the number of devices.
func (ds *Devices) Count(ctx context.Context) (int, error) {
	var n int
	if err := ds.s.db.QueryRowContext(ctx, `SELECT count(*) FROM devices`).Scan(&n); err != nil {
		return 0, fmt.Errorf("devices: count: %w", err)
	}
	return n, nil
}

// Delete removes a device with its history and secrets (audited). Deleting
// an absent device is not an error.
func (ds *Devices) Delete(ctx context.Context, uuid, actor, reason string) error {
	u, err := NormalizeUUID(uuid)
	if err != nil {
		return err
	}
	err = ds.s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE uuid = ?`, u); err != nil {
			return err
		}
		return ds.s.auditTx(ctx, tx, AuditEntry{Actor: actor, Action: "device.delete", Object: "device/" + u, Reason: reason})
	})
	if err != nil {
		return fmt.Errorf("device delete %s: %w", u, err)
	}
	return nil
}

// TouchSeen records last-seen times for many devices in one transaction.
// The CIRA relay batches keep-alives through it: one write per device every
// 30 s would be the heaviest load on the store (spec/apf.md §10).
func (ds *Devices) TouchSeen(ctx context.Context, seen map[string]time.Time) error {
	if len(seen) == 0 {
		return nil
	}
	return ds.s.tx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `UPDATE devices SET last_seen = max(last_seen, ?) WHERE uuid = ?`)
		if err != nil {
			return fmt.Errorf("devices touch: %w", err)
		}
		defer st.Close()
		for uuid, t := range seen {
			u, err := NormalizeUUID(uuid)
			if err != nil {
				return fmt.Errorf("devices touch: %w", err)
			}
			if _, err := st.ExecContext(ctx, toNS(t), u); err != nil {
				return fmt.Errorf("devices touch %s: %w", u, err)
			}
		}
		return nil
	})
}

// SetCIRA replaces a device's CIRA state (connect, disconnect, bound ports).
// It returns ErrNotFound for an unknown device.
func (ds *Devices) SetCIRA(ctx context.Context, uuid string, c CIRAState) error {
	u, err := NormalizeUUID(uuid)
	if err != nil {
		return err
	}
	ports := c.BoundPorts
	if ports == nil {
		ports = []uint16{}
	}
	connected := 0
	if c.Connected {
		connected = 1
	}
	res, err := ds.s.db.ExecContext(ctx, `UPDATE devices SET mps_username = ?, cira_connected = ?, connected_since = ?,
		last_seen = ?, last_disconnected = ?, owner_instance = ?, bound_ports = ?, remote_addr = ?, updated = ? WHERE uuid = ?`,
		c.MPSUsername, connected, toNS(c.ConnectedSince), toNS(c.LastSeen), toNS(c.LastDisconnected), c.OwnerInstance,
		jsonText(ports), c.RemoteAddr, toNS(ds.s.now()), u)
	if err != nil {
		return fmt.Errorf("device %s: set cira: %w", u, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("device %s: set cira: %w", u, ErrNotFound)
	}
	return nil
}

// ReleaseInstance marks every device owned by instance as disconnected; the
// relay calls it at startup, since links it held before a restart are gone
// (spec/apf.md §10).
func (ds *Devices) ReleaseInstance(ctx context.Context, instance string) (int, error) {
	now := toNS(ds.s.now())
	res, err := ds.s.db.ExecContext(ctx, `UPDATE devices SET cira_connected = 0, owner_instance = '', bound_ports = '[]',
		last_disconnected = ?, updated = ? WHERE owner_instance = ? AND cira_connected = 1`, now, now, instance)
	if err != nil {
		return 0, fmt.Errorf("devices release instance %q: %w", instance, err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
