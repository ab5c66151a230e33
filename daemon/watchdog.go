package daemon

import (
	"context"
	"log/slog"
	"time"
)

// watchdog feeds systemd's watchdog (WatchdogSec=, sd_watchdog_enabled(3)):
// every half interval it runs the health check and sends WATCHDOG=1 only if
// the check passed in time. A wedged service or store stops the pings, and
// systemd restarts the daemon (Restart=on-failure) once the interval runs out.
type watchdog struct {
	interval time.Duration
	check    func(ctx context.Context) error
	notify   func(state string)
	log      *slog.Logger
}

func (w *watchdog) run(ctx context.Context) {
	period := w.interval / 2
	// A check must answer well before the next ping is due.
	timeout := min(w.interval/4, healthTimeout)
	t := time.NewTicker(period)
	defer t.Stop()
	var pending chan error // a check still in flight; never more than one
	healthy := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if pending == nil {
			ch := make(chan error, 1)
			pending = ch
			go func() {
				cctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				ch <- w.check(cctx)
			}()
		}
		deadline := time.NewTimer(timeout)
		var err error
		finished := false
		select {
		case err = <-pending:
			pending = nil
			finished = true
		case <-deadline.C:
		case <-ctx.Done():
			deadline.Stop()
			return
		}
		deadline.Stop()
		switch {
		case finished && err == nil:
			w.notify("WATCHDOG=1")
			if !healthy {
				w.log.Info("watchdog: healthy again, pinging systemd")
			}
			healthy = true
		case finished:
			if healthy {
				w.log.Error("watchdog: health check failed, not pinging systemd; it will restart amtd if this lasts",
					"err", err, "watchdog", w.interval)
			}
			healthy = false
		default:
			if healthy {
				w.log.Error("watchdog: health check did not answer in time, not pinging systemd; it will restart amtd if this lasts",
					"timeout", timeout, "watchdog", w.interval)
			}
			healthy = false
		}
	}
}
