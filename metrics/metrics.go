// Package metrics is a small, dependency-free metrics registry that writes the
// Prometheus text exposition format (version 0.0.4).
//
// amtd keeps one private Registry per process (passed in netsvc.Deps) instead of
// the global default registry of client_golang: nothing registers itself behind
// the daemon's back, and tests can read a counter's value directly.
package metrics

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Registry holds named metric families and writes them in a stable order.
type Registry struct {
	mu       sync.Mutex
	families map[string]family
}

type family interface {
	write(w io.Writer, name string) error
	help() (kind, text string)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{families: map[string]family{}} }

// register returns the family already registered under name, or stores f.
// Registering one name twice with a different kind or label set panics: that
// is a programming error, found by the first test that builds the service.
func register[F family](r *Registry, name string, f F, labels []string) F {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.families[name]; ok {
		o, ok := old.(F)
		if !ok {
			panic(fmt.Sprintf("metrics: %s registered twice with different kinds", name))
		}
		if lf, ok := any(o).(interface{ labelNames() []string }); ok && !slices.Equal(lf.labelNames(), labels) {
			panic(fmt.Sprintf("metrics: %s registered twice with different labels", name))
		}
		return o
	}
	r.families[name] = f
	return f
}

// WriteText writes every family in the Prometheus text format, sorted by name.
func (r *Registry) WriteText(w io.Writer) error {
	r.mu.Lock()
	names := make([]string, 0, len(r.families))
	for n := range r.families {
		names = append(names, n)
	}
	fams := make(map[string]family, len(r.families))
	for n, f := range r.families {
		fams[n] = f
	}
	r.mu.Unlock()
	slices.Sort(names)
	for _, n := range names {
		kind, text := fams[n].help()
		if _, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", n, escapeHelp(text), n, kind); err != nil {
			return err
		}
		if err := fams[n].write(w, n); err != nil {
			return err
		}
	}
	return nil
}

// Counter is a monotonically increasing value.
type Counter struct{ bits atomic.Uint64 }

// Inc adds one.
func (c *Counter) Inc() { c.Add(1) }

// Add adds v, which must not be negative.
func (c *Counter) Add(v float64) {
	if v < 0 {
		panic("metrics: counter decreased")
	}
	addFloat(&c.bits, v)
}

// Value returns the current value.
func (c *Counter) Value() float64 { return math.Float64frombits(c.bits.Load()) }

// Gauge is a value that goes up and down.
type Gauge struct{ bits atomic.Uint64 }

// Set stores v.
func (g *Gauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }

// Add adds v (which may be negative).
func (g *Gauge) Add(v float64) { addFloat(&g.bits, v) }

// Value returns the current value.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

func addFloat(b *atomic.Uint64, v float64) {
	for {
		old := b.Load()
		if b.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// CounterVec is a family of counters split by label values.
type CounterVec struct{ vec[*Counter] }

// GaugeVec is a family of gauges split by label values.
type GaugeVec struct{ vec[*Gauge] }

// Counter registers (or returns the existing) unlabelled counter.
func (r *Registry) Counter(name, help string) *Counter {
	return r.CounterVec(name, help).With()
}

// Gauge registers (or returns the existing) unlabelled gauge.
func (r *Registry) Gauge(name, help string) *Gauge {
	return r.GaugeVec(name, help).With()
}

// CounterVec registers (or returns the existing) counter family with labels.
func (r *Registry) CounterVec(name, help string, labels ...string) *CounterVec {
	return register(r, name, &CounterVec{newVec(help, "counter", labels, func() *Counter { return new(Counter) }, (*Counter).Value)}, labels)
}

// GaugeVec registers (or returns the existing) gauge family with labels.
func (r *Registry) GaugeVec(name, help string, labels ...string) *GaugeVec {
	return register(r, name, &GaugeVec{newVec(help, "gauge", labels, func() *Gauge { return new(Gauge) }, (*Gauge).Value)}, labels)
}

// GaugeFunc registers a gauge whose value is read from f at scrape time.
func (r *Registry) GaugeFunc(name, help string, f func() float64) {
	register(r, name, &funcFamily{text: help, f: f}, nil)
}

type funcFamily struct {
	text string
	f    func() float64
}

func (f *funcFamily) help() (string, string) { return "gauge", f.text }
func (f *funcFamily) write(w io.Writer, name string) error {
	_, err := fmt.Fprintf(w, "%s %s\n", name, formatFloat(f.f()))
	return err
}

type vec[M any] struct {
	text, kind string
	labels     []string
	mk         func() M
	value      func(M) float64
	mu         sync.Mutex
	m          map[string]M
}

func newVec[M any](help, kind string, labels []string, mk func() M, value func(M) float64) vec[M] {
	return vec[M]{text: help, kind: kind, labels: labels, mk: mk, value: value, m: map[string]M{}}
}

func (v *vec[M]) labelNames() []string   { return v.labels }
func (v *vec[M]) help() (string, string) { return v.kind, v.text }

// With returns the metric for these label values, in the order the labels were declared.
func (v *vec[M]) With(values ...string) M {
	if len(values) != len(v.labels) {
		panic(fmt.Sprintf("metrics: %d label values for %d labels", len(values), len(v.labels)))
	}
	key := strings.Join(values, "\xff")
	v.mu.Lock()
	defer v.mu.Unlock()
	m, ok := v.m[key]
	if !ok {
		m = v.mk()
		v.m[key] = m
	}
	return m
}

func (v *vec[M]) write(w io.Writer, name string) error {
	v.mu.Lock()
	keys := make([]string, 0, len(v.m))
	for k := range v.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	vals := make([]float64, len(keys))
	for i, k := range keys {
		vals[i] = v.value(v.m[k])
	}
	v.mu.Unlock()
	for i, k := range keys {
		var lb strings.Builder
		if len(v.labels) > 0 {
			lb.WriteByte('{')
			for j, lv := range strings.Split(k, "\xff") {
				if j > 0 {
					lb.WriteByte(',')
				}
				fmt.Fprintf(&lb, "%s=%q", v.labels[j], lv)
			}
			lb.WriteByte('}')
		}
		if _, err := fmt.Fprintf(w, "%s%s %s\n", name, lb.String(), formatFloat(vals[i])); err != nil {
			return err
		}
	}
	return nil
}

func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	case math.IsNaN(f):
		return "NaN"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}
