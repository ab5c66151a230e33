package provision

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"amtd/amt/hello"
	"amtd/daemon/control"
	"amtd/metrics"
	"amtd/store"
)

// Chain is a domain's provisioning chain as the hello listener uses it.
type Chain struct {
	// Suffix is the domain the certificate was added for (`amtd domain
	// add`, which checked that the leaf matches it: spec/activation.md §13).
	Suffix string
	// Cert is the chain, leaf first and root last, with the leaf's key.
	Cert tls.Certificate
	Root *x509.Certificate
}

// ChainSource gives the provisioning chains amtd holds now.
type ChainSource interface {
	Chains(ctx context.Context) ([]Chain, error)
}

// ChainList is a fixed ChainSource.
type ChainList []Chain

// Chains returns the list.
func (l ChainList) Chains(context.Context) ([]Chain, error) { return l, nil }

// Limits of the hello listener. Zero values take the defaults.
type HelloLimits struct {
	// ReadTimeout bounds one connection (default 10 s): AMT sends its few
	// hundred bytes at once and closes (spec/activation.md §2.1).
	ReadTimeout time.Duration
	// MaxConns bounds connections being read at once (default 256).
	MaxConns int
	// PerSource is how many hellos one address may send per minute before
	// the rest are dropped (default 30: a device retries at most every
	// few seconds).
	PerSource int
	// MaxActivations bounds activations running at once (default 32;
	// [Provisioning] MaxConcurrentActivations=).
	MaxActivations int
	// MaxQueued bounds devices waiting for a free place (default 8 times
	// MaxActivations); a hello beyond that is dropped and the device
	// sends another (spec/activation.md §2.4).
	MaxQueued int
	// RetryAfter is how long a device whose activation failed waits before
	// its next hello starts another (default 30 s).
	RetryAfter time.Duration
}

func (l *HelloLimits) fill() {
	if l.ReadTimeout <= 0 {
		l.ReadTimeout = 10 * time.Second
	}
	if l.MaxConns <= 0 {
		l.MaxConns = 256
	}
	if l.PerSource <= 0 {
		l.PerSource = 30
	}
	if l.MaxActivations <= 0 {
		l.MaxActivations = 32
	}
	if l.MaxQueued <= 0 {
		l.MaxQueued = 8 * l.MaxActivations
	}
	if l.RetryAfter <= 0 {
		l.RetryAfter = 30 * time.Second
	}
}

// HelloListener accepts hellos on TCP 9971 and activates the devices that
// send them (spec/activation.md §2, §3).
type HelloListener struct {
	Engine *Engine
	Chains ChainSource
	// Suffixes returns the DNS suffixes a device at addr is known by: the
	// option-15 domain amtd serves it, or the configured trusted suffix
	// (spec/activation.md §3 step 1).
	Suffixes func(addr netip.Addr) []string
	// AMTPort is the port activations connect back to (16993; tests change it).
	AMTPort int
	Limits  HelloLimits
	Log     *slog.Logger
	Metrics *metrics.Registry

	mu       sync.Mutex
	ln       net.Listener
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	conns    chan struct{}
	inflight map[string]bool      // UUIDs running or queued
	notUntil map[string]time.Time // UUID -> no new activation before
	sources  map[netip.Addr]*window
	// Activations: at most Limits.MaxActivations run; the rest wait in
	// queue, first come first, and a finishing activation starts the next.
	running map[string]activation
	queue   []pendingHello
	closing bool // Close was called: no queued activation starts
}

// activation is one running in the listener, for `amtd status`.
type activation struct {
	addr    string
	started time.Time
}

// pendingHello is a device waiting for a free place.
type pendingHello struct {
	uuid  string
	src   netip.Addr
	chain *Chain
	since time.Time
}

type window struct {
	start time.Time
	n     int
}

func (h *HelloListener) log() *slog.Logger {
	if h.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Log
}

func (h *HelloListener) count(result string) {
	if h.Metrics != nil {
		h.Metrics.CounterVec("amtd_hellos_total", "Hello packets by what became of them.", "result").With(result).Inc()
	}
}

