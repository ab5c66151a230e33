package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Targeted writes to a device row. Put rewrites the whole row from what its
// caller read earlier, so two writers that each read, change one thing and
// Put lose one of the changes: a console's tag edit, or the CIRA relay's
// link-state flush (PutCIRALinks), would be undone by a Put made from an
// older read. The writes here change only the columns they name, in one
// transaction with their audit or history row.

// DeviceEdit is what the console owns on a device record (spec/redirection.md
// §7.1 PATCH /devices): its name for the device and its tags. A nil field
// is left as it is. Everything else belongs to provisioning or the relay.
type DeviceEdit struct {
	FriendlyName *string
	Tags         *[]string
}

// Edit applies e to the device and returns the device as it now is. The
// change is audited as "device.edit" by actor, the reason naming each field
// with its old and new value (names and tags are not secrets). A field set
// to the value it has is not a change; an edit that changes nothing writes
// nothing. ErrNotFound for an unknown device.
func (ds *Devices) Edit(ctx context.Context, uuid string, e DeviceEdit, actor string) (Device, error) {
	u, err := NormalizeUUID(uuid)
	if err != nil {
		return Device{}, fmt.Errorf("device edit: %w", err)
	}
	var out Device
	err = ds.s.tx(ctx, func(tx *sql.Tx) error {
		d, err := getDevice(ctx, tx, u)
		if err != nil {
			return err
		}
		var changes []string
		if e.FriendlyName != nil && *e.FriendlyName != d.FriendlyName {
			changes = append(changes, "friendlyName "+strconv.Quote(d.FriendlyName)+" -> "+strconv.Quote(*e.FriendlyName))
			d.FriendlyName = *e.FriendlyName
		}
		if e.Tags != nil {
			tags := nonNil(*e.Tags)
			if old := jsonText(nonNil(d.Tags)); old != jsonText(tags) {
				changes = append(changes, "tags "+old+" -> "+jsonText(tags))
				d.Tags = tags
			}
		}
		out = d
		if len(changes) == 0 {
			return nil
		}
		now := ds.s.now()
		if _, err := tx.ExecContext(ctx, `UPDATE devices SET friendly_name = ?, tags = ?, updated = ? WHERE uuid = ?`,
			d.FriendlyName, jsonText(nonNil(d.Tags)), toNS(now), u); err != nil {
			return err
		}
		out.Updated = fromNS(toNS(now))
		return ds.s.auditTx(ctx, tx, AuditEntry{Actor: actor, Action: "device.edit", Object: "device/" + u,
			Reason: strings.Join(changes, "; ")})
	})
	if err != nil {
		return Device{}, fmt.Errorf("device edit %s: %w", u, err)
	}
	return out, nil
}

// nonNil is s, or an empty list for nil: tags are stored as [], never null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// SetMode records a change of AMT control mode (0 pre-provisioning, 1 CCM,
// 2 ACM) with the provisioning state that goes with it, e.g. 0 and
// "deactivated" after Unprovision. The next action is cleared: a change of
// mode ends whatever the device was waiting for. The state change goes
// into the history with step and detail, as SetState. Only these columns
// are written. ErrNotFound for an unknown device.
func (ds *Devices) SetMode(ctx context.Context, uuid string, mode int, to, step, detail string) error {
	u, err := NormalizeUUID(uuid)
	if err != nil {
		return err
	}
	if mode < 0 || mode > 2 {
		return fmt.Errorf("device %s: control mode %d is not 0, 1 or 2", u, mode)
	}
	now := toNS(ds.s.now())
	err = ds.s.tx(ctx, func(tx *sql.Tx) error {
		var from string
		err := tx.QueryRowContext(ctx, `SELECT provisioning_state FROM devices WHERE uuid = ?`, u).Scan(&from)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE devices SET control_mode = ?, next_action = '', provisioning_state = ?, updated = ?
			WHERE uuid = ?`, mode, to, now, u); err != nil {
			return err
		}
		return insertHistory(ctx, tx, u, now, from, to, step, detail)
	})
	if err != nil {
		return fmt.Errorf("device %s: set mode %d (%q): %w", u, mode, to, err)
	}
	return nil
}

// HeldSecret names one password the store holds for a device, without its
// value.
type HeldSecret struct {
	Kind  SecretKind
	State string // StatePending, StateCurrent, StatePrevious
}

// DeleteChecked deletes the device with its history and passwords (the
// passwords are kept with the device: deleting one deletes the other), as
// Delete, after check has seen the device and the passwords held for it,
// in the same transaction: nothing can activate the device between the
// check and the delete. An error from check is returned as it is and
// nothing is deleted. ErrNotFound for an unknown device.
func (ds *Devices) DeleteChecked(ctx context.Context, uuid, actor, reason string, check func(Device, []HeldSecret) error) error {
	u, err := NormalizeUUID(uuid)
	if err != nil {
		return err
	}
	var refused error
	err = ds.s.tx(ctx, func(tx *sql.Tx) error {
		d, err := getDevice(ctx, tx, u)
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT kind, state FROM device_secrets WHERE device = ? ORDER BY kind, state`, u)
		if err != nil {
			return err
		}
		var held []HeldSecret
		for rows.Next() {
			var h HeldSecret
			if err := rows.Scan(&h.Kind, &h.State); err != nil {
				rows.Close()
				return err
			}
			held = append(held, h)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return err
		}
		if refused = check(d, held); refused != nil {
			return refused
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE uuid = ?`, u); err != nil {
			return err
		}
		kinds := make([]string, 0, len(held))
		for _, h := range held {
			kinds = append(kinds, string(h.Kind)+"/"+h.State)
		}
		r := reason
		if len(kinds) > 0 {
			r += "; passwords deleted with it: " + strings.Join(kinds, ", ")
		}
		return ds.s.auditTx(ctx, tx, AuditEntry{Actor: actor, Action: "device.delete", Object: "device/" + u, Reason: r})
	})
	if refused != nil && errors.Is(err, refused) {
		return refused
	}
	if err != nil {
		return fmt.Errorf("device delete %s: %w", u, err)
	}
	return nil
}
