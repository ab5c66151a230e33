package store

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// checkPlain is what every master key's check value holds once opened.
const checkPlain = "amtd master key check v1"

func checkPlace(keyID string) place { return place{"master_keys", "check_sealed", keyID} }

// addMasterKey records sl's key with a fresh check value.
func (s *Store) addMasterKey(ctx context.Context, tx *sql.Tx, sl *sealer) error {
	blob, err := sl.seal(checkPlace(sl.keyID), []byte(checkPlain))
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO master_keys(key_id, created, check_sealed) VALUES (?,?,?)`,
		sl.keyID, toNS(s.now()), blob)
	return err
}

// checkKey tells a wrong key file (ErrWrongKey) from a tampered check value
// (ErrTampered) before anything else is read.
func (s *Store) checkKey(ctx context.Context) error {
	sl := s.current()
	var blob []byte
	var retired int64
	err := s.db.QueryRowContext(ctx, `SELECT check_sealed, retired FROM master_keys WHERE key_id = ?`, sl.keyID).Scan(&blob, &retired)
	if errors.Is(err, sql.ErrNoRows) {
		active, lerr := s.activeKeyIDs(ctx)
		if lerr != nil {
			return fmt.Errorf("store %s: %w", s.path, lerr)
		}
		return fmt.Errorf("store %s: the key file holds master key %s, but this database is sealed with %s; use that key file: %w",
			s.path, sl.keyID, strings.Join(active, ", "), ErrWrongKey)
	}
	if err != nil {
		return fmt.Errorf("store %s: read master keys: %w", s.path, err)
	}
	if retired != 0 {
		active, _ := s.activeKeyIDs(ctx)
		return fmt.Errorf("store %s: master key %s was retired on %s by 'amtd store rotate-key'; use the newer key %s: %w",
			s.path, sl.keyID, fromNS(retired).Format(time.RFC3339), strings.Join(active, ", "), ErrWrongKey)
	}
	plain, err := sl.open(checkPlace(sl.keyID), sl.keyID, blob)
	if err != nil {
		return fmt.Errorf("store %s: master key check value: %w", s.path, err)
	}
	if subtle.ConstantTimeCompare(plain, []byte(checkPlain)) != 1 {
		return fmt.Errorf("store %s: master key check value has unexpected contents: %w", s.path, ErrTampered)
	}
	return nil
}

func (s *Store) activeKeyIDs(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key_id FROM master_keys WHERE retired = 0 ORDER BY created`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		ids = []string{"(none active)"}
	}
	return ids, rows.Err()
}

// sealedColumns lists every column that holds sealed values, with the SQL
// expression for the row identity each value is bound to. Rotation and
// verification walk this list; a new sealed column must be added here.
var sealedColumns = []struct {
	table, column, rowExpr string
}{
	{"device_secrets", "value_sealed", "device || '/' || kind || '/' || id"},
	{"domains", "pfx_sealed", "suffix"},
	{"domains", "pfx_password_sealed", "suffix"},
	{"keys", "value_sealed", "name"},
	{"usb_records", "mebx_sealed", "file || '/' || record"},
}

type sealedCell struct {
	rowid int64
	at    place
	keyID string
	blob  []byte
}

// forEachSealed reads every sealed cell first, then calls fn on each, so fn
// may update rows (and their shared key_id) without disturbing the reading.
func forEachSealed(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, fn func(sealedCell) error) error {
	var cells []sealedCell
	for _, c := range sealedColumns {
		rows, err := q.QueryContext(ctx, fmt.Sprintf(`SELECT rowid, %s, key_id, %s FROM %s ORDER BY rowid`, c.rowExpr, c.column, c.table))
		if err != nil {
			return fmt.Errorf("read %s.%s: %w", c.table, c.column, err)
		}
		for rows.Next() {
			cell := sealedCell{at: place{table: c.table, column: c.column}}
			if err := rows.Scan(&cell.rowid, &cell.at.row, &cell.keyID, &cell.blob); err != nil {
				rows.Close()
				return fmt.Errorf("read %s.%s: %w", c.table, c.column, err)
			}
			cells = append(cells, cell)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("read %s.%s: %w", c.table, c.column, err)
		}
	}
	for _, cell := range cells {
		if err := fn(cell); err != nil {
			return err
		}
	}
	return nil
}

