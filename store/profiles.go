package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Profile is a named set of provisioning settings and the rules that pick
// which devices it applies to. Both are JSON owned by the provisioning code;
// the store checks only that they are JSON.
type Profile struct {
	Name       string
	Settings   json.RawMessage
	MatchRules json.RawMessage
	Created    time.Time
	Updated    time.Time
}

// Profiles is the profiles table.
type Profiles struct{ s *Store }

// Put inserts or replaces the profile (audited).
func (ps *Profiles) Put(ctx context.Context, p Profile, actor, reason string) error {
	if p.Name == "" {
		return errors.New("profile put: empty name")
	}
	settings, rules := p.Settings, p.MatchRules
	if len(settings) == 0 {
		settings = json.RawMessage("{}")
	}
	if len(rules) == 0 {
		rules = json.RawMessage("[]")
	}
	if !json.Valid(settings) {
		return fmt.Errorf("profile put %s: settings are not valid JSON", p.Name)
	}
	if !json.Valid(rules) {
		return fmt.Errorf("profile put %s: match rules are not valid JSON", p.Name)
	}
	now := toNS(ps.s.now())
	err := ps.s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO profiles(name, settings, match_rules, created, updated) VALUES (?,?,?,?,?)
			ON CONFLICT(name) DO UPDATE SET settings=excluded.settings, match_rules=excluded.match_rules, updated=excluded.updated`,
			p.Name, string(settings), string(rules), now, now)
		if err != nil {
			return err
		}
		return ps.s.auditTx(ctx, tx, AuditEntry{Actor: actor, Action: "profile.put", Object: "profile/" + p.Name, Reason: reason})
	})
	if err != nil {
		return fmt.Errorf("profile put %s: %w", p.Name, err)
	}
	return nil
}

func scanProfile(r scanner) (Profile, error) {
	var p Profile
	var settings, rules string
	var created, updated int64
	if err := r.Scan(&p.Name, &settings, &rules, &created, &updated); err != nil {
		return p, err
	}
	p.Settings, p.MatchRules = json.RawMessage(settings), json.RawMessage(rules)
	p.Created, p.Updated = fromNS(created), fromNS(updated)
	return p, nil
}

// Get returns the profile called name, or ErrNotFound.
func (ps *Profiles) Get(ctx context.Context, name string) (Profile, error) {
	p, err := scanProfile(ps.s.db.QueryRowContext(ctx, `SELECT name, settings, match_rules, created, updated FROM profiles WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Profile{}, fmt.Errorf("profile %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Profile{}, fmt.Errorf("profile %s: %w", name, err)
	}
	return p, nil
}

// List returns every profile ordered by name.
func (ps *Profiles) List(ctx context.Context) ([]Profile, error) {
	rows, err := ps.s.db.QueryContext(ctx, `SELECT name, settings, match_rules, created, updated FROM profiles ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("profiles: %w", err)
	}
	defer rows.Close()
	var out []Profile
	for rows.Next() {
		p, err := scanProfile(rows)
		if err != nil {
			return nil, fmt.Errorf("profiles: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("profiles: %w", err)
	}
	return out, nil
}

// Delete removes the profile (audited). Absent is not an error.
func (ps *Profiles) Delete(ctx context.Context, name, actor, reason string) error {
	err := ps.s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM profiles WHERE name = ?`, name); err != nil {
			return err
		}
		return ps.s.auditTx(ctx, tx, AuditEntry{Actor: actor, Action: "profile.delete", Object: "profile/" + name, Reason: reason})
	})
	if err != nil {
		return fmt.Errorf("profile delete %s: %w", name, err)
	}
	return nil
}
