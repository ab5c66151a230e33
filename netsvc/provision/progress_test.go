package provision

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"amtd/amt/wsman"
	"amtd/amtsim"
	"amtd/daemon/control"
	"amtd/netsvc"
)

// gate holds every connection amtd opens to a device until it is opened,
// so a test can look at an activation while it waits at its first step.
type gate struct {
	open    chan struct{}
	waiting chan string // the address of each connection held
}

func newGate() *gate { return &gate{open: make(chan struct{}), waiting: make(chan string, 64)} }

func (g *gate) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	select {
	case g.waiting <- addr:
	default:
	}
	select {
	case <-g.open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// TestHelloQueueAndProgress: with one activation at a time, a second
// device's hello waits in the queue instead of being dropped; the progress
// report shows the running one at its step and the queued one; when the
// first finishes, the queued one runs without another hello, and the
// counts say both succeeded.
func TestHelloQueueAndProgress(t *testing.T) {
	port := freePort(t)
	r := newHelloRig(t, HelloLimits{MaxActivations: 1}, port)
	g := newGate()
	r.hl.Engine.Dial = g.dial
	prog := newProgress(time.Now())
	r.hl.Engine.progress = prog
	a := r.device("127.0.1.21", port, r.chain.rootHash())
	b := r.device("127.0.1.22", port, r.chain.rootHash())

	if _, err := a.SendHello(ctxT(t), 9971, 0); err != nil {
		t.Fatal(err)
	}
	held := <-g.waiting // a's activation is at its first call
	if want := fmt.Sprintf("127.0.1.21:%d", port); held != want {
		t.Fatalf("held %s, want %s", held, want)
	}
	if _, err := b.SendHello(ctxT(t), 9971, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b queued", func() bool { return r.hellos("queued") == 1 })

	s := &Service{hl: r.hl, progress: prog, deps: netsvc.Deps{Store: r.store}}
	st := s.Provisioning(ctxT(t))
	if st.MaxConcurrent != 1 || st.MaxQueued != 8 || len(st.Running) != 1 || len(st.Queued) != 1 {
		t.Fatalf("progress %+v", st)
	}
	run := st.Running[0]
	if run.UUID != a.UUID.String() || run.Path != "hello" || run.Address != "127.0.1.21" || run.Step != StepConnect || run.Started.IsZero() || run.StepSince.IsZero() {
		t.Fatalf("running %+v", run)
	}
	if q := st.Queued[0]; q.UUID != b.UUID.String() || q.Address != "127.0.1.22" || q.Since.IsZero() {
		t.Fatalf("queued %+v", q)
	}
	// Another hello from b while it waits is not a second place in the queue.
	if _, err := b.SendHello(ctxT(t), 9971, 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b's second hello seen", func() bool { return r.hellos("duplicate") == 1 })

	close(g.open)
	for _, d := range []*amtsim.Device{a, b} {
		waitFor(t, "device "+d.UUID.String()+" in ACM", func() bool { return d.ControlMode() == amtsim.ModeACM })
	}
	waitFor(t, "activations to finish", func() bool { return r.hl.ActivationsRunning() == 0 })
	st = s.Provisioning(ctxT(t))
	if len(st.Running) != 0 || len(st.Queued) != 0 || st.Succeeded != 2 || st.Failed != 0 || len(st.RecentFailures) != 0 {
		t.Fatalf("after: %+v", st)
	}
	if v := r.hellos("accepted"); v != 1 {
		t.Fatalf("accepted %v: the queued device should start from the queue, not from a new hello", v)
	}
	if v := r.reg.CounterVec("amtd_activations_started_total", "", "path").With("hello").Value(); v != 2 {
		t.Fatalf("started %v, want 2", v)
	}
}

// TestHelloQueueFull: past MaxQueued, hellos are dropped as before (the
// device sends another).
func TestHelloQueueFull(t *testing.T) {
	port := freePort(t)
	r := newHelloRig(t, HelloLimits{MaxActivations: 1, MaxQueued: 1}, port)
	g := newGate()
	r.hl.Engine.Dial = g.dial
	defer close(g.open)
	for i := range 3 {
		d := r.device(fmt.Sprintf("127.0.1.%d", 31+i), port, r.chain.rootHash())
		if _, err := d.SendHello(ctxT(t), 9971, 0); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			<-g.waiting
		}
	}
	waitFor(t, "one queued, one dropped", func() bool { return r.hellos("queued") == 1 && r.hellos("dropped-busy") == 1 })
	if _, q := r.hl.progress(); len(q) != 1 {
		t.Fatalf("queue %v", q)
	}
}

// TestFailureInProgress: a failed activation is counted by step and
// reason, and the progress keeps it in plain words, without the
// passwords it had sealed.
func TestFailureInProgress(t *testing.T) {
	r := newRig(t, &amtsim.Faults{FailMethod: "CommitChanges", FailCode: 1})
	prog := newProgress(time.Now())
	r.engine.progress = prog
	if _, err := r.engine.ActivateACM(ctxT(t), r.target, r.chain.cert); err == nil {
		t.Fatal("activation succeeded")
	}
	var st control.ProvisioningStatus
	prog.counts(&st)
	if st.Failed != 1 || st.Succeeded != 0 || len(st.RecentFailures) != 1 {
		t.Fatalf("progress %+v", st)
	}
	f := st.RecentFailures[0]
	if f.UUID != r.target.UUID || f.Step != StepCommit || f.Kind != ReasonDeviceRefused || !strings.Contains(f.Reason, "CommitChanges returned 1") {
		t.Fatalf("failure %+v", f)
	}
	cs, _ := r.store.Secrets().Candidates(context.Background(), r.target.UUID, "amt_admin")
	for _, c := range cs {
		if strings.Contains(f.Reason, c.Value.RevealString()) {
			t.Fatal("the failure holds the password")
		}
	}
	if v := r.reg.CounterVec("amtd_activation_failures_total", "", "step", "reason").With(StepCommit, ReasonDeviceRefused).Value(); v != 1 {
		t.Fatalf("failures{commit,device-refused} = %v", v)
	}
	if v := r.reg.CounterVec("amtd_activations_started_total", "", "path").With("hello").Value(); v != 1 {
		t.Fatalf("started = %v", v)
	}
}

// The progress keeps the last few failures, newest first, and cuts long
// reasons.
func TestProgressKeepsLastFailures(t *testing.T) {
	p := newProgress(time.Now())
	for i := range keepFailures + 3 {
		p.fail(control.ActivationFailure{UUID: fmt.Sprint(i), Reason: strings.Repeat("x", 1000)})
	}
	var st control.ProvisioningStatus
	p.counts(&st)
	if st.Failed != keepFailures+3 || len(st.RecentFailures) != keepFailures || st.RecentFailures[0].UUID != fmt.Sprint(keepFailures+2) {
		t.Fatalf("%+v", st)
	}
	if n := len(st.RecentFailures[0].Reason); n > maxReasonLen+len("…") {
		t.Fatalf("reason of %d bytes", n)
	}
}

func TestFailureReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{withReason(ReasonSetupRefused, errors.New("refused")), ReasonSetupRefused},
		{fmt.Errorf("commit: %w", &wsman.ReturnError{Class: "AMT_SetupAndConfigurationService", Method: "CommitChanges", Code: 1}), ReasonDeviceRefused},
		{fmt.Errorf("x: %w", &wsman.Fault{Subcode: "e:AccessDenied"}), ReasonFault},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), ReasonTimeout},
		{fmt.Errorf("x: %w", os.ErrDeadlineExceeded), ReasonTimeout},
		{fmt.Errorf("x: %w", context.Canceled), ReasonCancelled},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, ReasonNetwork},
		{errors.New("something else"), ReasonOther},
	}
	for _, tc := range tests {
		if got := failureReason(tc.err); got != tc.want {
			t.Errorf("failureReason(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

// Agent sessions show in the progress with the step the device's history
// last records.
func TestProgressListsAgentSessions(t *testing.T) {
	st := testStore(t)
	ctx := ctxT(t)
	const uuid = "11111111-2222-3333-4444-555555555555"
	eng := &Engine{Store: st}
	if err := eng.ensureDevice(ctx, uuid, "16.1"); err != nil {
		t.Fatal(err)
	}
	if err := st.Devices().SetState(ctx, uuid, StateActivating, "setup", "agent, client control mode", false); err != nil {
		t.Fatal(err)
	}
	a := &AgentServer{Engine: eng}
	hl := &HelloListener{Engine: eng}
	hl.Limits.fill()
	hl.running = map[string]activation{}
	s := &Service{hl: hl, agent: a, progress: newProgress(time.Now()), deps: netsvc.Deps{Store: st}}
	if !a.claim(uuid, netip.MustParseAddr("192.0.2.44")) {
		t.Fatal("claim")
	}
	if a.claim(uuid, netip.MustParseAddr("192.0.2.45")) {
		t.Fatal("a second session claimed the same device")
	}
	p := s.Provisioning(ctx)
	if len(p.Running) != 1 || p.Running[0].UUID != uuid || p.Running[0].Path != "agent" || p.Running[0].Step != "setup" ||
		p.Running[0].StepDetail != "agent, client control mode" || p.Running[0].StepSince.IsZero() ||
		p.Running[0].Address != "192.0.2.44" || p.Running[0].Started.IsZero() {
		t.Fatalf("progress %+v", p)
	}
	a.release(uuid)
	if p := s.Provisioning(ctx); len(p.Running) != 0 {
		t.Fatalf("after release %+v", p)
	}
}
