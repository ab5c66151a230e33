package store

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"amtd/secret"
)

// SecretKind names a device password.
type SecretKind string

// Device password kinds (spec/activation.md §11).
const (
	AMTAdmin SecretKind = "amt_admin" // the AMT admin (digest) password
	MEBx     SecretKind = "mebx"      // the MEBx password
	MPS      SecretKind = "mps"       // the CIRA (MPS) password the device logs in with
)

func (k SecretKind) valid() bool { return k == AMTAdmin || k == MEBx || k == MPS }

// Secret states. A password is written as pending (and on disk) before the
// device is told; once the device has accepted it, Promote makes it current
// and keeps the old one as previous. Whatever instant a crash hits, the
// password the device has is one of the candidates.
const (
	StatePending  = "pending"
	StateCurrent  = "current"
	StatePrevious = "previous"
)

// Candidate is one stored password of a device.
type Candidate struct {
	State   string
	Value   secret.Value
	Created time.Time
}

// Secrets is the device_secrets table.
//
// Reads made for the daemon's own use (Candidates, Current, CheckMPS) are
// not audited: the relay reads the admin password for every console call.
// Reads on behalf of a person go through Export, which is.
type Secrets struct{ s *Store }

func secretPlace(uuid string, kind SecretKind, id int64) place {
	return place{"device_secrets", "value_sealed", fmt.Sprintf("%s/%s/%d", uuid, kind, id)}
}

func secretObject(uuid string, kind SecretKind) string { return "device/" + uuid + "/" + string(kind) }

// ErrPendingExists is returned by SetPending while an earlier pending
// password is unresolved: try the candidates against the device, then
// Promote (it took the pending one) or Discard (it did not).
var ErrPendingExists = errors.New("a pending password exists; resolve it with Promote or Discard first")

// SetPending seals v as the device's pending password of kind and returns
// once it is committed to disk. Call it before sending the password to the
// device. A device row is created if the device is new. It refuses
// (ErrPendingExists) while another pending password is unresolved.
func (x *Secrets) SetPending(ctx context.Context, uuid string, kind SecretKind, v secret.Value, reason string) error {
	u, err := NormalizeUUID(uuid)
	if err != nil {
		return fmt.Errorf("secret set pending: %w", err)
	}
	if !kind.valid() {
		return fmt.Errorf("secret set pending %s: kind %q is not amt_admin, mebx or mps", u, kind)
	}
	if v.IsZero() {
		return fmt.Errorf("secret set pending %s %s: empty password", u, kind)
	}
	var slow string
	if kind == MPS {
		// The CIRA listener checks the device's password against this hash,
		// never against an opened plaintext (spec/apf.md §5).
		if slow, err = hashMPS(v.Reveal()); err != nil {
			return fmt.Errorf("secret set pending %s %s: %w", u, kind, err)
		}
	}
	now := toNS(x.s.now())
	err = x.s.sealedTx(ctx, func(tx *sql.Tx, sl *sealer) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO devices(uuid, created, updated) VALUES (?,?,?) ON CONFLICT(uuid) DO NOTHING`, u, now, now); err != nil {
			return err
		}
		// An unresolved pending password may be the one the device has (it
		// was told, then the process died): replacing it could lose it.
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM device_secrets WHERE device = ? AND kind = ? AND state = 'pending'`, u, kind).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return ErrPendingExists
		}
		// The row id is part of what the value is sealed to, so insert first
		// and seal second; both happen in this one transaction.
		res, err := tx.ExecContext(ctx, `INSERT INTO device_secrets(device, kind, state, value_sealed, key_id, slow_hash, created)
			VALUES (?,?,'pending',X'',?,?,?)`, u, kind, sl.keyID, slow, now)
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		blob, err := sl.seal(secretPlace(u, kind, id), v.Reveal())
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE device_secrets SET value_sealed = ? WHERE id = ?`, blob, id); err != nil {
			return err
		}
		return x.s.auditTx(ctx, tx, AuditEntry{Actor: ActorFrom(ctx), Action: "secret.set_pending", Object: secretObject(u, kind), Reason: reason})
	})
	if err != nil {
		return fmt.Errorf("secret set pending %s %s: %w", u, kind, err)
	}
	return nil
}

// Promote makes the pending password current and the old current previous,
// in one transaction. It returns ErrNotFound when nothing is pending.
func (x *Secrets) Promote(ctx context.Context, uuid string, kind SecretKind) error {
	u, err := NormalizeUUID(uuid)
	if err != nil {
		return fmt.Errorf("secret promote: %w", err)
	}
	err = x.s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM device_secrets WHERE device = ? AND kind = ? AND state = 'pending'`, u, kind).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("no pending password: %w", ErrNotFound)
		}
		for _, q := range []string{
			`DELETE FROM device_secrets WHERE device = ? AND kind = ? AND state = 'previous'`,
			`UPDATE device_secrets SET state = 'previous' WHERE device = ? AND kind = ? AND state = 'current'`,
			`UPDATE device_secrets SET state = 'current' WHERE device = ? AND kind = ? AND state = 'pending'`,
		} {
			if _, err := tx.ExecContext(ctx, q, u, kind); err != nil {
				return err
			}
		}
		return x.s.auditTx(ctx, tx, AuditEntry{Actor: ActorFrom(ctx), Action: "secret.promote", Object: secretObject(u, kind)})
	})
	if err != nil {
		return fmt.Errorf("secret promote %s %s: %w", u, kind, err)
	}
	return nil
}

