package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"strings"
	"syscall"
	"time"

	"amtd/daemon/config"
	"amtd/pki"
	"amtd/store"
)

// cmdStore manages the encrypted credential store: amtd store init |
// rotate-key | backup | verify | export-secret.
func cmdStore(c *cli, args []string) int {
	subs := []struct {
		name, summary string
		run           func(c *cli, args []string) int
	}{
		{"init", "create a new database (and with --generate-key, a new master key file)", storeInit},
		{"rotate-key", "re-seal every secret under a new master key and retire the old one", storeRotateKey},
		{"backup", "write a consistent copy of the live database (still sealed) to FILE", storeBackup},
		{"verify", "open every sealed value and report any that fail (exit 1 if any)", storeVerify},
		{"export-secret", "print one device password, audited with the reason given", storeExportSecret},
	}
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: amtd store COMMAND [OPTIONS]\n\nCommands:\n")
		for _, s := range subs {
			fmt.Fprintf(w, "  %-14s %s\n", s.name, s.summary)
		}
		fmt.Fprintf(w, "\nRun 'amtd store COMMAND -h' for the options of a command.\n")
	}
	if len(args) == 0 {
		usage(c.stderr)
		return exitUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(c.stdout)
		return exitOK
	}
	for _, s := range subs {
		if s.name == args[0] {
			return s.run(c, args[1:])
		}
	}
	fmt.Fprintf(c.stderr, "amtd store: unknown command %q\n\n", args[0])
	usage(c.stderr)
	return exitUsage
}

// storeFlags are the options every store command takes.
type storeFlags struct {
	*cmdFlags
	config    string
	db        string
	keyFile   string
	backupDir string
}

func newStoreFlags(c *cli, name, argsUsage, about string) *storeFlags {
	return newStoreFlagsFor(c, "store "+name, argsUsage, about)
}

// newStoreFlagsFor is newStoreFlags for commands outside "amtd store" that
// open the store too (amtd dns tsig ...).
func newStoreFlagsFor(c *cli, name, argsUsage, about string) *storeFlags {
	f := &storeFlags{cmdFlags: newCmdFlags(c, name, "[OPTIONS] "+argsUsage, about)}
	f.fs.StringVar(&f.config, "c", defaultConfigPath, "configuration `FILE`")
	f.fs.StringVar(&f.db, "db", "", "database `PATH` (overrides [Store] Path=)")
	f.fs.StringVar(&f.keyFile, "key-file", "", "master key `FILE` (overrides [Store] KeyFile=)")
	f.fs.StringVar(&f.backupDir, "backup-dir", "", "migration snapshot `DIR` (overrides [Store] BackupDir=)")
	return f
}

// options builds store.Options from the configuration file and the flag
// overrides. With --db and no explicit -c, no configuration file is read,
// so the commands work on a copy or before amtd.conf exists.
func (f *storeFlags) options(c *cli) (store.Options, error) {
	explicitConfig := false
	f.fs.Visit(func(fl *flag.Flag) { explicitConfig = explicitConfig || fl.Name == "c" })
	var opts store.Options
	if f.db == "" || explicitConfig {
		cfg, err := config.Load(f.config)
		if err != nil {
			if !explicitConfig && errors.Is(err, fs.ErrNotExist) {
				return opts, fmt.Errorf("%w\n(give the database with --db PATH, or the configuration with -c FILE)", err)
			}
			return opts, err
		}
		opts.Path, opts.KeyFile, opts.BackupDir = cfg.Store.Path, cfg.Store.KeyFile, cfg.Store.BackupDir
	}
	if f.db != "" {
		opts.Path = f.db
	}
	if f.keyFile != "" {
		opts.KeyFile = f.keyFile
	}
	if f.backupDir != "" {
		opts.BackupDir = f.backupDir
	}
	if opts.Path == "" {
		opts.Path = store.DefaultPath
	}
	opts.CredentialsDir = c.getenv("CREDENTIALS_DIRECTORY")
	opts.Logger = slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return opts, nil
}

// actor names the person at the CLI for the audit trail.
func (c *cli) actor() string {
	name := fmt.Sprintf("uid=%d", os.Getuid())
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if sudo := c.getenv("SUDO_USER"); sudo != "" {
		name += " (sudo from " + sudo + ")"
	}
	return "cli:" + name
}

func storeContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// openStore opens the store for a command, reporting failure on stderr.
func openStore(c *cli, ctx context.Context, f *storeFlags) (*store.Store, int) {
	opts, err := f.options(c)
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", f.fs.Name(), err)
		return nil, exitFailure
	}
	s, err := store.Open(ctx, opts)
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", f.fs.Name(), err)
		return nil, exitFailure
	}
	return s, -1
}

