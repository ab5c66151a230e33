package provision

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"amtd/amt/wsman"
	"amtd/daemon/control"
	"amtd/metrics"
)

// Progress is what provisioning has done since this instance of the
// service started (the daemon's start or its last reload), for `amtd
// status`: how many activations ended well or not, and the last few
// failures in plain words. What runs now and what waits is asked of the
// hello listener and the agent endpoint when the status is read.
type Progress struct {
	since time.Time

	mu        sync.Mutex
	succeeded int
	failed    int
	failures  []control.ActivationFailure // oldest first, at most keepFailures
}

// keepFailures is how many failures `amtd status` lists: enough to see a
// pattern (the same step failing on every device), few enough to read.
const keepFailures = 5

// maxReasonLen bounds a failure's text in the status: the full error is in
// the log and in the device's history (amtd devices show).
const maxReasonLen = 300

func newProgress(now time.Time) *Progress { return &Progress{since: now} }

func (p *Progress) succeed() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.succeeded++
	p.mu.Unlock()
}

func (p *Progress) fail(f control.ActivationFailure) {
	if p == nil {
		return
	}
	if len(f.Reason) > maxReasonLen {
		f.Reason = strings.ToValidUTF8(f.Reason[:maxReasonLen], "") + "…"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failed++
	p.failures = append(p.failures, f)
	if len(p.failures) > keepFailures {
		p.failures = slices.Delete(p.failures, 0, len(p.failures)-keepFailures)
	}
}

// counts fills the report's counters and failures, newest failure first.
func (p *Progress) counts(st *control.ProvisioningStatus) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st.Since = p.since
	st.Succeeded, st.Failed = p.succeeded, p.failed
	st.RecentFailures = slices.Clone(p.failures)
	slices.Reverse(st.RecentFailures)
}

// Failure reasons, the reason label of amtd_activation_failures_total: few
// and fixed, so that a dashboard can tell a site problem (the devices do not
// trust the root, the network drops) from a device that says no.
const (
	ReasonTimeout       = "timeout"        // a WS-Man call or the whole activation ran out of time
	ReasonNetwork       = "network"        // the connection to the device failed or dropped
	ReasonSetupRefused  = "setup-refused"  // no mutual-TLS setup session: not in Setup Mode, or the root is not trusted
	ReasonDeviceRefused = "device-refused" // AMT answered a method with a non-zero ReturnValue
	ReasonFault         = "wsman-fault"    // AMT answered with a WS-Man fault (access denied, bad selector...)
	ReasonCancelled     = "cancelled"      // amtd stopped or reloaded; the device resumes on its next hello
	ReasonOther         = "other"
)

// reasonError is an error whose reason the code that made it knows.
type reasonError struct {
	reason string
	err    error
}

func (e *reasonError) Error() string { return e.err.Error() }
func (e *reasonError) Unwrap() error { return e.err }

func withReason(reason string, err error) error { return &reasonError{reason, err} }

// failureReason sorts an activation's error into one of the reasons.
func failureReason(err error) string {
	var known *reasonError
	var re *wsman.ReturnError
	var fault *wsman.Fault
	var ne net.Error
	switch {
	case errors.As(err, &known):
		return known.reason
	case errors.Is(err, context.Canceled):
		return ReasonCancelled
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ReasonTimeout
	case errors.As(err, &re):
		return ReasonDeviceRefused
	case errors.As(err, &fault):
		return ReasonFault
	case errors.As(err, &ne), errors.Is(err, net.ErrClosed):
		return ReasonNetwork
	}
	return ReasonOther
}

// activationMetrics are the activation counters (spec/activation.md §3):
// started by path, ended by result, failed by step and reason.
type activationMetrics struct{ r *metrics.Registry }

func (m activationMetrics) started(path string) {
	if m.r != nil {
		m.r.CounterVec("amtd_activations_started_total", "Activations started, by path: hello (bare metal), agent-acm, agent-ccm, agent-upgrade.", "path").With(path).Inc()
	}
}

func (m activationMetrics) ended(result string) {
	if m.r != nil {
		m.r.CounterVec("amtd_activations_total", "Activations and profile configurations ended, by result: activated, resumed, upgraded, failed.", "result").With(result).Inc()
	}
}

func (m activationMetrics) failed(step, reason string) {
	if m.r != nil {
		m.r.CounterVec("amtd_activation_failures_total", "Failed activations and profile configurations, by the step that failed and why (timeout, network, setup-refused, device-refused, wsman-fault, cancelled, other).", "step", "reason").With(step, reason).Inc()
	}
}
