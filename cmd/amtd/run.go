package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"amtd/daemon"
	"amtd/daemon/config"
	"amtd/metrics"
	"amtd/netsvc"
	"amtd/store"
)

// cmdRun runs the daemon: parse flags, load the configuration, set up
// logging, harden the process, open the store, build Deps and hand over to
// daemon.Run (STYLE.md: main stays thin).
func cmdRun(c *cli, args []string) int {
	// Catch the signals before anything slow (opening and migrating the
	// store): a SIGTERM during start-up must stop the daemon cleanly, not kill it.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	f := newCmdFlags(c, "run", "[-c FILE] [--log-level LEVEL] [--stop-timeout DURATION]", "Runs the daemon in the foreground, as amtd.service does (Type=notify).")
	fs := f.fs
	cfgPath := fs.String("config", defaultConfigPath, "configuration `file`")
	fs.StringVar(cfgPath, "c", defaultConfigPath, "configuration `file` (short for --config)")
	logLevel := fs.String("log-level", "", "log `level` (debug, info, warn, error); overrides [Log] Level=")
	stopTimeout := fs.Duration("stop-timeout", daemon.DefaultStopTimeout,
		"how long to drain in-flight work on SIGTERM; keep it below the unit's TimeoutStopSec=")
	if _, code := f.parse(c, args, 0); code >= 0 {
		return code
	}
	if *logLevel != "" {
		if _, err := daemon.ParseLevel(*logLevel); err != nil {
			fmt.Fprintf(c.stderr, "amtd run: --log-level: %v\n", err)
			return exitUsage
		}
	}

	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(c.stderr, "%v\namtd run: %s is not valid; fix the lines above ('amtd check-config -c %s' lists them)\n", err, *cfgPath, *cfgPath)
		return exitFailure
	}
	level := cfg.Log.Level
	if *logLevel != "" {
		level = *logLevel
	}
	log, levelVar, err := daemon.NewLogger(c.stderr, daemon.LogOptions{Level: level, Format: cfg.Log.Format, JournalStream: c.getenv("JOURNAL_STREAM")})
	if err != nil {
		fmt.Fprintf(c.stderr, "amtd run: %s: [Log]: %v\n", *cfgPath, err)
		return exitFailure
	}
	daemon.LogWarnings(log, cfg)
	// Harden before the store loads its master key.
	if err := daemon.Harden(cfg.Site.AllowRoot); err != nil {
		log.Error("cannot start", "err", err)
		return exitFailure
	}

	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{
		Path:           cfg.Store.Path,
		KeyFile:        cfg.Store.KeyFile,
		CredentialsDir: c.getenv("CREDENTIALS_DIRECTORY"),
		BackupDir:      cfg.Store.BackupDir,
		Logger:         log.With("svc", "store"),
	})
	if err != nil {
		log.Error("cannot open the credential store", "err", err)
		return exitFailure
	}
	listeners := netsvc.NewListeners(daemon.ActivatedSockets(log))
	defer listeners.Close()

	deps := daemon.Deps{
		Deps: netsvc.Deps{
			Log:       log,
			Store:     st,
			Now:       time.Now,
			Metrics:   metrics.NewRegistry(),
			Listeners: listeners,
			Hosts:     netsvc.NewHosts(),
			Version:   version,
		},
		StoreView:     storeView{st},
		Load:          config.Load,
		Signals:       sigs,
		StopTimeout:   *stopTimeout,
		LogLevel:      levelVar,
		LogLevelFixed: *logLevel != "",
	}
	runErr := daemon.Run(ctx, cfg, deps)
	closeErr := st.Close()
	if runErr != nil {
		log.Error("daemon failed", "err", runErr)
		return exitFailure
	}
	if closeErr != nil {
		log.Error("closing the credential store", "err", closeErr)
		return exitFailure
	}
	return exitOK
}

// storeView gives the daemon the store's health and device count.
type storeView struct{ s *store.Store }

func (v storeView) Health(ctx context.Context) error { return v.s.Health(ctx) }
func (v storeView) DeviceCount(ctx context.Context) (int, error) {
	return v.s.Devices().Count(ctx)
}
