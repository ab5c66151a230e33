package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"amtd/daemon/config"
	"amtd/daemon/control"
	"amtd/netsvc"
)

// reload handles SIGHUP the way CoreDNS's reload plugin does (STYLE.md):
// read and validate the whole file aside; if it is invalid keep everything
// as it is; else reload Reloader services in place and rebuild the others
// on the same sockets, new started before old closed. systemd hears
// RELOADING=1 first and READY=1 at the end whatever happened, so
// `systemctl reload` never hangs.
func (d *daemon) reload(ctx context.Context) {
	d.notify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d\n%s", monotonicUsec(), statusLine("reloading")))
	d.reloads.Inc()
	d.mu.Lock()
	path := d.cfg.Path
	d.mu.Unlock()
	d.log.Info("reloading", "config", path)

	res := &control.ReloadResult{At: d.now()}
	var newCfg *config.Config
	var err error
	if d.deps.Load == nil {
		err = errors.New("this daemon was started without a configuration loader; restart it instead")
	} else {
		newCfg, err = d.deps.Load(path)
	}
	if err != nil {
		res.Errors = configErrors(err)
		for _, msg := range res.Errors {
			d.log.Error("reload: invalid configuration, keeping the running one", "err", msg)
		}
	} else {
		LogWarnings(d.log, newCfg)
		res.Errors = d.apply(ctx, newCfg)
		for _, msg := range res.Errors {
			d.log.Error("reload: a service kept its old configuration", "err", msg)
		}
	}
	res.OK = len(res.Errors) == 0
	if !res.OK {
		d.reloadFailures.Inc()
	} else {
		d.log.Info("reloaded", "config", path, "services", strings.Join(d.upNames(), ","))
	}
	d.mu.Lock()
	d.lastReload = res
	d.mu.Unlock()
	d.notify("READY=1\n" + statusLine(d.summary()))
}

// configErrors lists the FILE:LINE: messages of an invalid configuration:
// one per joined error (config.Errors unwraps to its list), or one per line.
func configErrors(err error) []string {
	var msgs []string
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range u.Unwrap() {
			msgs = append(msgs, e.Error())
		}
	} else {
		for line := range strings.SplitSeq(err.Error(), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				msgs = append(msgs, line)
			}
		}
	}
	if len(msgs) == 0 {
		msgs = []string{err.Error()}
	}
	return msgs
}

// apply moves the services to newCfg and returns what failed, per service.
// A service that fails keeps running on its old configuration.
func (d *daemon) apply(ctx context.Context, newCfg *config.Config) []string {
	d.mu.Lock()
	old := map[string]*running{}
	for _, r := range d.running {
		old[r.spec.Name] = r
	}
	d.mu.Unlock()

	var errs []string
	var next, retired []*running
	for _, spec := range d.specs {
		r := old[spec.Name]
		enabled := spec.Enabled(newCfg)
		if !enabled {
			if r != nil {
				retired = append(retired, r)
			}
			continue
		}
		if r != nil && r.svc != nil {
			if rl, ok := r.svc.(netsvc.Reloader); ok {
				if err := rl.Reload(ctx, newCfg); err != nil {
					errs = append(errs, fmt.Sprintf("%s: %v", spec.Name, err))
				}
				next = append(next, r)
				continue
			}
		}
		// Rebuild: the new instance takes dups of the same sockets from
		// netsvc.Listeners, so it serves before the old one stops.
		svc, err := spec.New(newCfg, d.serviceDeps(spec.Name))
		if err == nil {
			if err = svc.Start(ctx); err != nil {
				svc.Close(ctx)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", spec.Name, err))
			if r != nil {
				next = append(next, r) // keep the old one serving
			} else {
				next = append(next, &running{spec: spec, err: err})
			}
			continue
		}
		next = append(next, &running{spec: spec, svc: svc})
		if r != nil && r.svc != nil {
			retired = append(retired, r)
		}
	}

	d.mu.Lock()
	d.running = next
	d.cfg = newCfg
	d.mu.Unlock()

	cctx, cancel := context.WithTimeout(context.Background(), d.stopTimeout)
	defer cancel()
	for _, r := range slices.Backward(retired) {
		for _, cmd := range r.commands {
			d.mux.Remove(cmd)
		}
		if r.svc == nil {
			continue
		}
		if err := closeWithin(cctx, r.svc); err != nil {
			d.log.Warn("reload: old instance did not close cleanly", "svc", r.spec.Name, "err", err)
		}
		d.log.Info("service stopped by reload", "svc", r.spec.Name)
	}
	for _, r := range next {
		if r.svc != nil {
			d.register(r)
		}
	}
	if d.deps.LogLevel != nil && !d.deps.LogLevelFixed {
		if lvl, err := ParseLevel(newCfg.Log.Level); err == nil {
			d.deps.LogLevel.Set(lvl)
		}
	}
	return errs
}

// LogWarnings logs what the configuration allows but probably did not mean
// (a .local domain, UpdateDNS= with DNS off), as `amtd check-config` prints it.
func LogWarnings(log *slog.Logger, cfg *config.Config) {
	for _, w := range cfg.Warnings {
		log.Warn("configuration warning", "at", w.Error())
	}
}
