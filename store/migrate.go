package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Migrations are numbered SQL files, applied in order, each exactly once,
// never edited after release: 0001_initial.sql, 0002_....sql. PRAGMA
// user_version holds the number of the last one applied.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// ErrTooNew is returned when the database was written by a newer amtd.
var ErrTooNew = errors.New("database schema is newer than this amtd")

func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var ms []migration
	for i, name := range names {
		base := filepath.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != i+1 {
			return nil, fmt.Errorf("migration %s: want number %04d first in the name", base, i+1)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	return ms, nil
}

// SchemaVersion is the schema version this binary writes.
func SchemaVersion() int {
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		panic(err) // the embedded files are part of the binary; a test covers them
	}
	return len(ms)
}

// migrate brings the schema to the newest version. An existing database
// (version > 0) is snapshotted into backupDir first.
func (s *Store) migrate(ctx context.Context, backupDir string) error {
	return s.migrateWith(ctx, migrationFiles, backupDir)
}

func (s *Store) migrateWith(ctx context.Context, fsys fs.FS, backupDir string) error {
	ms, err := loadMigrations(fsys)
	if err != nil {
		return fmt.Errorf("store %s: %w", s.path, err)
	}
	var have int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&have); err != nil {
		return fmt.Errorf("store %s: read schema version: %w", s.path, err)
	}
	want := len(ms)
	switch {
	case have > want:
		return fmt.Errorf("store %s: schema version %d, but this amtd knows only up to %d: run the newer amtd that wrote it, or restore a backup made by this version: %w",
			s.path, have, want, ErrTooNew)
	case have == want:
		return nil
	case have == 0 && backupDir != "":
		// Open (not Init) of a file with no schema: not ours.
		var n int
		if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
			return fmt.Errorf("store %s: %w", s.path, err)
		}
		if n > 0 {
			return fmt.Errorf("store %s: not an amtd store (schema version 0 with %d objects)", s.path, n)
		}
		return fmt.Errorf("store %s: empty database; create the store with 'amtd store init'", s.path)
	}
	if have > 0 {
		snap, err := s.snapshot(ctx, backupDir, fmt.Sprintf("pre-v%d-from-v%d", want, have))
		if err != nil {
			return fmt.Errorf("store %s: snapshot before migrating from version %d to %d: %w", s.path, have, want, err)
		}
		s.log.Info("store snapshot taken before migration", "snapshot", snap, "from", have, "to", want)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		for _, m := range ms[have:] {
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			// user_version is written inside the transaction, so a failed
			// migration leaves the old number with the old schema.
			if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.version)); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store %s: migrate from version %d to %d: %w", s.path, have, want, err)
	}
	if have > 0 {
		s.log.Info("store migrated", "from", have, "to", want)
	}
	return nil
}

// snapshot writes a consistent copy of the database (still sealed) into dir
// and returns its path.
func (s *Store) snapshot(ctx context.Context, dir, label string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	name := fmt.Sprintf("%s.%s.%s", filepath.Base(s.path), s.now().UTC().Format("20060102T150405.000000000Z"), label)
	path := filepath.Join(dir, name)
	if err := s.Backup(ctx, path); err != nil {
		return "", err
	}
	return path, nil
}

// Backup writes a consistent copy of the open database to path (VACUUM INTO:
// online, one transaction's view). Sealed values stay sealed: the copy needs
// the same master key. It refuses to overwrite an existing file.
func (s *Store) Backup(ctx context.Context, path string) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("backup %s: file exists", path)
	}
	// VACUUM INTO would create the file with the process umask; create it
	// 0600 ourselves first (SQLite accepts an empty target file).
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("backup %s: %w", path, err)
	}
	f.Close()
	if _, err := s.db.ExecContext(ctx, "VACUUM INTO ?", path); err != nil {
		os.Remove(path)
		return fmt.Errorf("backup %s: %w", path, err)
	}
	f, err = os.Open(path)
	if err != nil {
		return fmt.Errorf("backup %s: %w", path, err)
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return fmt.Errorf("backup %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}
