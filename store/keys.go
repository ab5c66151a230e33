package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"amtd/secret"
)

// Kinds of named keys.
const (
	KeyTSIG = "tsig" // RFC 8945 TSIG secret for DNS updates ([DNS] UpdateKey=, [DNSRegistrar] Key=)
	KeyCA   = "ca"   // a CA private key (PEM) amtd issues certificates with
)

// Keys is the keys table: named secrets that are not device passwords.
type Keys struct{ s *Store }

func keyPlace(name string) place { return place{"keys", "value_sealed", name} }

// Put seals v and stores it under name, replacing any key of that name. The
// change is audited with actor and reason (never the value).
func (k *Keys) Put(ctx context.Context, name, kind string, v secret.Value, actor, reason string) error {
	if name == "" {
		return errors.New("key put: empty name")
	}
	if kind != KeyTSIG && kind != KeyCA {
		return fmt.Errorf("key put %s: kind %q is not tsig or ca", name, kind)
	}
	if v.IsZero() {
		return fmt.Errorf("key put %s: empty value", name)
	}
	now := toNS(k.s.now())
	err := k.s.sealedTx(ctx, func(tx *sql.Tx, sl *sealer) error {
		blob, err := sl.seal(keyPlace(name), v.Reveal())
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO keys(name, kind, value_sealed, key_id, created, updated) VALUES (?,?,?,?,?,?)
			ON CONFLICT(name) DO UPDATE SET kind=excluded.kind, value_sealed=excluded.value_sealed,
				key_id=excluded.key_id, updated=excluded.updated`,
			name, kind, blob, sl.keyID, now, now)
		if err != nil {
			return err
		}
		return k.s.auditTx(ctx, tx, AuditEntry{Actor: actor, Action: "key.put", Object: "key/" + name, Reason: reason})
	})
	if err != nil {
		return fmt.Errorf("key put %s: %w", name, err)
	}
	return nil
}

// Get opens the key called name. It returns ErrNotFound if there is none.
// The daemon's own use (signing DNS updates) is not audited; reads on behalf
// of a person go through Export, which is.
func (k *Keys) Get(ctx context.Context, name string) (secret.Value, error) {
	var blob []byte
	var keyID string
	err := k.s.db.QueryRowContext(ctx, `SELECT value_sealed, key_id FROM keys WHERE name = ?`, name).Scan(&blob, &keyID)
	if errors.Is(err, sql.ErrNoRows) {
		return secret.Value{}, fmt.Errorf("key %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return secret.Value{}, fmt.Errorf("key %s: %w", name, err)
	}
	plain, err := k.s.open(keyPlace(name), keyID, blob)
	if err != nil {
		return secret.Value{}, fmt.Errorf("key %s: %w", name, err)
	}
	v := secret.New(plain)
	clear(plain)
	return v, nil
}

// Kind returns the kind of the key called name, or ErrNotFound.
func (k *Keys) Kind(ctx context.Context, name string) (string, error) {
	var kind string
	err := k.s.db.QueryRowContext(ctx, `SELECT kind FROM keys WHERE name = ?`, name).Scan(&kind)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("key %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("key %s: %w", name, err)
	}
	return kind, nil
}

// Delete removes the key called name (audited). Absent keys are not an error.
func (k *Keys) Delete(ctx context.Context, name, actor, reason string) error {
	err := k.s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM keys WHERE name = ?`, name); err != nil {
			return err
		}
		return k.s.auditTx(ctx, tx, AuditEntry{Actor: actor, Action: "key.delete", Object: "key/" + name, Reason: reason})
	})
	if err != nil {
		return fmt.Errorf("key delete %s: %w", name, err)
	}
	return nil
}

// KeyInfo describes a named key without its value.
type KeyInfo struct {
	Name    string
	Kind    string
	Created time.Time
	Updated time.Time
}

// List returns the keys of kind (every kind when kind is ""), by name,
// without opening their values.
func (k *Keys) List(ctx context.Context, kind string) ([]KeyInfo, error) {
	rows, err := k.s.db.QueryContext(ctx, `SELECT name, kind, created, updated FROM keys WHERE ?1 = '' OR kind = ?1 ORDER BY name`, kind)
	if err != nil {
		return nil, fmt.Errorf("keys %q: %w", kind, err)
	}
	defer rows.Close()
	var out []KeyInfo
	for rows.Next() {
		var ki KeyInfo
		var created, updated int64
		if err := rows.Scan(&ki.Name, &ki.Kind, &created, &updated); err != nil {
			return nil, fmt.Errorf("keys: %w", err)
		}
		ki.Created, ki.Updated = fromNS(created), fromNS(updated)
		out = append(out, ki)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	return out, nil
}
