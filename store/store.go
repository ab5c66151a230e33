// Package store is amtd's encrypted credential store: one SQLite file holding
// devices, their passwords (sealed with AES-256-GCM under a master key kept
// outside the database), provisioning domains, profiles, DHCP leases, DNS
// records, named keys, API keys and the audit trail.
//
// The database runs in WAL mode with synchronous=FULL, so a committed write
// survives power loss; write transactions take the lock up front
// (BEGIN IMMEDIATE) so two writers never deadlock on an upgrade. The schema is
// changed only by numbered, forward-only migrations embedded in the binary and
// counted by PRAGMA user_version; before migrating an existing database the
// store snapshots it into the backup directory.
//
// Callers use typed accessors that read as sentences:
//
//	d, err := s.Devices().Get(ctx, uuid)
//	err = s.Secrets().SetPending(ctx, uuid, store.AMTAdmin, pw, "activation")
//	err = s.Leases().Put(ctx, lease)
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

// DefaultPath is where the Debian package keeps the database.
const DefaultPath = "/var/lib/amtd/amtd.db"

// ErrNotFound is returned by Get-style accessors when no row matches.
var ErrNotFound = errors.New("not found")

// Options say where the store and its master key are.
type Options struct {
	// Path of the SQLite database (default DefaultPath).
	Path string
	// KeyFile is a master key file (32 raw bytes or 64 hex characters, mode
	// 0600 or stricter). Empty: CredentialsDir/amtd-master-key.
	KeyFile string
	// CredentialsDir is systemd's credentials directory. Empty:
	// $CREDENTIALS_DIRECTORY.
	CredentialsDir string
	// BackupDir receives the snapshot taken before a migration (default the
	// database's directory + "/backup").
	BackupDir string
	// Logger receives migration and maintenance messages (default: discard).
	Logger *slog.Logger
	// Now is the clock (default time.Now); tests set it.
	Now func() time.Time
}

func (o *Options) fill() {
	if o.Path == "" {
		o.Path = DefaultPath
	}
	if o.BackupDir == "" {
		o.BackupDir = filepath.Join(filepath.Dir(o.Path), "backup")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Store is an open credential store. It is safe for concurrent use.
type Store struct {
	db   *sql.DB
	path string
	log  *slog.Logger
	now  func() time.Time

	mu     sync.RWMutex // guards key and sealer, swapped by RotateKey
	key    *masterKey
	sealer *sealer

	closeOnce sync.Once
	closeErr  error
}

// dsn builds the go-sqlite3 connection string. Every connection of the pool
// gets the same pragmas.
func dsn(path string, create bool) string {
	mode := "rw"
	if create {
		mode = "rwc"
	}
	q := url.Values{}
	q.Set("mode", mode)
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_busy_timeout", "10000")
	q.Set("_foreign_keys", "on")
	q.Set("_txlock", "immediate")
	q.Set("_secure_delete", "on")
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: q.Encode()}
	return u.String()
}

// Open opens an existing store, checks the master key against it, and
// migrates it forward (after a snapshot) if it was made by an older amtd.
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts.fill()
	if _, err := os.Stat(opts.Path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("store %s does not exist; create it with 'amtd store init'", opts.Path)
		}
		return nil, fmt.Errorf("store %s: %w", opts.Path, err)
	}
	key, err := loadMasterKey(opts.KeyFile, opts.CredentialsDir)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", opts.Path, err)
	}
	s, err := openDB(ctx, opts, key, false)
	if err != nil {
		key.wipe()
		return nil, err
	}
	if err := s.migrate(ctx, opts.BackupDir); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.checkKey(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Init creates a new store at opts.Path sealed with the master key opts
// names. It refuses to touch an existing database.
func Init(ctx context.Context, opts Options) (*Store, error) {
	opts.fill()
	for _, p := range []string{opts.Path, opts.Path + "-wal"} {
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("store %s already exists; refusing to initialise over it (use 'amtd store backup' and move it away first)", p)
		}
	}
	key, err := loadMasterKey(opts.KeyFile, opts.CredentialsDir)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", opts.Path, err)
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o750); err != nil {
		key.wipe()
		return nil, fmt.Errorf("store %s: %w", opts.Path, err)
	}
	// Create the file ourselves so it is 0600 from the first byte; SQLite
	// gives its -wal and -shm files the database file's mode.
	f, err := os.OpenFile(opts.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		key.wipe()
		return nil, fmt.Errorf("store %s: %w", opts.Path, err)
	}
	f.Close()
	s, err := openDB(ctx, opts, key, true)
	if err != nil {
		key.wipe()
		os.Remove(opts.Path)
		return nil, err
	}
	fail := func(err error) (*Store, error) {
		s.Close()
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(opts.Path + suffix)
		}
		return nil, err
	}
	if err := s.migrate(ctx, ""); err != nil {
		return fail(err)
	}
	if err := s.tx(ctx, func(tx *sql.Tx) error { return s.addMasterKey(ctx, tx, s.sealer) }); err != nil {
		return fail(fmt.Errorf("store %s: record master key: %w", opts.Path, err))
	}
	if err := syncDir(filepath.Dir(opts.Path)); err != nil {
		return fail(err)
	}
	s.log.Info("store created", "path", opts.Path, "key_id", s.sealer.keyID)
	return s, nil
}

