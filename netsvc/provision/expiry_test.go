package provision

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"amtd/daemon/config"
	"amtd/metrics"
	"amtd/netsvc"
	"amtd/secret"
	"amtd/store"
)

// lockedBuffer is a log sink the watch's goroutine and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// warnings returns the domains of the log's expiry warnings, in order.
func (l *lockedBuffer) warnings(t *testing.T) []string {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		var rec struct {
			Level, Msg, Domain string
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Level == "WARN" && strings.Contains(rec.Msg, "provisioning certificate") {
			out = append(out, rec.Domain)
		}
	}
	return out
}

// TestExpiryWatch runs the provisioning service on a real store with a fake
// clock and a hand-driven daily tick: certificates within 30 days, or
// expired, are warned about at start and at each tick, shown in Status and
// measured by amtd_domain_cert_expiry_days; a renewed one stops being
// reported; Close stops the watch.
func TestExpiryWatch(t *testing.T) {
	st := testStore(t)
	start := time.Date(2031, 3, 1, 12, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(start.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	day := 24 * time.Hour
	ctx := context.Background()
	put := func(suffix string, expiry time.Time) {
		t.Helper()
		d := store.Domain{Suffix: suffix, PFX: secret.FromString("pfx"), PFXPassword: secret.FromString("pw"), LeafExpiry: expiry}
		if err := st.Domains().Put(ctx, d, "test", "expiry test"); err != nil {
			t.Fatal(err)
		}
	}
	put("far.example.com", start.Add(200*day+time.Hour))
	put("soon.example.com", start.Add(10*day+time.Hour))
	put("gone.example.com", start.Add(-2*day+time.Hour))

	var logs lockedBuffer
	reg := metrics.NewRegistry()
	lis := netsvc.NewListeners(nil)
	t.Cleanup(func() { lis.Close() })
	cfg := &config.Config{Site: config.Site{Domains: []string{"example.com"}}, Provisioning: config.Provisioning{Enable: true, HelloListen: freeAddr(t)}}
	svc, err := New(cfg, netsvc.Deps{Store: st, Metrics: reg, Listeners: lis, Now: now, Log: slog.New(slog.NewJSONHandler(&logs, nil))}, Options{Chains: ChainList{}})
	if err != nil {
		t.Fatal(err)
	}
	ticks := make(chan time.Time)
	tickStopped := make(chan struct{})
	svc.expiryTick = func() (<-chan time.Time, func()) { return ticks, func() { close(tickStopped) } }
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	closed := false
	closeSvc := func() {
		if closed {
			return
		}
		closed = true
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := svc.Close(cctx); err != nil {
			t.Error(err)
		}
	}
	defer closeSvc()

	gauge := func(domain string) float64 {
		return reg.GaugeVec("amtd_domain_cert_expiry_days", "", "domain").With(domain).Value()
	}
	// At start: the check has run before Start returned.
	status := svc.Status()
	for _, want := range []string{"certificate of gone.example.com EXPIRED on 2031-02-27", "certificate of soon.example.com expires in 10 days (2031-03-11)"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q: %s", want, status)
		}
	}
	if strings.Contains(status, "far.example.com") {
		t.Errorf("status reports a certificate with 200 days left: %s", status)
	}
	if i, j := strings.Index(status, "gone.example.com"), strings.Index(status, "soon.example.com"); i > j {
		t.Errorf("status does not list the soonest first: %s", status)
	}
	if got := strings.Join(logs.warnings(t), " "); got != "gone.example.com soon.example.com" {
		t.Errorf("warnings at start: %q", got)
	}
	for d, want := range map[string]float64{"far.example.com": 200, "soon.example.com": 10, "gone.example.com": -2} {
		if got := gauge(d); got != want {
			t.Errorf("amtd_domain_cert_expiry_days{domain=%q} = %v, want %v", d, got, want)
		}
	}
	var text bytes.Buffer
	if err := reg.WriteText(&text); err != nil || !strings.Contains(text.String(), `amtd_domain_cert_expiry_days{domain="gone.example.com"} -2`) {
		t.Errorf("metrics text (%v):\n%s", err, text.String())
	}

	// wait polls for what the watch's goroutine does after a tick.
	wait := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("after a tick: %s did not happen; status %q", what, svc.Status())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// 175 days on, the far one enters the window; soon is renewed.
	clock.Store(start.Add(175 * day).UnixNano())
	put("soon.example.com", start.Add(175*day+400*day))
	ticks <- now()
	wait("the daily check", func() bool { return gauge("far.example.com") == 25 })
	wait("the status update", func() bool { return strings.Contains(svc.Status(), "far.example.com expires in 25 days") })
	if s := svc.Status(); strings.Contains(s, "soon.example.com") {
		t.Errorf("a renewed certificate is still reported: %s", s)
	}
	if got := gauge("soon.example.com"); got != 400 {
		t.Errorf("renewed gauge %v, want 400", got)
	}
	wait("the day's warnings", func() bool { return len(logs.warnings(t)) == 4 })
	if got := strings.Join(logs.warnings(t), " "); got != "gone.example.com soon.example.com gone.example.com far.example.com" {
		t.Errorf("warnings after a day: %q", got)
	}

	closeSvc()
	select {
	case <-tickStopped:
	default:
		t.Error("Close left the daily tick running")
	}
	select {
	case ticks <- now():
		t.Error("the watch still takes ticks after Close")
	default:
	}
}