// Serve accepts on ln until Close. It returns at once; work goes on in
// goroutines.
func (h *HelloListener) Serve(ln net.Listener) {
	h.Limits.fill()
	if h.AMTPort == 0 {
		h.AMTPort = 16993
	}
	h.mu.Lock()
	h.ln = ln
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.conns = make(chan struct{}, h.Limits.MaxConns)
	h.inflight, h.notUntil, h.sources = map[string]bool{}, map[string]time.Time{}, map[netip.Addr]*window{}
	h.running, h.queue, h.closing = map[string]activation{}, nil, false
	h.mu.Unlock()
	h.wg.Add(1)
	go h.accept()
}

// Close stops accepting and waits for connections and activations until ctx
// ends; activations still running then are cancelled (they resume on the
// device's next hello). Queued devices are dropped: their next hello goes
// to the listener that replaces this one on reload.
func (h *HelloListener) Close(ctx context.Context) error {
	h.mu.Lock()
	ln := h.ln
	h.closing = true
	h.queue = nil
	h.mu.Unlock()
	if ln == nil {
		return nil
	}
	err := ln.Close()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		h.cancel()
		<-done
	}
	h.cancel()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// ActivationsRunning is the number of activations in progress.
func (h *HelloListener) ActivationsRunning() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.running)
}

// queued is the number of devices waiting for a free place.
func (h *HelloListener) queued() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.queue)
}

// progress lists the activations running, oldest first, and the devices
// queued, first come first.
func (h *HelloListener) progress() ([]control.ActivationProgress, []control.QueuedDevice) {
	h.mu.Lock()
	defer h.mu.Unlock()
	run := make([]control.ActivationProgress, 0, len(h.running))
	for uuid, a := range h.running {
		run = append(run, control.ActivationProgress{UUID: uuid, Path: "hello", Address: a.addr, Started: a.started})
	}
	slices.SortFunc(run, func(a, b control.ActivationProgress) int {
		return cmp.Or(a.Started.Compare(b.Started), cmp.Compare(a.UUID, b.UUID))
	})
	q := make([]control.QueuedDevice, 0, len(h.queue))
	for _, p := range h.queue {
		q = append(q, control.QueuedDevice{UUID: p.uuid, Address: p.src.String(), Since: p.since})
	}
	return run, q
}

func (h *HelloListener) accept() {
	defer h.wg.Done()
	var delay time.Duration
	for {
		c, err := h.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, don't spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			h.log().Warn("hello listener: accept", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		select {
		case h.conns <- struct{}{}:
		default:
			h.count("dropped-busy")
			c.Close()
			continue
		}
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			defer func() { <-h.conns }()
			h.handle(c)
		}()
	}
}

// allowSource counts a connection from addr in its one-minute window.
func (h *HelloListener) allowSource(addr netip.Addr, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := h.sources[addr]
	if w == nil || now.Sub(w.start) >= time.Minute {
		if len(h.sources) >= 65536 {
			// Forget old windows rather than grow without bound.
			for a, x := range h.sources {
				if now.Sub(x.start) >= time.Minute {
					delete(h.sources, a)
				}
			}
			if len(h.sources) >= 65536 {
				return false
			}
		}
		w = &window{start: now}
		h.sources[addr] = w
	}
	w.n++
	return w.n <= h.Limits.PerSource
}

const httpPage = "This is amtd's Intel AMT hello port (TCP 9971). AMT devices in Setup Mode send a hello packet here to be provisioned; there is nothing to see with a browser.\n"

func (h *HelloListener) handle(c net.Conn) {
	defer c.Close()
	peer, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	src := peer.Addr().Unmap()
	if !h.allowSource(src, time.Now()) {
		h.count("dropped-rate")
		return
	}
	_ = c.SetDeadline(time.Now().Add(h.Limits.ReadTimeout))
	// A browser pointed at the port waits for an answer instead of
	// closing: the first bytes tell it from a hello.
	head := make([]byte, 4)
	n, err := io.ReadFull(c, head)
	if n == 4 && (string(head) == "GET " || string(head) == "HEAD") {
		h.count("http")
		_, _ = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(httpPage), httpPage)
		return
	}
	var rest []byte
	if err == nil {
		rest, err = io.ReadAll(io.LimitReader(c, hello.MaxLen+1-4))
	}
	b := append(head[:n], rest...)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		h.count("read-error")
		h.log().Debug("hello: read", "from", src, "err", err)
		return
	}
	if len(b) > hello.MaxLen {
		h.count("oversize")
		h.log().Info("hello: longer than any valid hello; dropped", "from", src, "bytes", len(b))
		return
	}
	msg, err := hello.Parse(b)
	if err != nil {
		h.count("malformed")
		h.log().Info("hello: does not decode", "from", src, "err", err)
		return
	}
	h.received(src, msg)
}