func closeStore(c *cli, s *store.Store, code int) int {
	if err := s.Close(); err != nil {
		fmt.Fprintf(c.stderr, "amtd store: %v\n", err)
		return exitFailure
	}
	return code
}

func storeInit(c *cli, args []string) int {
	f := newStoreFlags(c, "init", "", "Create a new, empty credential store. It refuses to touch an existing database.")
	generate := f.fs.Bool("generate-key", false, "first write a new random master key to the key file (--key-file or [Store] KeyFile=)")
	if _, code := f.parse(c, args, 0); code >= 0 {
		return code
	}
	opts, err := f.options(c)
	if err != nil {
		fmt.Fprintf(c.stderr, "amtd store init: %v\n", err)
		return exitFailure
	}
	if *generate {
		if opts.KeyFile == "" {
			fmt.Fprintln(c.stderr, "amtd store init: --generate-key needs a key file: give --key-file FILE or set KeyFile= in [Store]\n"+
				"(for systemd, generate one, then seal it with: systemd-creds encrypt --name=amtd-master-key FILE /etc/credstore.encrypted/amtd-master-key)")
			return exitUsage
		}
		if err := store.GenerateKeyFile(opts.KeyFile); err != nil {
			fmt.Fprintf(c.stderr, "amtd store init: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(c.stdout, "wrote new master key %s (mode 0600); keep a copy offline: without it the store cannot be opened\n", opts.KeyFile)
	}
	ctx, cancel := storeContext()
	defer cancel()
	s, err := store.Init(ctx, opts)
	if err != nil {
		fmt.Fprintf(c.stderr, "amtd store init: %v\n", err)
		return exitFailure
	}
	if err := s.Audit(ctx, store.AuditEntry{Actor: c.actor(), Action: "store.init", Object: "store"}); err != nil {
		fmt.Fprintf(c.stderr, "amtd store init: %v\n", err)
		return closeStore(c, s, exitFailure)
	}
	// The appliance CA: devices configured for CIRA trust its root, so it is
	// made once, here, and kept for the life of the store (pki package doc).
	ca, err := pki.Init(ctx, s, time.Now(), "", c.actor())
	if err != nil {
		fmt.Fprintf(c.stderr, "amtd store init: %v\n", err)
		return closeStore(c, s, exitFailure)
	}
	fmt.Fprintf(c.stdout, "created store %s (schema version %d), sealed with master key %s\n", s.Path(), store.SchemaVersion(), s.KeyID())
	fmt.Fprintf(c.stdout, "created the appliance CA %q (SHA-256 %s)\n", ca.Root().Subject.CommonName, ca.Fingerprint())
	return closeStore(c, s, exitOK)
}

func storeRotateKey(c *cli, args []string) int {
	f := newStoreFlags(c, "rotate-key", "", "Re-seal every secret under the key in --new-key-file, in one transaction, then retire the old key.\n"+
		"Stop amtd first, or restart it with the new key afterwards: it still holds the old one.")
	newKey := f.fs.String("new-key-file", "", "the new master key `FILE` (make one with 'amtd store init --generate-key' elsewhere, or 32 random bytes)")
	reason := f.fs.String("reason", "scheduled key rotation", "why, for the audit trail")
	if _, code := f.parse(c, args, 0); code >= 0 {
		return code
	}
	if *newKey == "" {
		fmt.Fprintln(c.stderr, "amtd store rotate-key: --new-key-file FILE is required")
		return exitUsage
	}
	return withStore(c, f, func(ctx context.Context, s *store.Store) int {
		old := s.KeyID()
		n, err := s.RotateKey(ctx, *newKey, c.actor(), *reason)
		if err != nil {
			fmt.Fprintf(c.stderr, "amtd store rotate-key: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(c.stdout, "re-sealed %d values under master key %s; key %s is retired\n", n, s.KeyID(), old)
		fmt.Fprintf(c.stdout, "next: make %s the key amtd loads (KeyFile= or the amtd-master-key credential) and restart amtd\n", *newKey)
		return exitOK
	})
}

func storeBackup(c *cli, args []string) int {
	f := newStoreFlags(c, "backup", "FILE", "Write a consistent copy of the live database to FILE. Secrets stay sealed: the copy needs the same master key.")
	pos, code := f.parse(c, args, 1)
	if code >= 0 {
		return code
	}
	return withStore(c, f, func(ctx context.Context, s *store.Store) int {
		if err := s.Backup(ctx, pos[0]); err != nil {
			fmt.Fprintf(c.stderr, "amtd store backup: %v\n", err)
			return exitFailure
		}
		if err := s.Audit(ctx, store.AuditEntry{Actor: c.actor(), Action: "store.backup", Object: "store", Reason: "to " + pos[0]}); err != nil {
			fmt.Fprintf(c.stderr, "amtd store backup: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(c.stdout, "backed up %s to %s (sealed with master key %s)\n", s.Path(), pos[0], s.KeyID())
		return exitOK
	})
}

func storeVerify(c *cli, args []string) int {
	f := newStoreFlags(c, "verify", "", "Open every sealed value in the store and report any that fail. Exit 1 if any fails.")
	if _, code := f.parse(c, args, 0); code >= 0 {
		return code
	}
	return withStore(c, f, func(ctx context.Context, s *store.Store) int {
		checked, fails, err := s.Verify(ctx)
		if err != nil {
			fmt.Fprintf(c.stderr, "amtd store verify: %v\n", err)
			return exitFailure
		}
		for _, fl := range fails {
			fmt.Fprintf(c.stdout, "FAIL %s: %v\n", fl.Place, cause(fl.Err))
		}
		result := store.ResultOK
		if len(fails) > 0 {
			result = fmt.Sprintf("%d failed", len(fails))
		}
		if err := s.Audit(ctx, store.AuditEntry{Actor: c.actor(), Action: "store.verify", Object: "store",
			Result: fmt.Sprintf("%s: %d checked", result, checked)}); err != nil {
			fmt.Fprintf(c.stderr, "amtd store verify: %v\n", err)
		}
		if len(fails) > 0 {
			fmt.Fprintf(c.stdout, "%d of %d sealed values failed to open\n", len(fails), checked)
			return exitFailure
		}
		fmt.Fprintf(c.stdout, "all %d sealed values open with master key %s\n", checked, s.KeyID())
		return exitOK
	})
}

// cause says what a verify failure means for the operator.
func cause(err error) string {
	switch {
	case errors.Is(err, store.ErrWrongKey):
		return "sealed with another master key (" + err.Error() + ")"
	case errors.Is(err, store.ErrMisplaced):
		return "copied or swapped from another row or column; restore from a backup"
	case errors.Is(err, store.ErrTampered):
		return "altered or corrupt; restore from a backup"
	}
	return err.Error()
}

func storeExportSecret(c *cli, args []string) int {
	f := newStoreFlags(c, "export-secret", "UUID KIND", "Print one device password (KIND amt_admin, mebx or mps) on standard output.\n"+
		"The read is written to the audit trail with --reason; the value never is.")
	reason := f.fs.String("reason", "", "why the password is needed (required, audited)")
	state := f.fs.String("state", "current", "which password: current, pending or previous")
	pos, code := f.parse(c, args, 2)
	if code >= 0 {
		return code
	}
	if strings.TrimSpace(*reason) == "" {
		fmt.Fprintln(c.stderr, "amtd store export-secret: --reason TEXT is required (it goes into the audit trail)")
		return exitUsage
	}
	if out, ok := c.stdout.(*os.File); ok && isJournal(out, c.getenv("JOURNAL_STREAM")) {
		fmt.Fprintln(c.stderr, "amtd store export-secret: standard output is the journal; refusing to log a password (run it from a terminal or a pipe)")
		return exitFailure
	}
	return withStore(c, f, func(ctx context.Context, s *store.Store) int {
		v, err := s.Secrets().Export(ctx, pos[0], store.SecretKind(pos[1]), *state, c.actor(), *reason)
		if err != nil {
			fmt.Fprintf(c.stderr, "amtd store export-secret: %v\n", err)
			return exitFailure
		}
		defer v.Wipe()
		c.stdout.Write(append(v.Reveal(), '\n'))
		return exitOK
	})
}

// isJournal reports whether f is the stream systemd named in
// $JOURNAL_STREAM ("device:inode").
func isJournal(f *os.File, journalStream string) bool {
	if journalStream == "" {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return journalStream == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// withStore opens the store for a command, runs fn with it, and closes it:
// fn's code is the exit status unless closing fails.
func withStore(c *cli, f *storeFlags, fn func(ctx context.Context, s *store.Store) int) int {
	ctx, cancel := storeContext()
	defer cancel()
	s, code := openStore(c, ctx, f)
	if s == nil {
		return code
	}
	return closeStore(c, s, fn(ctx, s))
}
