package amtsim

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Faults injects failures into WS-Man handling, on request, so amtd's
// retries, timeouts and error paths can be exercised. One Faults may be
// shared by many devices; counters are per Faults. The zero value (and a nil
// *Faults) injects nothing.
type Faults struct {
	// Latency is added to every call.
	Latency time.Duration
	// LoadLatency is added per call already in progress on the device, so
	// firmware slows down under concurrent load as real AMT does.
	LoadLatency time.Duration
	// DropAfter cuts the connection without an answer on every
	// DropAfter-th call (0: never).
	DropAfter int
	// FailMethod names a method ("CommitChanges" or
	// "AMT_SetupAndConfigurationService.CommitChanges") that returns
	// FailCode instead of running.
	FailMethod string
	FailCode   int
	// MaxPullItems caps the items of one Pull whatever MaxElements asks,
	// to force paging (0: no cap).
	MaxPullItems int

	calls atomic.Int64
	mu    sync.Mutex
	busy  map[*Device]int
}

// begin accounts one call: it sleeps the injected latency and says whether
// the connection should be dropped. release must be called when the call
// ends.
func (f *Faults) begin(d *Device) (release func(), drop bool) {
	if f == nil {
		return func() {}, false
	}
	f.mu.Lock()
	if f.busy == nil {
		f.busy = map[*Device]int{}
	}
	concurrent := f.busy[d]
	f.busy[d]++
	f.mu.Unlock()
	release = func() {
		f.mu.Lock()
		if f.busy[d]--; f.busy[d] <= 0 {
			delete(f.busy, d)
		}
		f.mu.Unlock()
	}
	n := f.calls.Add(1)
	if delay := f.Latency + time.Duration(concurrent)*f.LoadLatency; delay > 0 {
		time.Sleep(delay)
	}
	if f.DropAfter > 0 && n%int64(f.DropAfter) == 0 {
		return release, true
	}
	return release, false
}

// methodError reports whether class.method should fail, and with what.
func (f *Faults) methodError(class, method string) (int, bool) {
	if f == nil || f.FailMethod == "" {
		return 0, false
	}
	if f.FailMethod == method || f.FailMethod == class+"."+method {
		return f.FailCode, true
	}
	return 0, false
}

func (f *Faults) pullLimit() int {
	if f == nil {
		return 0
	}
	return f.MaxPullItems
}

// trackedConn is a connection a reboot must cut.
type trackedConn struct{ c net.Conn }

func (d *Device) track(c net.Conn) *trackedConn {
	tc := &trackedConn{c: c}
	d.mu.Lock()
	if d.conns == nil {
		d.conns = map[*trackedConn]struct{}{}
	}
	d.conns[tc] = struct{}{}
	d.mu.Unlock()
	return tc
}

func (d *Device) untrack(tc *trackedConn) {
	d.mu.Lock()
	delete(d.conns, tc)
	d.mu.Unlock()
	tc.c.Close()
}

// Reboot simulates a firmware restart: every connection (WS-Man, CIRA,
// redirection) is lost, transient state (digest nonces, enumeration
// contexts, a half-added certificate chain, consent) is forgotten, and the
// settings are read back from the state file, so only what was persisted
// survives. CIRA reconnects on its own afterwards.
func (d *Device) Reboot() error {
	d.mu.Lock()
	conns := d.conns
	d.conns = nil
	d.dsrv, d.chain, d.enums, d.consent = nil, nil, enumTable{}, optIn{}
	d.generation++
	if d.path != "" {
		s, err := loadSettings(d.path)
		if err != nil {
			d.mu.Unlock()
			return err
		}
		s.DhcpDNSSuffix = d.net.Suffix
		d.s = s
	}
	d.mu.Unlock()
	for tc := range conns {
		tc.c.Close()
	}
	d.ciraRestart()
	d.log.Info("reboot")
	return nil
}