// received decides what to do with a decoded hello.
func (h *HelloListener) received(src netip.Addr, msg *hello.Hello) {
	uuid := msg.UUID.String()
	log := h.log().With("dev", uuid, "from", src.String())
	now := time.Now()
	h.mu.Lock()
	switch {
	case h.inflight[uuid]:
		h.mu.Unlock()
		h.count("duplicate")
		log.Debug("hello: activation already running")
		return
	case now.Before(h.notUntil[uuid]):
		h.mu.Unlock()
		h.count("backoff")
		log.Debug("hello: waiting before the next try")
		return
	}
	h.inflight[uuid] = true
	h.mu.Unlock()
	log.Info("hello received", "retry", msg.RetryCount, "hashes", len(msg.Hashes))

	chain, why := h.pick(h.ctx, src, msg)
	if chain == nil {
		h.count("no-certificate")
		log.Warn("hello: no provisioning certificate fits", "why", why)
		h.recordWaiting(uuid, src, why)
		h.finish(uuid, false)
		return
	}
	p := pendingHello{uuid: uuid, src: src, chain: chain, since: now}
	h.mu.Lock()
	switch {
	case h.closing:
		h.mu.Unlock()
		h.finish(uuid, false)
		return
	case len(h.running) < h.Limits.MaxActivations:
		h.start(p, now)
		h.mu.Unlock()
		h.count("accepted")
		h.wg.Add(1)
		go h.work(p)
		return
	case len(h.queue) < h.Limits.MaxQueued:
		// Every place is taken: the device waits in Setup Mode (for hours,
		// spec/activation.md §2.4) and is connected to when one frees.
		h.queue = append(h.queue, p)
		n := len(h.queue)
		h.mu.Unlock()
		h.count("queued")
		log.Info("hello: every activation place is taken; queued", "position", n)
		return
	}
	h.mu.Unlock()
	// The queue is full too: the device sends its next hello soon
	// (spec/activation.md §2.4).
	h.count("dropped-busy")
	h.finish(uuid, false)
}

// start marks p running; h.mu is held.
func (h *HelloListener) start(p pendingHello, now time.Time) {
	h.running[p.uuid] = activation{addr: p.src.String(), started: now}
}

// work activates p and then, holding its place, the queued devices in turn
// until the queue is empty or the listener closes.
func (h *HelloListener) work(p pendingHello) {
	defer h.wg.Done()
	for {
		t := Target{UUID: p.uuid, Addr: net.JoinHostPort(p.src.String(), strconv.Itoa(h.AMTPort))}
		_, err := h.Engine.ActivateACM(h.ctx, t, p.chain.Cert)
		if err == nil {
			err = h.afterActivation(t, p.chain.Suffix)
		}
		h.mu.Lock()
		delete(h.running, p.uuid)
		h.finishLocked(p.uuid, err == nil)
		if h.closing || len(h.queue) == 0 {
			h.mu.Unlock()
			return
		}
		p = h.queue[0]
		h.queue = slices.Delete(h.queue, 0, 1)
		h.start(p, time.Now())
		h.mu.Unlock()
	}
}

// afterActivation configures what the device's profile asks (CIRA).
func (h *HelloListener) afterActivation(t Target, suffix string) error {
	name, ps, err := h.Engine.profileFor(h.ctx, t.UUID, suffix)
	if err != nil {
		return err
	}
	_, err = h.Engine.configure(h.ctx, t.UUID, t.host(), h.Engine.dialer(t, nil), ps, ModeACM)
	if err != nil {
		h.log().Warn("configuration after activation failed", "dev", t.UUID, "profile", name, "err", err)
	}
	return err
}

