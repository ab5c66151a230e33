// Package daemon runs amtd under systemd: it starts the configured services,
// tells systemd when they are ready (sd_notify READY=1 and a STATUS= line),
// feeds the watchdog while every service is healthy, reloads on SIGHUP without
// dropping connections, and drains and stops on SIGTERM.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"amtd/daemon/config"
	"amtd/daemon/control"
	"amtd/metrics"
	"amtd/netsvc"
)

// StoreView is what the daemon itself needs of the credential store: a
// health check for the watchdog and a device count for STATUS=.
type StoreView interface {
	Health(ctx context.Context) error
	DeviceCount(ctx context.Context) (int, error)
}

// Deps is everything Run needs besides the configuration. cmd/amtd builds it;
// tests build it with fakes.
type Deps struct {
	// Deps is handed to every service.
	netsvc.Deps
	// StoreView is the store's health and device count; nil runs without one.
	StoreView StoreView
	// Load re-reads the configuration on SIGHUP (config.Load). It returns a
	// *config.Errors, or any error, when the file is invalid.
	Load func(path string) (*config.Config, error)
	// Services is the service table; nil means DefaultServices().
	Services []Spec
	// Notify sends sd_notify messages; nil means SystemdNotify.
	Notify Notify
	// Signals delivers SIGHUP, SIGTERM and SIGINT; nil means this process's.
	Signals <-chan os.Signal
	// Watchdog is the systemd watchdog timeout; 0 means read $WATCHDOG_USEC
	// and $WATCHDOG_PID, as sd_watchdog_enabled(3) does; negative disables it.
	Watchdog time.Duration
	// StopTimeout bounds the drain on SIGTERM (default 10 s; keep it below
	// the unit's TimeoutStopSec=).
	StopTimeout time.Duration
	// StatusEvery is how often STATUS= is refreshed (default 5 s).
	StatusEvery time.Duration
	// LogLevel, when set, is changed to [Log] Level= on reload, unless
	// LogLevelFixed (--log-level was given).
	LogLevel      *slog.LevelVar
	LogLevelFixed bool
}

// DefaultStopTimeout is the drain deadline on SIGTERM. amtd.service sets
// TimeoutStopSec=20s so systemd does not kill a daemon that is still inside it.
const DefaultStopTimeout = 10 * time.Second

// healthTimeout bounds one health check of the store or a service.
const healthTimeout = 5 * time.Second

// Run starts the services cfg enables, sends READY=1, and serves until ctx
// ends or SIGTERM/SIGINT arrives; then it sends STOPPING=1 and drains. It
// returns nil after a clean stop, or the error that kept the daemon from
// starting. The caller closes the store after Run returns.
func Run(ctx context.Context, cfg *config.Config, deps Deps) error {
	d := newDaemon(cfg, deps)
	sigs := deps.Signals
	if sigs == nil {
		ch := make(chan os.Signal, 4)
		signal.Notify(ch, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
		defer signal.Stop(ch)
		sigs = ch
	}
	d.started = d.now()
	if err := d.start(ctx); err != nil {
		d.notify(statusLine("failed to start: " + err.Error()))
		return err
	}
	d.refreshDevices(ctx)
	d.notify("READY=1\n" + statusLine(d.summary()))
	d.log.Info("ready", "services", strings.Join(d.upNames(), ","), "summary", d.summary())

	// The watchdog and the STATUS= refresher run beside the signal loop, so a
	// slow store or a wedged service never delays SIGTERM.
	bg, stopBackground := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stopAll := func() { stopBackground(); wg.Wait() }
	defer stopAll()
	if interval := d.watchdogInterval(); interval > 0 {
		d.log.Info("watchdog enabled", "timeout", interval, "ping_every", interval/2)
		wg.Go(func() {
			w := watchdog{interval: interval, check: d.healthy, notify: d.notify, log: d.log}
			w.run(bg)
		})
	}
	wg.Go(func() { d.statusLoop(bg) })

	for {
		select {
		case <-ctx.Done():
			stopAll()
			return d.stop("context ended")
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				d.reload(ctx)
			case syscall.SIGTERM, syscall.SIGINT:
				stopAll()
				return d.stop(sig.String())
			}
		}
	}
}