func openDB(ctx context.Context, opts Options, key *masterKey, create bool) (*Store, error) {
	if strings.ContainsAny(opts.Path, "?#") {
		return nil, fmt.Errorf("store %s: path may not contain '?' or '#'", opts.Path)
	}
	sl, err := newSealer(key)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", opts.Path, err)
	}
	db, err := sql.Open("sqlite3", dsn(opts.Path, create))
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", opts.Path, err)
	}
	// One writer at a time is SQLite's rule anyway; a few connections let
	// readers run beside it under WAL.
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: open: %w", opts.Path, err)
	}
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: not a readable SQLite database: %w", opts.Path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		db.Close()
		return nil, fmt.Errorf("store %s: journal mode is %q, not WAL (is the directory writable?)", opts.Path, mode)
	}
	return &Store{db: db, path: opts.Path, log: opts.Logger, now: opts.Now, key: key, sealer: sl}, nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// KeyID names the master key in use (not secret).
func (s *Store) KeyID() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sealer.keyID
}

// Close checkpoints the WAL into the database file, closes it, and wipes the
// master key from memory.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := s.db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			s.closeErr = fmt.Errorf("store %s: checkpoint: %w", s.path, err)
		}
		if err := s.db.Close(); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("store %s: close: %w", s.path, err)
		}
		s.mu.Lock()
		s.key.wipe()
		s.sealer = &sealer{keyID: s.sealer.keyID} // a closed store seals nothing
		s.mu.Unlock()
	})
	return s.closeErr
}

// Health runs a cheap query; the daemon's watchdog calls it. It fails when the
// database is locked beyond ctx, unreadable, or closed.
func (s *Store) Health(ctx context.Context) error {
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM master_keys WHERE retired = 0").Scan(&n); err != nil {
		return fmt.Errorf("store %s: health: %w", s.path, err)
	}
	if n == 0 {
		return fmt.Errorf("store %s: health: no active master key", s.path)
	}
	return nil
}

// tx runs fn in one immediate write transaction and commits; with
// synchronous=FULL the commit is on disk when tx returns nil.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// current returns the sealer in use.
func (s *Store) current() *sealer {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sealer
}

// sealedTx runs fn in a write transaction with the current sealer. It holds
// the key read lock for the whole transaction, so RotateKey (which takes the
// write lock before its own transaction) never sees a value sealed under a
// key it is retiring. Lock order everywhere: s.mu, then SQLite's lock.
func (s *Store) sealedTx(ctx context.Context, fn func(*sql.Tx, *sealer) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	sl := s.sealer
	if sl.aead == nil {
		return errors.New("store is closed")
	}
	return s.tx(ctx, func(tx *sql.Tx) error { return fn(tx, sl) })
}

func (s *Store) open(p place, keyID string, blob []byte) ([]byte, error) {
	sl := s.current()
	if sl.aead == nil {
		return nil, fmt.Errorf("open %s: store is closed", p)
	}
	return sl.open(p, keyID, blob)
}

// Times are stored as nanoseconds since the epoch; the zero time as 0.
func toNS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNS(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// Accessors. Each is a thin view over the store, cheap to make.

// Devices returns the device table.
func (s *Store) Devices() *Devices { return &Devices{s: s} }

// Secrets returns the device passwords (admin, MEBx, MPS).
func (s *Store) Secrets() *Secrets { return &Secrets{s: s} }

// Leases returns the DHCP lease table.
func (s *Store) Leases() *Leases { return &Leases{s: s} }

// DNSRecords returns the DNS records amtd serves or registers.
func (s *Store) DNSRecords() *DNSRecords { return &DNSRecords{s: s} }

// Keys returns the named keys (TSIG, CA).
func (s *Store) Keys() *Keys { return &Keys{s: s} }

// APIKeys returns the console API keys.
func (s *Store) APIKeys() *APIKeys { return &APIKeys{s: s} }

// Domains returns the provisioning domains and their certificates.
func (s *Store) Domains() *Domains { return &Domains{s: s} }

// Profiles returns the provisioning profiles.
func (s *Store) Profiles() *Profiles { return &Profiles{s: s} }
