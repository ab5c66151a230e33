package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"amtd/secret"
)

// API key roles, least to most powerful.
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
	RoleAdmin    = "admin"
)

// ErrUnauthorized is returned by Authenticate for any token that is not a
// live API key; the caller answers 401 without saying which check failed.
var ErrUnauthorized = errors.New("invalid or revoked API key")

// APIKey describes a console API key. The token itself is never stored:
// only its SHA-256 (tokens carry 160 random bits, so a fast hash suffices).
type APIKey struct {
	ID       string
	Prefix   string // the public part of the token, shown in listings
	Name     string
	Role     string
	Created  time.Time
	LastUsed time.Time
	Revoked  time.Time // zero while live
}

// APIKeys is the api_keys table.
type APIKeys struct{ s *Store }

// tokenPrefix marks amtd API tokens so secret scanners can find leaked ones.
const tokenPrefix = "amtd_"

// Create makes a new API key and returns its token, the only time it is
// ever available. Tokens look like amtd_<8 hex prefix>_<32 base32 chars>.
func (ak *APIKeys) Create(ctx context.Context, name, role, actor, reason string) (secret.Value, APIKey, error) {
	if role != RoleViewer && role != RoleOperator && role != RoleAdmin {
		return secret.Value{}, APIKey{}, fmt.Errorf("api key create %q: role %q is not viewer, operator or admin", name, role)
	}
	var rnd [4 + 4 + 20]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return secret.Value{}, APIKey{}, fmt.Errorf("api key create: %w", err)
	}
	defer clear(rnd[:])
	k := APIKey{
		ID:      hex.EncodeToString(rnd[:4]),
		Prefix:  hex.EncodeToString(rnd[4:8]),
		Name:    name,
		Role:    role,
		Created: ak.s.now().UTC(),
	}
	token := []byte(tokenPrefix + k.Prefix + "_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(rnd[8:])))
	sum := sha256.Sum256(token)
	err := ak.s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO api_keys(id, prefix, sha256, role, name, created) VALUES (?,?,?,?,?,?)`,
			k.ID, k.Prefix, sum[:], k.Role, k.Name, toNS(k.Created))
		if err != nil {
			return err
		}
		return ak.s.auditTx(ctx, tx, AuditEntry{Actor: actor, Action: "apikey.create", Object: "apikey/" + k.ID, Reason: reason, Result: "ok: role " + role})
	})
	if err != nil {
		clear(token)
		return secret.Value{}, APIKey{}, fmt.Errorf("api key create %q: %w", name, err)
	}
	v := secret.New(token)
	clear(token)
	return v, k, nil
}

// Authenticate returns the live key a token belongs to and records its use,
// or ErrUnauthorized.
func (ak *APIKeys) Authenticate(ctx context.Context, token secret.Value) (APIKey, error) {
	t := token.RevealString()
	rest, ok := strings.CutPrefix(t, tokenPrefix)
	if !ok || len(rest) < 10 || rest[8] != '_' || len(t) > 128 {
		return APIKey{}, ErrUnauthorized
	}
	prefix := rest[:8]
	var k APIKey
	var sum []byte
	var created, lastUsed, revoked int64
	err := ak.s.db.QueryRowContext(ctx, `SELECT id, prefix, sha256, role, name, created, last_used, revoked FROM api_keys WHERE prefix = ?`, prefix).
		Scan(&k.ID, &k.Prefix, &sum, &k.Role, &k.Name, &created, &lastUsed, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, ErrUnauthorized
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("api key authenticate: %w", err)
	}
	got := sha256.Sum256(token.Reveal())
	if subtle.ConstantTimeCompare(got[:], sum) != 1 || revoked != 0 {
		return APIKey{}, ErrUnauthorized
	}
	now := ak.s.now()
	// Record use at most once a minute per key, so a busy console does not
	// turn every request into a disk write.
	if now.Sub(fromNS(lastUsed)) > time.Minute {
		if _, err := ak.s.db.ExecContext(ctx, `UPDATE api_keys SET last_used = ? WHERE id = ?`, toNS(now), k.ID); err != nil {
			return APIKey{}, fmt.Errorf("api key authenticate: %w", err)
		}
		lastUsed = toNS(now)
	}
	k.Created, k.LastUsed = fromNS(created), fromNS(lastUsed)
	return k, nil
}

// Revoke ends the key with id (audited). It returns ErrNotFound for an
// unknown id; revoking twice keeps the first time.
func (ak *APIKeys) Revoke(ctx context.Context, id, actor, reason string) error {
	err := ak.s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE api_keys SET revoked = CASE WHEN revoked = 0 THEN ? ELSE revoked END WHERE id = ?`, toNS(ak.s.now()), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return ak.s.auditTx(ctx, tx, AuditEntry{Actor: actor, Action: "apikey.revoke", Object: "apikey/" + id, Reason: reason})
	})
	if err != nil {
		return fmt.Errorf("api key revoke %s: %w", id, err)
	}
	return nil
}

// List returns every key, newest first.
func (ak *APIKeys) List(ctx context.Context) ([]APIKey, error) {
	rows, err := ak.s.db.QueryContext(ctx, `SELECT id, prefix, role, name, created, last_used, revoked FROM api_keys ORDER BY created DESC`)
	if err != nil {
		return nil, fmt.Errorf("api keys: %w", err)
	}
	defer rows.Close()
	var out []APIKey
	for rows.Next() {
		var k APIKey
		var created, lastUsed, revoked int64
		if err := rows.Scan(&k.ID, &k.Prefix, &k.Role, &k.Name, &created, &lastUsed, &revoked); err != nil {
			return nil, fmt.Errorf("api keys: %w", err)
		}
		k.Created, k.LastUsed, k.Revoked = fromNS(created), fromNS(lastUsed), fromNS(revoked)
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("api keys: %w", err)
	}
	return out, nil
}