// statusLoop refreshes STATUS= every StatusEvery: device counts and health.
func (d *daemon) statusLoop(ctx context.Context) {
	tick := time.NewTicker(d.statusEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		d.probeAll(ctx)
		d.refreshDevices(ctx)
		if ctx.Err() != nil {
			return
		}
		d.notify(statusLine(d.summary()))
	}
}

type daemon struct {
	deps        Deps
	log         *slog.Logger
	now         func() time.Time
	send        Notify
	started     time.Time
	stopTimeout time.Duration
	statusEvery time.Duration
	specs       []Spec
	mux         *control.Mux

	reloadFailures *metrics.Counter
	reloads        *metrics.Counter

	mu         sync.Mutex
	cfg        *config.Config
	running    []*running // in start order
	lastReload *control.ReloadResult
	devices    control.DeviceCounts
}

// running is one row of the service table at run time.
type running struct {
	spec Spec
	svc  netsvc.Service // nil when it failed to (re)build
	err  error          // why it failed, for `amtd status`

	probeMu  sync.Mutex
	probing  bool // a health check is still in flight (a wedged service)
	lastErr  error
	commands []string // control commands it registered
}

func newDaemon(cfg *config.Config, deps Deps) *daemon {
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Metrics == nil {
		deps.Metrics = metrics.NewRegistry()
	}
	if deps.Listeners == nil {
		deps.Listeners = netsvc.NewListeners(nil)
	}
	if deps.Hosts == nil {
		deps.Hosts = netsvc.NewHosts()
	}
	d := &daemon{
		deps:        deps,
		log:         deps.Log,
		now:         deps.Now,
		send:        deps.Notify,
		stopTimeout: deps.StopTimeout,
		statusEvery: deps.StatusEvery,
		specs:       deps.Services,
		mux:         control.NewMux(),
		cfg:         cfg,
	}
	if d.send == nil {
		d.send = SystemdNotify
	}
	if d.stopTimeout <= 0 {
		d.stopTimeout = DefaultStopTimeout
	}
	if d.statusEvery <= 0 {
		d.statusEvery = 5 * time.Second
	}
	if d.specs == nil {
		d.specs = DefaultServices()
	}
	// The control socket is a built-in service, started first so `amtd
	// status` answers while the others come up, and stopped last.
	d.specs = append([]Spec{{Name: "control", Enabled: func(*config.Config) bool { return true }, New: d.newControl}}, d.specs...)
	d.reloadFailures = deps.Metrics.Counter("amtd_reload_failures_total", "Reloads (SIGHUP) that kept the old configuration, in whole or for some service.")
	d.reloads = deps.Metrics.Counter("amtd_reloads_total", "Reloads (SIGHUP) attempted.")
	deps.Metrics.GaugeFunc("amtd_services_up", "Services running.", func() float64 { return float64(len(d.upNames())) })
	d.mux.Handle("status", d.statusCommand)
	return d
}

func (d *daemon) notify(state string) {
	if err := d.send(state); err != nil {
		d.log.Warn("sd_notify failed", "err", err)
	}
}

func (d *daemon) watchdogInterval() time.Duration {
	if d.deps.Watchdog != 0 {
		return max(d.deps.Watchdog, 0)
	}
	// Unset the variables: a child must not think it is watched.
	interval, err := sddaemon.SdWatchdogEnabled(true)
	if err != nil {
		d.log.Warn("watchdog: ignoring a malformed $WATCHDOG_USEC", "err", err)
		return 0
	}
	return interval
}

// serviceDeps is what a service is handed: the shared Deps (each service
// makes its own child logger, With("svc", name)).
func (d *daemon) serviceDeps(string) netsvc.Deps {
	return d.deps.Deps
}

