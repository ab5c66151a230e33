package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"amtd/secret"
)

// USBRecord is one record of a setup.bin amtd wrote: which file, which
// record, for which domain.
type USBRecord struct {
	File    string // SHA-256 of the file's bytes, hex
	Label   string // 10 hex digits, in the host name the record gives
	Record  int    // 1-based, as in the file
	Domain  string
	Device  string // the UUID that took the record, "" until matched
	Created time.Time
}

// USBHostName is the AMT host name record number record of the file with
// label gives the machine that takes it.
func USBHostName(label string, record int) string { return fmt.Sprintf("amt-%s-r%d", label, record) }

// USBRecords is the usb_records table: the new MEBx password of every
// record of every setup.bin amtd wrote, sealed.
type USBRecords struct{ s *Store }

// USBRecords returns the table.
func (s *Store) USBRecords() *USBRecords { return &USBRecords{s: s} }

func usbPlace(file string, record int) place {
	return place{"usb_records", "mebx_sealed", fmt.Sprintf("%s/%d", file, record)}
}

// Put seals the new MEBx passwords of one file's records (record i+1 gets
// passwords[i]) in one transaction, before the file is written: a key
// whose passwords are not stored is never handed out. Audited.
func (u *USBRecords) Put(ctx context.Context, file, label, domain string, passwords []secret.Value, actor, reason string) error {
	if len(file) != 64 {
		return fmt.Errorf("usb records: file id %q is not a SHA-256", file)
	}
	if len(label) != 10 {
		return fmt.Errorf("usb records: label %q is not 10 characters", label)
	}
	if len(passwords) == 0 {
		return errors.New("usb records: no records")
	}
	now := toNS(u.s.now())
	err := u.s.sealedTx(ctx, func(tx *sql.Tx, sl *sealer) error {
		for i, pw := range passwords {
			if pw.IsZero() {
				return fmt.Errorf("record %d: empty password", i+1)
			}
			blob, err := sl.seal(usbPlace(file, i+1), pw.Reveal())
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO usb_records(file, label, record, domain, mebx_sealed, key_id, created) VALUES (?,?,?,?,?,?,?)`,
				file, label, i+1, domain, blob, sl.keyID, now); err != nil {
				return err
			}
		}
		return u.s.auditTx(ctx, tx, AuditEntry{Actor: actor, Action: "usb.records", Object: "usb/" + file,
			Reason: fmt.Sprintf("%s (%d records, domain %s)", reason, len(passwords), domain)})
	})
	if err != nil {
		return fmt.Errorf("usb records %s: %w", file[:12], err)
	}
	return nil
}

// List returns the records of one file (all files when file is ""),
// without their passwords.
func (u *USBRecords) List(ctx context.Context, file string) ([]USBRecord, error) {
	q := `SELECT file, label, record, domain, device, created FROM usb_records`
	var args []any
	if file != "" {
		q += ` WHERE file = ?`
		args = append(args, file)
	}
	rows, err := u.s.db.QueryContext(ctx, q+` ORDER BY created, file, record`, args...)
	if err != nil {
		return nil, fmt.Errorf("usb records: %w", err)
	}
	defer rows.Close()
	var out []USBRecord
	for rows.Next() {
		var r USBRecord
		var created int64
		if err := rows.Scan(&r.File, &r.Label, &r.Record, &r.Domain, &r.Device, &created); err != nil {
			return nil, fmt.Errorf("usb records: %w", err)
		}
		r.Created = fromNS(created)
		out = append(out, r)
	}
	return out, rows.Err()
}

// Export opens one record's MEBx password for a person (audited with actor
// and reason), e.g. to type it in MEBx on a machine amtd has not reached.
func (u *USBRecords) Export(ctx context.Context, file string, record int, actor, reason string) (secret.Value, error) {
	var blob []byte
	var keyID string
	err := u.s.db.QueryRowContext(ctx, `SELECT mebx_sealed, key_id FROM usb_records WHERE file = ? AND record = ?`, file, record).Scan(&blob, &keyID)
	if errors.Is(err, sql.ErrNoRows) {
		return secret.Value{}, fmt.Errorf("usb record %s/%d: %w", file, record, ErrNotFound)
	}
	if err != nil {
		return secret.Value{}, fmt.Errorf("usb record %s/%d: %w", file, record, err)
	}
	plain, err := u.s.open(usbPlace(file, record), keyID, blob)
	if err != nil {
		return secret.Value{}, fmt.Errorf("usb record %s/%d: %w", file, record, err)
	}
	v := secret.New(plain)
	clear(plain)
	if err := u.s.Audit(ctx, AuditEntry{Actor: actor, Action: "usb.export", Object: fmt.Sprintf("usb/%s/%d", file, record), Reason: reason}); err != nil {
		v.Wipe()
		return secret.Value{}, err
	}
	return v, nil
}

// MatchHostName records that the device uuid took the record whose host
// name it reports (USBHostName), when that record is not yet matched. ok is
// false when the name is not one amtd gave or the record belongs to another
// device.
func (u *USBRecords) MatchHostName(ctx context.Context, hostname, uuid string) (rec USBRecord, ok bool, err error) {
	var label string
	var n int
	if _, err := fmt.Sscanf(hostname, "amt-%10s-r%d", &label, &n); err != nil || USBHostName(label, n) != hostname {
		return rec, false, nil
	}
	u2, err := NormalizeUUID(uuid)
	if err != nil {
		return rec, false, err
	}
	res, err := u.s.db.ExecContext(ctx, `UPDATE usb_records SET device = ? WHERE label = ? AND record = ? AND device IN ('', ?)`, u2, label, n, u2)
	if err != nil {
		return rec, false, fmt.Errorf("usb records: %w", err)
	}
	if k, _ := res.RowsAffected(); k == 0 {
		return rec, false, nil
	}
	var created int64
	err = u.s.db.QueryRowContext(ctx, `SELECT file, label, record, domain, device, created FROM usb_records WHERE label = ? AND record = ?`, label, n).
		Scan(&rec.File, &rec.Label, &rec.Record, &rec.Domain, &rec.Device, &created)
	rec.Created = fromNS(created)
	return rec, err == nil, err
}