// finish ends a device's turn. A device that failed or had no certificate
// waits RetryAfter before its hellos count again.
func (h *HelloListener) finish(uuid string, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.finishLocked(uuid, ok)
}

func (h *HelloListener) finishLocked(uuid string, ok bool) {
	delete(h.inflight, uuid)
	if !ok {
		h.notUntil[uuid] = time.Now().Add(h.Limits.RetryAfter)
	} else {
		delete(h.notUntil, uuid)
	}
	for u, t := range h.notUntil {
		if time.Now().After(t) {
			delete(h.notUntil, u)
		}
	}
}

// pick chooses the chain whose root the device trusts and whose domain is
// the device's (spec/activation.md §3 step 1). why says in plain words why
// none fits.
func (h *HelloListener) pick(ctx context.Context, src netip.Addr, msg *hello.Hello) (*Chain, string) {
	chains, err := h.Chains.Chains(ctx)
	if err != nil {
		return nil, "amtd could not read its provisioning certificates: " + err.Error()
	}
	if len(chains) == 0 {
		return nil, "amtd holds no provisioning certificate; add one with 'amtd domain add SUFFIX --pfx FILE'"
	}
	var suffixes []string
	if h.Suffixes != nil {
		suffixes = h.Suffixes(src)
	}
	var trusted, named []string
	for i := range chains {
		c := &chains[i]
		if !rootTrusted(c.Root, msg.Hashes) {
			continue
		}
		trusted = append(trusted, c.Suffix)
		for _, s := range suffixes {
			if suffixMatches(s, c.Suffix) {
				return c, ""
			}
		}
		named = append(named, c.Suffix)
	}
	if len(trusted) == 0 {
		return nil, fmt.Sprintf("the device trusts none of the roots of amtd's %d provisioning certificate(s); add the root's hash in MEBx or by USB (amtd usb-setup), or use a certificate from a CA the device trusts", len(chains))
	}
	return nil, fmt.Sprintf("the device's DNS suffix %s matches none of the domains whose roots it trusts (%s); check DHCP option 15 or set the PKI DNS suffix in MEBx",
		orNone(suffixes), strings.Join(named, ", "))
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "(unknown)"
	}
	return strings.Join(s, ", ")
}

// suffixMatches: the device's suffix is the certificate's domain or below it.
func suffixMatches(device, domain string) bool {
	device = strings.ToLower(strings.TrimSuffix(device, "."))
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	return device != "" && (device == domain || strings.HasSuffix(device, "."+domain))
}

// rootTrusted reports whether root's hash is among the hello's.
func rootTrusted(root *x509.Certificate, hashes []hello.Hash) bool {
	if root == nil {
		return false
	}
	s1, s256, s384 := sha1.Sum(root.Raw), sha256.Sum256(root.Raw), sha512.Sum384(root.Raw)
	for _, x := range hashes {
		var want []byte
		switch x.Type {
		case hello.SHA1:
			want = s1[:]
		case hello.SHA256:
			want = s256[:]
		case hello.SHA384:
			want = s384[:]
		}
		if want != nil && bytes.Equal(want, x.Value) {
			return true
		}
	}
	return false
}

// recordWaiting notes on the device why it is not being activated, for
// `amtd devices show`.
func (h *HelloListener) recordWaiting(uuid string, src netip.Addr, why string) {
	ctx := context.WithoutCancel(h.ctx)
	devs := h.Engine.Store.Devices()
	d, err := devs.Get(ctx, uuid)
	if errors.Is(err, store.ErrNotFound) {
		d = store.Device{UUID: uuid}
	} else if err != nil {
		return
	}
	d.Addresses = []netip.Addr{src}
	d.NextAction = "waiting for a provisioning certificate the device accepts"
	if err := devs.Put(ctx, d); err != nil {
		h.log().Warn("hello: record device", "dev", uuid, "err", err)
		return
	}
	_ = devs.SetState(ctx, uuid, "waiting", "hello", why, true)
}