// Discard deletes the pending password (the device refused it, or the
// operation was abandoned). Nothing pending is not an error.
func (x *Secrets) Discard(ctx context.Context, uuid string, kind SecretKind, reason string) error {
	u, err := NormalizeUUID(uuid)
	if err != nil {
		return fmt.Errorf("secret discard: %w", err)
	}
	err = x.s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM device_secrets WHERE device = ? AND kind = ? AND state = 'pending'`, u, kind); err != nil {
			return err
		}
		return x.s.auditTx(ctx, tx, AuditEntry{Actor: ActorFrom(ctx), Action: "secret.discard_pending", Object: secretObject(u, kind), Reason: reason})
	})
	if err != nil {
		return fmt.Errorf("secret discard %s %s: %w", u, kind, err)
	}
	return nil
}

// DeleteAll removes every password of the device (after deactivation).
func (x *Secrets) DeleteAll(ctx context.Context, uuid, reason string) error {
	u, err := NormalizeUUID(uuid)
	if err != nil {
		return fmt.Errorf("secret delete: %w", err)
	}
	err = x.s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM device_secrets WHERE device = ?`, u); err != nil {
			return err
		}
		return x.s.auditTx(ctx, tx, AuditEntry{Actor: ActorFrom(ctx), Action: "secret.delete_all", Object: "device/" + u, Reason: reason})
	})
	if err != nil {
		return fmt.Errorf("secret delete %s: %w", u, err)
	}
	return nil
}

// stateRank orders candidates as a resumer should try them: the current
// password is what the device most likely has; pending if the device took
// it before the promotion was recorded; previous if a promotion was recorded
// against a device that later reverted (unprovision, MEBx reset).
var stateRank = map[string]int{StateCurrent: 0, StatePending: 1, StatePrevious: 2}

// Candidates opens every stored password of kind for the device, in the
// order to try them: current, pending, previous. It returns ErrNotFound if
// there is none. A value that fails to open is an error naming the cause
// (ErrWrongKey, ErrTampered, ErrMisplaced), never skipped silently.
func (x *Secrets) Candidates(ctx context.Context, uuid string, kind SecretKind) ([]Candidate, error) {
	u, err := NormalizeUUID(uuid)
	if err != nil {
		return nil, fmt.Errorf("secret candidates: %w", err)
	}
	rows, err := x.s.db.QueryContext(ctx, `SELECT id, state, value_sealed, key_id, created FROM device_secrets
		WHERE device = ? AND kind = ?`, u, kind)
	if err != nil {
		return nil, fmt.Errorf("secret candidates %s %s: %w", u, kind, err)
	}
	type row struct {
		id      int64
		state   string
		blob    []byte
		keyID   string
		created int64
	}
	var rs []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.state, &r.blob, &r.keyID, &r.created); err != nil {
			rows.Close()
			return nil, fmt.Errorf("secret candidates %s %s: %w", u, kind, err)
		}
		rs = append(rs, r)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("secret candidates %s %s: %w", u, kind, err)
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("secret %s %s: %w", u, kind, ErrNotFound)
	}
	out := make([]Candidate, 0, len(rs))
	for _, r := range rs {
		plain, err := x.s.open(secretPlace(u, kind, r.id), r.keyID, r.blob)
		if err != nil {
			for _, c := range out {
				c.Value.Wipe()
			}
			return nil, fmt.Errorf("secret %s %s (%s): %w", u, kind, r.state, err)
		}
		out = append(out, Candidate{State: r.state, Value: secret.New(plain), Created: fromNS(r.created)})
		clear(plain)
	}
	// At most three rows: a tiny insertion sort keeps the order explicit.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && stateRank[out[j].State] < stateRank[out[j-1].State]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