// start builds and starts every enabled service in table order. On error it
// closes what it started and returns the error: systemd sees the daemon fail.
func (d *daemon) start(ctx context.Context) error {
	for _, spec := range d.specs {
		if !spec.Enabled(d.cfg) {
			continue
		}
		svc, err := spec.New(d.cfg, d.serviceDeps(spec.Name))
		if err == nil {
			err = svc.Start(ctx)
		}
		if err != nil {
			d.closeAll()
			return fmt.Errorf("start %s: %w", spec.Name, err)
		}
		r := &running{spec: spec, svc: svc}
		d.register(r)
		d.mu.Lock()
		d.running = append(d.running, r)
		d.mu.Unlock()
		d.log.Info("service started", "svc", spec.Name)
	}
	return nil
}

// register adds the control commands of a service that has some.
func (d *daemon) register(r *running) {
	for _, cmd := range r.commands {
		d.mux.Remove(cmd)
	}
	r.commands = nil
	c, ok := r.svc.(Commander)
	if !ok {
		return
	}
	for cmd, h := range c.Commands() {
		d.mux.Handle(cmd, h)
		r.commands = append(r.commands, cmd)
	}
}

// stop sends STOPPING=1, closes the services in reverse start order within
// the drain deadline, and returns nil: a clean stop exits 0 even when some
// service could not drain in time (that is logged).
func (d *daemon) stop(why string) error {
	d.notify("STOPPING=1\n" + statusLine("stopping ("+why+")"))
	d.log.Info("stopping", "why", why, "drain", d.stopTimeout)
	d.closeAll()
	d.log.Info("stopped")
	return nil
}

func (d *daemon) closeAll() {
	ctx, cancel := context.WithTimeout(context.Background(), d.stopTimeout)
	defer cancel()
	d.mu.Lock()
	rs := slices.Clone(d.running)
	d.running = nil
	d.mu.Unlock()
	for _, r := range slices.Backward(rs) {
		if r.svc == nil {
			continue
		}
		if err := closeWithin(ctx, r.svc); err != nil {
			d.log.Warn("service did not close cleanly", "svc", r.spec.Name, "err", err)
		}
	}
}

// closeWithin closes svc, giving up on it once ctx ends: a service that
// ignores its drain deadline must not hold the daemon past TimeoutStopSec=,
// where systemd would SIGKILL it before the store is closed.
func closeWithin(ctx context.Context, svc netsvc.Service) error {
	done := make(chan error, 1)
	go func() { done <- svc.Close(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// A moment for a service that returns just as the deadline hits.
		select {
		case err := <-done:
			return err
		case <-time.After(100 * time.Millisecond):
			return fmt.Errorf("did not stop within the drain deadline; abandoned: %w", ctx.Err())
		}
	}
}

// healthy is the watchdog's check: the store answers and every service
// reports nil.
func (d *daemon) healthy(ctx context.Context) error {
	if d.deps.StoreView != nil {
		if err := d.deps.StoreView.Health(ctx); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	d.mu.Lock()
	rs := slices.Clone(d.running)
	d.mu.Unlock()
	for _, r := range rs {
		if r.svc == nil {
			return fmt.Errorf("%s: not running: %w", r.spec.Name, r.err)
		}
		if err := r.svc.Health(ctx); err != nil {
			return fmt.Errorf("%s: %w", r.spec.Name, err)
		}
	}
	return nil
}

// probe runs one service's health check for `amtd status`, bounded by
// healthTimeout. A check that ignores its context leaves one goroutine
// behind, never more: while it is in flight the service reports as wedged.
func (r *running) probe(ctx context.Context) error {
	r.probeMu.Lock()
	if r.probing {
		r.probeMu.Unlock()
		return errors.New("health check has not returned: the service looks wedged")
	}
	r.probing = true
	r.probeMu.Unlock()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), healthTimeout)
		defer cancel()
		err := r.svc.Health(ctx)
		r.probeMu.Lock()
		r.probing = false
		r.lastErr = err
		r.probeMu.Unlock()
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(healthTimeout):
		return fmt.Errorf("health check did not answer within %s", healthTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *daemon) upNames() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var names []string
	for _, r := range d.running {
		if r.svc != nil {
			names = append(names, r.spec.Name)
		}
	}
	return names
}
