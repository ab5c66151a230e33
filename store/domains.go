package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"amtd/secret"
)

// Domain is a provisioning domain: the DNS suffix AMT matches against its
// provisioning certificate, and that certificate (spec/activation.md §12).
type Domain struct {
	Suffix      string       // lower case, no trailing dot
	PFX         secret.Value // the PKCS#12 bundle with the private key
	PFXPassword secret.Value
	RootSHA256  string          // hex SHA-256 of the chain's root, lower case
	LeafExpiry  time.Time       // NotAfter of the leaf
	Metadata    json.RawMessage // free-form JSON (issuer, subject, vendor)
	Created     time.Time
	Updated     time.Time
}

// Domains is the domains table.
type Domains struct{ s *Store }

func domainPlace(suffix, column string) place { return place{"domains", column, suffix} }

// Put seals and stores the domain, replacing one with the same suffix
// (audited). Validating the certificate is the caller's job (it has the
// parser); the store only keeps it.
func (ds *Domains) Put(ctx context.Context, d Domain, actor, reason string) error {
	suffix := strings.TrimSuffix(strings.ToLower(d.Suffix), ".")
	if suffix == "" {
		return errors.New("domain put: empty suffix")
	}
	if d.PFX.IsZero() {
		return fmt.Errorf("domain put %s: no certificate", suffix)
	}
	meta := d.Metadata
	if len(meta) == 0 {
		meta = json.RawMessage("{}")
	}
	if !json.Valid(meta) {
		return fmt.Errorf("domain put %s: metadata is not valid JSON", suffix)
	}
	now := toNS(ds.s.now())
	err := ds.s.sealedTx(ctx, func(tx *sql.Tx, sl *sealer) error {
		pfx, err := sl.seal(domainPlace(suffix, "pfx_sealed"), d.PFX.Reveal())
		if err != nil {
			return err
		}
		pw, err := sl.seal(domainPlace(suffix, "pfx_password_sealed"), d.PFXPassword.Reveal())
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO domains(suffix, pfx_sealed, pfx_password_sealed, key_id, root_sha256, leaf_expiry, metadata, created, updated)
			VALUES (?,?,?,?,?,?,?,?,?)
			ON CONFLICT(suffix) DO UPDATE SET pfx_sealed=excluded.pfx_sealed, pfx_password_sealed=excluded.pfx_password_sealed,
				key_id=excluded.key_id, root_sha256=excluded.root_sha256, leaf_expiry=excluded.leaf_expiry,
				metadata=excluded.metadata, updated=excluded.updated`,
			suffix, pfx, pw, sl.keyID, strings.ToLower(d.RootSHA256), toNS(d.LeafExpiry), string(meta), now, now)
		if err != nil {
			return err
		}
		return ds.s.auditTx(ctx, tx, AuditEntry{Actor: actor, Action: "domain.put", Object: "domain/" + suffix, Reason: reason})
	})
	if err != nil {
		return fmt.Errorf("domain put %s: %w", suffix, err)
	}
	return nil
}

// Get returns the domain with its certificate and password opened, or
// ErrNotFound.
func (ds *Domains) Get(ctx context.Context, suffix string) (Domain, error) {
	suffix = strings.TrimSuffix(strings.ToLower(suffix), ".")
	var d Domain
	var pfx, pw []byte
	var keyID, meta string
	var exp, created, updated int64
	err := ds.s.db.QueryRowContext(ctx, `SELECT suffix, pfx_sealed, pfx_password_sealed, key_id, root_sha256, leaf_expiry, metadata, created, updated
		FROM domains WHERE suffix = ?`, suffix).Scan(&d.Suffix, &pfx, &pw, &keyID, &d.RootSHA256, &exp, &meta, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Domain{}, fmt.Errorf("domain %s: %w", suffix, ErrNotFound)
	}
	if err != nil {
		return Domain{}, fmt.Errorf("domain %s: %w", suffix, err)
	}
	plain, err := ds.s.open(domainPlace(suffix, "pfx_sealed"), keyID, pfx)
	if err != nil {
		return Domain{}, fmt.Errorf("domain %s: %w", suffix, err)
	}
	d.PFX = secret.New(plain)
	clear(plain)
	plain, err = ds.s.open(domainPlace(suffix, "pfx_password_sealed"), keyID, pw)
	if err != nil {
		d.PFX.Wipe()
		return Domain{}, fmt.Errorf("domain %s: %w", suffix, err)
	}
	d.PFXPassword = secret.New(plain)
	clear(plain)
	d.LeafExpiry, d.Created, d.Updated = fromNS(exp), fromNS(created), fromNS(updated)
	d.Metadata = json.RawMessage(meta)
	return d, nil
}

// List returns every domain without its sealed values, ordered by suffix.
func (ds *Domains) List(ctx context.Context) ([]Domain, error) {
	rows, err := ds.s.db.QueryContext(ctx, `SELECT suffix, root_sha256, leaf_expiry, metadata, created, updated FROM domains ORDER BY suffix`)
	if err != nil {
		return nil, fmt.Errorf("domains: %w", err)
	}
	defer rows.Close()
	var out []Domain
	for rows.Next() {
		var d Domain
		var meta string
		var exp, created, updated int64
		if err := rows.Scan(&d.Suffix, &d.RootSHA256, &exp, &meta, &created, &updated); err != nil {
			return nil, fmt.Errorf("domains: %w", err)
		}
		d.LeafExpiry, d.Created, d.Updated = fromNS(exp), fromNS(created), fromNS(updated)
		d.Metadata = json.RawMessage(meta)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("domains: %w", err)
	}
	return out, nil
}

// Delete removes the domain (audited). Absent is not an error.
func (ds *Domains) Delete(ctx context.Context, suffix, actor, reason string) error {
	suffix = strings.TrimSuffix(strings.ToLower(suffix), ".")
	err := ds.s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM domains WHERE suffix = ?`, suffix); err != nil {
			return err
		}
		return ds.s.auditTx(ctx, tx, AuditEntry{Actor: actor, Action: "domain.delete", Object: "domain/" + suffix, Reason: reason})
	})
	if err != nil {
		return fmt.Errorf("domain delete %s: %w", suffix, err)
	}
	return nil
}
