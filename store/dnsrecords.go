package store

import (
	"context"
	"fmt"
	"time"
)

// Sources of DNS records: who asked for the record to exist.
const (
	SourceDHCP      = "dhcp"      // a leased host name (option 12/81)
	SourceDDNS      = "ddns"      // an RFC 2136 update (AMT's DDNS client; spec/network.md)
	SourceStatic    = "static"    // [DNS] Record= in amtd.conf
	SourceRegistrar = "registrar" // registered in the site's own DNS by [DNSRegistrar]
)

// DNSRecord is one resource record amtd serves or registers.
type DNSRecord struct {
	Name    string // fully qualified, lower case, trailing dot
	Type    string // A, AAAA, CNAME, TXT, PTR
	Value   string
	TTL     time.Duration
	Source  string // dhcp|ddns|static|registrar
	Updated time.Time
}

// DNSRecords is the dns_records table.
type DNSRecords struct{ s *Store }

func validSource(src string) bool {
	switch src {
	case SourceDHCP, SourceDDNS, SourceStatic, SourceRegistrar:
		return true
	}
	return false
}

// Put inserts or refreshes the record (name, type, value). Updated is set to
// now when zero.
func (d *DNSRecords) Put(ctx context.Context, r DNSRecord) error {
	if r.Name == "" || r.Type == "" {
		return fmt.Errorf("dns record put: name and type are required")
	}
	if !validSource(r.Source) {
		return fmt.Errorf("dns record put %s %s: source %q is not dhcp, ddns, static or registrar", r.Name, r.Type, r.Source)
	}
	if r.TTL < 0 {
		return fmt.Errorf("dns record put %s %s: negative TTL", r.Name, r.Type)
	}
	if r.Updated.IsZero() {
		r.Updated = d.s.now()
	}
	_, err := d.s.db.ExecContext(ctx, `INSERT INTO dns_records(name, type, value, ttl, source, updated) VALUES (?,?,?,?,?,?)
		ON CONFLICT(name, type, value) DO UPDATE SET ttl=excluded.ttl, source=excluded.source, updated=excluded.updated`,
		r.Name, r.Type, r.Value, int64(r.TTL/time.Second), r.Source, toNS(r.Updated))
	if err != nil {
		return fmt.Errorf("dns record put %s %s: %w", r.Name, r.Type, err)
	}
	return nil
}

// Delete removes every record of name and type (all values).
func (d *DNSRecords) Delete(ctx context.Context, name, typ string) error {
	if _, err := d.s.db.ExecContext(ctx, `DELETE FROM dns_records WHERE name = ? AND type = ?`, name, typ); err != nil {
		return fmt.Errorf("dns record delete %s %s: %w", name, typ, err)
	}
	return nil
}

// List returns the records from source, or all records when source is "".
func (d *DNSRecords) List(ctx context.Context, source string) ([]DNSRecord, error) {
	rows, err := d.s.db.QueryContext(ctx, `SELECT name, type, value, ttl, source, updated FROM dns_records
		WHERE ?1 = '' OR source = ?1 ORDER BY name, type, value`, source)
	if err != nil {
		return nil, fmt.Errorf("dns records %q: %w", source, err)
	}
	defer rows.Close()
	var out []DNSRecord
	for rows.Next() {
		var r DNSRecord
		var ttl, upd int64
		if err := rows.Scan(&r.Name, &r.Type, &r.Value, &ttl, &r.Source, &upd); err != nil {
			return nil, fmt.Errorf("dns records: %w", err)
		}
		r.TTL = time.Duration(ttl) * time.Second
		r.Updated = fromNS(upd)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("dns records: %w", err)
	}
	return out, nil
}
