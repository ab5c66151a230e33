package daemon

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"amtd/daemon/config"
)

// pingRecorder records when WATCHDOG=1 was sent, by the bubble's fake clock.
type pingRecorder struct {
	mu    sync.Mutex
	start time.Time
	at    []time.Duration
}

func (p *pingRecorder) notify(state string) {
	if state != "WATCHDOG=1" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.at = append(p.at, time.Since(p.start))
}

func (p *pingRecorder) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.at)
}

func TestWatchdogPingsAtHalfInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &pingRecorder{start: time.Now()}
		w := watchdog{interval: 2 * time.Second, check: func(context.Context) error { return nil },
			notify: rec.notify, log: slog.New(slog.DiscardHandler)}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { w.run(ctx); close(done) }()
		time.Sleep(5*time.Second + time.Millisecond)
		cancel()
		<-done
		want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second, 5 * time.Second}
		if len(rec.at) != len(want) {
			t.Fatalf("pings at %v, want %v", rec.at, want)
		}
		for i := range want {
			if rec.at[i] != want[i] {
				t.Fatalf("pings at %v, want %v", rec.at, want)
			}
		}
	})
}

// wedgeable is a service whose health check can be made to block or fail.
type wedgeable struct {
	fakeService
	mu      sync.Mutex
	block   chan struct{} // non-nil: Health blocks until closed, ignoring ctx
	failure error
}

func (w *wedgeable) Health(ctx context.Context) error {
	w.mu.Lock()
	block := w.block
	w.mu.Unlock()
	if block != nil {
		<-block
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failure
}

func TestWatchdogStopsWhileAServiceIsWedged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		svc := &wedgeable{fakeService: fakeService{name: "dns"}}
		d := newDaemon(&config.Config{}, Deps{Notify: func(string) error { return nil }})
		d.running = []*running{{spec: Spec{Name: "dns"}, svc: svc}}
		rec := &pingRecorder{start: time.Now()}
		w := watchdog{interval: 2 * time.Second, check: d.healthy, notify: rec.notify, log: slog.New(slog.DiscardHandler)}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { w.run(ctx); close(done) }()

		time.Sleep(3*time.Second + time.Millisecond)
		if n := rec.count(); n != 3 {
			t.Fatalf("healthy: %d pings in 3 s, want 3", n)
		}

		// Wedge: Health never returns (and ignores its deadline).
		release := make(chan struct{})
		svc.mu.Lock()
		svc.block = release
		svc.mu.Unlock()
		time.Sleep(10 * time.Second)
		if n := rec.count(); n != 3 {
			t.Fatalf("wedged service: %d pings, want none after the first 3", n)
		}

		// Unwedge but fail: still no pings.
		svc.mu.Lock()
		svc.block = nil
		svc.failure = errors.New("upstream socket closed")
		svc.mu.Unlock()
		close(release)
		time.Sleep(5 * time.Second)
		if n := rec.count(); n != 3 {
			t.Fatalf("failing service: %d pings, want none after the first 3", n)
		}

		// Healthy again: pings resume at half the interval.
		svc.mu.Lock()
		svc.failure = nil
		svc.mu.Unlock()
		time.Sleep(3 * time.Second)
		if n := rec.count(); n < 5 {
			t.Fatalf("recovered service: %d pings, want pings to resume", n)
		}
		cancel()
		<-done
	})
}

func TestWatchdogStopsWhenStoreDoesNotAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{}
		d := newDaemon(&config.Config{}, Deps{Notify: func(string) error { return nil }, StoreView: st})
		rec := &pingRecorder{start: time.Now()}
		w := watchdog{interval: 4 * time.Second, check: d.healthy, notify: rec.notify, log: slog.New(slog.DiscardHandler)}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { w.run(ctx); close(done) }()
		time.Sleep(4*time.Second + time.Millisecond)
		if n := rec.count(); n != 2 {
			t.Fatalf("healthy store: %d pings, want 2", n)
		}
		st.setSlow(true) // Health waits for its deadline, as a locked database would
		time.Sleep(10 * time.Second)
		if n := rec.count(); n != 2 {
			t.Fatalf("slow store: %d pings, want none after the first 2", n)
		}
		cancel()
		<-done
	})
}