// Current returns the current password of kind, or ErrNotFound.
func (x *Secrets) Current(ctx context.Context, uuid string, kind SecretKind) (secret.Value, error) {
	cs, err := x.Candidates(ctx, uuid, kind)
	if err != nil {
		return secret.Value{}, err
	}
	var v secret.Value
	for _, c := range cs {
		if c.State == StateCurrent && v.IsZero() {
			v = c.Value
		} else {
			c.Value.Wipe()
		}
	}
	if v.IsZero() {
		return v, fmt.Errorf("secret %s %s: no current password: %w", uuid, kind, ErrNotFound)
	}
	return v, nil
}

// Export returns the password of kind in state (current when "") for a
// person, through the CLI or API. The read is audited with actor and reason
// (required), whether or not it succeeds; the value never is.
func (x *Secrets) Export(ctx context.Context, uuid string, kind SecretKind, state, actor, reason string) (secret.Value, error) {
	u, err := NormalizeUUID(uuid)
	if err != nil {
		return secret.Value{}, fmt.Errorf("secret export: %w", err)
	}
	if strings.TrimSpace(reason) == "" {
		return secret.Value{}, fmt.Errorf("secret export %s %s: a reason is required (it goes into the audit trail)", u, kind)
	}
	if !kind.valid() {
		return secret.Value{}, fmt.Errorf("secret export %s: kind %q is not amt_admin, mebx or mps", u, kind)
	}
	if state == "" {
		state = StateCurrent
	}
	if _, ok := stateRank[state]; !ok {
		return secret.Value{}, fmt.Errorf("secret export %s %s: state %q is not current, pending or previous", u, kind, state)
	}
	var v secret.Value
	cs, err := x.Candidates(ctx, u, kind)
	if err == nil {
		err = fmt.Errorf("secret %s %s: no %s password: %w", u, kind, state, ErrNotFound)
		for _, c := range cs {
			if c.State == state {
				v, err = c.Value, nil
			} else {
				c.Value.Wipe()
			}
		}
	}
	result := ResultOK
	if err != nil {
		result = "error: " + err.Error()
	}
	if aerr := x.s.Audit(ctx, AuditEntry{Actor: actor, Action: "secret.export", Object: secretObject(u, kind) + "/" + state, Reason: reason, Result: result}); aerr != nil {
		v.Wipe()
		return secret.Value{}, fmt.Errorf("secret export %s %s: not exported, audit failed: %w", u, kind, aerr)
	}
	if err != nil {
		return secret.Value{}, err
	}
	return v, nil
}

// CheckMPS reports whether password is the device's current or pending MPS
// password, by the stored slow hash, in constant time per hash.
func (x *Secrets) CheckMPS(ctx context.Context, uuid string, password []byte) (bool, error) {
	u, err := NormalizeUUID(uuid)
	if err != nil {
		return false, err
	}
	rows, err := x.s.db.QueryContext(ctx, `SELECT slow_hash FROM device_secrets WHERE device = ? AND kind = 'mps' AND state IN ('current', 'pending')`, u)
	if err != nil {
		return false, fmt.Errorf("check mps password %s: %w", u, err)
	}
	var hashes []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			rows.Close()
			return false, fmt.Errorf("check mps password %s: %w", u, err)
		}
		hashes = append(hashes, h)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return false, fmt.Errorf("check mps password %s: %w", u, err)
	}
	ok := false
	for _, h := range hashes {
		match, err := verifyMPS(h, password)
		if err != nil {
			return false, fmt.Errorf("check mps password %s: %w", u, err)
		}
		ok = ok || match
	}
	return ok, nil
}

// argon2id parameters: OWASP's second recommended set (19 MiB, 2 passes),
// affordable for a burst of CIRA reconnects after an appliance restart.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

func hashMPS(pw []byte) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	sum := argon2.IDKey(pw, salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		enc.EncodeToString(salt), enc.EncodeToString(sum)), nil
}

var errBadHash = errors.New("malformed slow hash in store")

// verifyMPS checks pw against a PHC-format argon2id string.
func verifyMPS(phc string, pw []byte) (bool, error) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var v int
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false, errBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || m > 1<<20 || t == 0 || t > 16 || p == 0 {
		return false, errBadHash
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[4])
	want, err2 := enc.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 || len(want) > 64 {
		return false, errBadHash
	}
	got := argon2.IDKey(pw, salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
