package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// AuditEntry is one line of the audit trail: who did what to which object,
// why, and how it ended. It never holds a secret value.
type AuditEntry struct {
	Time   time.Time // set by the store when zero
	Actor  string    // "cli:root", "api:key:ab12cd", "daemon"
	Action string    // "secret.read", "secret.set_pending", "key.rotate", ...
	Object string    // "device/<uuid>/amt_admin", "key/<name>", "store"
	Reason string
	Result string // "ok" or an error summary
}

// Results used by the store's own audit rows.
const (
	ResultOK = "ok"
)

// Audit appends one entry to the audit trail.
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return s.auditTx(ctx, tx, e) })
}

// auditTx writes e inside tx, so a change and its audit row commit together.
func (s *Store) auditTx(ctx context.Context, tx *sql.Tx, e AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	if e.Actor == "" {
		e.Actor = "unknown"
	}
	if e.Result == "" {
		e.Result = ResultOK
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO audit(time, actor, action, object, reason, result) VALUES (?,?,?,?,?,?)`,
		toNS(e.Time), e.Actor, e.Action, e.Object, e.Reason, e.Result)
	if err != nil {
		return fmt.Errorf("audit %s %s: %w", e.Action, e.Object, err)
	}
	return nil
}

// AuditQuery selects audit entries; zero fields match everything.
type AuditQuery struct {
	Object string    // exact object
	Since  time.Time // entries at or after
	Limit  int       // default 1000
}

// AuditList returns matching entries, newest first.
func (s *Store) AuditList(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	if q.Limit <= 0 {
		q.Limit = 1000
	}
	rows, err := s.db.QueryContext(ctx, `SELECT time, actor, action, object, reason, result FROM audit
		WHERE (?1 = '' OR object = ?1) AND time >= ?2 ORDER BY time DESC, id DESC LIMIT ?3`,
		q.Object, toNS(q.Since), q.Limit)
	if err != nil {
		return nil, fmt.Errorf("audit list: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var t int64
		if err := rows.Scan(&t, &e.Actor, &e.Action, &e.Object, &e.Reason, &e.Result); err != nil {
			return nil, fmt.Errorf("audit list: %w", err)
		}
		e.Time = fromNS(t)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit list: %w", err)
	}
	return out, nil
}

type actorKey struct{}

// WithActor returns a context that names who is acting, for the audit rows
// of accessors whose signature has no actor (Secrets' SetPending, Promote...).
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFrom returns the actor named by WithActor, or "daemon".
func ActorFrom(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return "daemon"
}