// VerifyFailure is one sealed value that did not open.
type VerifyFailure struct {
	Place string // "device_secrets.value_sealed of <uuid>/amt_admin/7"
	Err   error  // wraps ErrWrongKey, ErrTampered or ErrMisplaced
}

// Verify opens every sealed value in the store and reports those that fail.
// It returns how many values it checked. The values are wiped after opening.
func (s *Store) Verify(ctx context.Context) (checked int, failures []VerifyFailure, err error) {
	err = forEachSealed(ctx, s.db, func(c sealedCell) error {
		checked++
		plain, err := s.open(c.at, c.keyID, c.blob)
		clear(plain)
		if err != nil {
			failures = append(failures, VerifyFailure{Place: c.at.String(), Err: err})
		}
		return nil
	})
	if err != nil {
		return checked, failures, fmt.Errorf("store %s: verify: %w", s.path, err)
	}
	return checked, failures, nil
}

// RotateKey re-seals every sealed value under the master key in newKeyFile,
// all in one transaction, then retires the old key. A crash before the commit
// leaves everything under the old key; after it, under the new one. The
// store keeps working with the new key; other processes (the daemon) need
// the new key file and a restart.
func (s *Store) RotateKey(ctx context.Context, newKeyFile, actor, reason string) (int, error) {
	nk, err := readKeyFile(newKeyFile)
	if err != nil {
		return 0, fmt.Errorf("rotate key: %w", err)
	}
	ns, err := newSealer(nk)
	if err != nil {
		nk.wipe()
		return 0, fmt.Errorf("rotate key: %w", err)
	}
	s.mu.Lock() // no seal or open while values move between keys
	defer s.mu.Unlock()
	old := s.sealer
	if old.aead == nil {
		nk.wipe()
		return 0, errors.New("rotate key: store is closed")
	}
	if ns.keyID == old.keyID {
		nk.wipe()
		return 0, fmt.Errorf("rotate key: %s holds the key already in use (%s)", newKeyFile, old.keyID)
	}
	resealed := 0
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.addMasterKey(ctx, tx, ns); err != nil {
			return fmt.Errorf("record new key %s: %w", ns.keyID, err)
		}
		err := forEachSealed(ctx, tx, func(c sealedCell) error {
			plain, err := old.open(c.at, c.keyID, c.blob)
			if err != nil {
				return fmt.Errorf("%w (run 'amtd store verify'; nothing was changed)", err)
			}
			blob, err := ns.seal(c.at, plain)
			clear(plain)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, fmt.Sprintf(`UPDATE %s SET %s = ?, key_id = ? WHERE rowid = ?`, c.at.table, c.at.column),
				blob, ns.keyID, c.rowid); err != nil {
				return fmt.Errorf("reseal %s: %w", c.at, err)
			}
			resealed++
			return nil
		})
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE master_keys SET retired = ? WHERE key_id = ?`, toNS(s.now()), old.keyID); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, AuditEntry{Actor: actor, Action: "store.rotate_key",
			Object: "master_key/" + old.keyID, Reason: reason, Result: fmt.Sprintf("ok: %d values resealed under %s", resealed, ns.keyID)})
	})
	if err != nil {
		nk.wipe()
		return 0, fmt.Errorf("rotate key: %w", err)
	}
	s.key.wipe()
	s.key, s.sealer = nk, ns
	s.log.Info("master key rotated", "old_key_id", old.keyID, "new_key_id", ns.keyID, "resealed", resealed)
	return resealed, nil
}
