// Package cira is amtd's CIRA listener: Intel AMT devices dial out to it over
// TLS and speak APF (spec/apf.md). This part authenticates devices, keeps
// their links (keep-alives, bound ports, one link per device, newest wins)
// and records link state in the store. Relaying console traffic through
// channels comes later; channels AMT opens are refused, as everywhere
// (spec/apf.md §7.4).
//
// Hostile input is bounded before it costs anything: a connection that has
// not authenticated counts against a total and a per-source cap and has
// preAuthTimeout to finish; failed logins back off per source and per UUID;
// the APF reader checks every length before buffering; password checks
// (argon2id) run at most maxAuthChecks at a time.
package cira

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"amtd/amt/apf"
	"amtd/daemon/config"
	"amtd/metrics"
	"amtd/netsvc"
	"amtd/pki"
)

const (
	defaultListen    = "0.0.0.0:4433"
	defaultKeepAlive = 30 * time.Second
	defaultIdle      = 90 * time.Second
	// listenerName names the socket in netsvc.Listeners (and systemd's
	// FileDescriptorName).
	listenerName = "cira"
)

// settings is one configuration's worth of what the service reads; swapped
// whole by Reload.
type settings struct {
	listen    string
	legacy    bool
	keepAlive time.Duration
	idle      time.Duration
	names     []string
	ips       []netip.Addr
}

// Service is the CIRA listener. It implements netsvc.Service,
// netsvc.Reloader, netsvc.Status and daemon.DeviceCounter.
type Service struct {
	deps     netsvc.Deps
	log      *slog.Logger
	now      func() time.Time
	instance string

	settings  atomic.Pointer[settings]
	tlsConfig atomic.Pointer[tls.Config]

	dir      Directory       // from deps.Store at Start unless a test set it
	cert     *pki.ServerCert // issued at Start unless a test set it
	gate     *gate
	bySource *backoff[netip.Addr]
	byUUID   *backoff[uuidSource]
	authSem  chan struct{}
	reg      *registry

	mu      sync.Mutex // guards the lifecycle fields below
	running bool
	closing bool
	ln      net.Listener
	conns   map[net.Conn]*session // every open connection; nil session before authentication
	cancel  context.CancelFunc
	wg      sync.WaitGroup // connection goroutines
	bg      sync.WaitGroup // accept loop and flusher
	failed  atomic.Value   // error that stopped the accept loop

	results     *metrics.CounterVec
	ends        *metrics.CounterVec
	keepalives  *metrics.Counter
	storeErrors *metrics.Counter
	linkWrites  *metrics.Counter
	chanResults *metrics.CounterVec
	adjusts     atomic.Int64 // WINDOW_ADJUSTs sent on channels amtd opened
	window      uint32       // receive window per channel: chanWindow; tests shrink it before devices connect
}

// New validates cfg and builds the service; it touches no socket and reads
// nothing from the store (Start does).
func New(cfg *config.Config, deps netsvc.Deps) (*Service, error) {
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	reg := deps.Metrics
	if reg == nil {
		reg = metrics.NewRegistry()
	}
	st, err := buildSettings(cfg)
	if err != nil {
		return nil, err
	}
	instance := cfg.Site.Hostname
	if instance == "" {
		instance, _ = os.Hostname()
	}
	s := &Service{
		deps:     deps,
		log:      log.With("svc", "cira"),
		now:      now,
		instance: instance,
		gate:     newGate(),
		bySource: newBackoff[netip.Addr](sourceFreeFailures, now),
		byUUID:   newBackoff[uuidSource](0, now),
		authSem:  make(chan struct{}, maxAuthChecks),
		reg:      newRegistry(),
		conns:    map[net.Conn]*session{},
		window:   chanWindow,
		results: reg.CounterVec("amtd_cira_connections_total", "CIRA connections by outcome: authenticated, unknown_uuid, bad_user, "+
			"bad_password, backoff, too_many, too_many_from_source, garbage, http, tls_error, protocol_error, timeout, closed, store_error.", "result"),
		ends:        reg.CounterVec("amtd_cira_disconnects_total", "Authenticated CIRA links ended, by why: peer, idle, replaced, protocol_error, shutdown.", "why"),
		keepalives:  reg.Counter("amtd_cira_keepalives_total", "KEEPALIVE_REQUEST messages answered."),
		storeErrors: reg.Counter("amtd_cira_store_errors_total", "Failed writes of CIRA link state to the store (retried at the next flush)."),
		linkWrites:  reg.Counter("amtd_cira_link_writes_total", "Device rows of CIRA link state written to the store."),
		chanResults: reg.CounterVec("amtd_cira_channel_opens_total", "Channels amtd asked devices to open, by outcome: opened, refused, cancelled, queue_full, error.", "result"),
	}
	s.reg.gauge = reg.Gauge("amtd_cira_connected_devices", "Devices with an authenticated CIRA link now.")
	s.settings.Store(st)
	return s, nil
}

func buildSettings(cfg *config.Config) (*settings, error) {
	c := cfg.CIRA
	st := &settings{listen: c.Listen, legacy: c.LegacyTLS, keepAlive: c.KeepAlive, idle: c.IdleTimeout,
		ips: slices.Clone(cfg.Site.Addresses)}
	if cfg.Site.Hostname != "" {
		st.names = []string{cfg.Site.Hostname}
	}
	if st.listen == "" {
		st.listen = defaultListen
	}
	if st.keepAlive == 0 {
		st.keepAlive = defaultKeepAlive
	}
	if st.idle == 0 {
		st.idle = defaultIdle
	}
	if _, err := netip.ParseAddrPort(st.listen); err != nil {
		return nil, fmt.Errorf("cira: [CIRA] Listen=%s: %w", st.listen, err)
	}
	if st.keepAlive < time.Second || st.keepAlive > 24*time.Hour {
		return nil, fmt.Errorf("cira: [CIRA] KeepAlive=%s: give between 1s and 24h", st.keepAlive)
	}
	// A device sends a keep-alive every interval; the idle limit must leave
	// room for one lost or late (the Dell AMT 15 loop, spec/apf.md §4 step 7).
	if st.idle < 2*st.keepAlive {
		return nil, fmt.Errorf("cira: [CIRA] IdleTimeout=%s must be at least twice KeepAlive=%s, or links drop between keep-alives",
			st.idle, st.keepAlive)
	}
	if len(st.names) == 0 && len(st.ips) == 0 {
		return nil, errors.New("cira: the server certificate needs [Site] Hostname= or Address=")
	}
	return st, nil
}

// AEAD suites with forward secrecy: the default (TLS 1.3 suites are not
// configurable and always on).
var modernSuites = []uint16{
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// legacySuites are added by LegacyTLS=yes: CBC and RSA key exchange, for AMT
// 11 and older, and the RSA-kex suites Console adds "for AMT device
// compatibility" (spec/network.md §6, spec/apf.md §8).
var legacySuites = []uint16{
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	tls.TLS_RSA_WITH_AES_256_CBC_SHA,
}

// newTLSConfig builds the listener's TLS configuration. A client certificate
// is requested but not required: AMT logs in with a password, and MPS and
// MeshCentral ask the same way (spec/apf.md §4 step 1).
func newTLSConfig(st *settings, cert *pki.ServerCert) *tls.Config {
	c := &tls.Config{
		GetCertificate: cert.GetCertificate,
		ClientAuth:     tls.RequestClientCert,
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   modernSuites,
	}
	if st.legacy {
		c.MinVersion = tls.VersionTLS10
		c.CipherSuites = slices.Concat(modernSuites, legacySuites)
	}
	return c
}

// Name implements netsvc.Service.
func (s *Service) Name() string { return "cira" }

// Start opens the appliance CA (creating it in a store made before amtd had
// one), issues the server certificate, marks links this instance held before
// a restart as gone, and serves on the "cira" socket.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return errors.New("cira: already started")
	}
	if s.deps.Listeners == nil {
		return errors.New("cira: no listener registry in deps")
	}
	st := s.settings.Load()
	if s.dir == nil || s.cert == nil {
		if s.deps.Store == nil {
			return errors.New("cira: no store in deps")
		}
		ca, created, err := pki.LoadOrInit(ctx, s.deps.Store, s.now(), "", "amtd")
		if err != nil {
			return fmt.Errorf("cira: %w", err)
		}
		if created {
			s.log.Warn("cira: created the appliance CA; devices trust it only once provisioning adds it to them",
				"root_sha256", ca.Fingerprint())
		}
		if s.cert, err = pki.NewServerCert(ca, st.names, st.ips, s.now); err != nil {
			return fmt.Errorf("cira: %w", err)
		}
		if s.dir == nil {
			s.dir = storeDirectory{st: s.deps.Store}
		}
	}
	s.tlsConfig.Store(newTLSConfig(st, s.cert))
	if n, err := s.dir.Release(ctx, s.instance); err != nil {
		return fmt.Errorf("cira: %w", err)
	} else if n > 0 {
		s.log.Info("cira: links held before the restart are gone; devices reconnect by themselves", "devices", n)
	}
	ln, err := s.deps.Listeners.Stream(listenerName, st.listen)
	if err != nil {
		return fmt.Errorf("cira: %w", err)
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.running, s.closing = true, false
	s.startAccept(sctx, ln)
	s.bg.Add(1)
	go s.flusher(sctx)
	s.log.Info("cira: serving", "listen", st.listen, "names", st.names, "addresses", st.ips, "legacy_tls", st.legacy,
		"keepalive", st.keepAlive.String(), "idle_timeout", st.idle.String())
	return nil
}

// startAccept runs the accept loop on ln. Called with s.mu held.
func (s *Service) startAccept(ctx context.Context, ln net.Listener) {
	s.ln = ln
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.accept(ctx, ln)
	}()
}

func (s *Service) accept(ctx context.Context, ln net.Listener) {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: wait a little, as net/http does, instead
			// of spinning or giving up.
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("cira: accept", "err", err, "retry_in", delay.String())
				time.Sleep(delay)
				continue
			}
			s.failed.Store(err)
			s.log.Error("cira: listener stopped", "err", err)
			return
		}
		delay = 0
		if !s.trackConn(c) {
			c.Close()
			continue
		}
		s.wg.Add(1)
		go s.handleConn(ctx, c)
	}
}

// handleConn runs one accepted connection: the handshake and login here, the
// link on a fresh goroutine. A link lives for days; the goroutine that ran
// the TLS handshake (RSA signing, key exchange) grew its stack to 8 KiB and
// would keep it that long, while an idle link's reader needs half
// (BenchmarkIdleLinks reports stack-B/link).
func (s *Service) handleConn(ctx context.Context, c net.Conn) {
	defer s.wg.Done()
	link := s.serve(ctx, c)
	if link == nil {
		s.untrackConn(c)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.untrackConn(c)
		link()
	}()
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// trackConn records an open connection so that Close can end it; it
// refuses once Close has begun.
func (s *Service) trackConn(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = nil
	return true
}

func (s *Service) untrackConn(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

// setSession marks raw as carrying sess, once TLS is up.
func (s *Service) setSession(raw net.Conn, sess *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[raw]; !ok || s.closing {
		return false
	}
	s.conns[raw] = sess
	return true
}

// refuse counts one connection outcome.
func (s *Service) refuse(result string) { s.results.With(result).Inc() }

// checkCredentials runs a password check, at most maxAuthChecks at once.
func (s *Service) checkCredentials(ctx context.Context, uuid, user string, pw []byte) (bool, bool, error) {
	select {
	case s.authSem <- struct{}{}:
	case <-ctx.Done():
		return false, false, ctx.Err()
	}
	defer func() { <-s.authSem }()
	return s.dir.CheckCredentials(ctx, uuid, user, pw)
}

// flusher writes link state every flushInterval.
func (s *Service) flusher(ctx context.Context) {
	defer s.bg.Done()
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.flush(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("cira: writing link state to the store", "err", err)
			}
		}
	}
}

// Close stops accepting, tells every connected device to go
// (DISCONNECT BY_APPLICATION; it reconnects by itself), waits for the
// connections to end, and writes the final link state.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return nil
	}
	s.running, s.closing = false, true
	ln := s.ln
	conns := make(map[net.Conn]*session, len(s.conns))
	for c, sess := range s.conns {
		conns[c] = sess
	}
	cancel := s.cancel
	s.mu.Unlock()

	ln.Close()
	cancel()
	for c, sess := range conns {
		if sess != nil && s.reg.get(sess.uuid) == sess {
			sess.kick(apf.DisconnectByApplication, endShutdown)
		} else {
			c.Close()
		}
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); s.bg.Wait(); close(done) }()
	var errs []error
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("cira: close: connections still ending: %w", ctx.Err()))
	}
	if err := s.flush(context.WithoutCancel(ctx)); err != nil {
		errs = append(errs, fmt.Errorf("cira: close: final link state: %w", err))
	}
	return errors.Join(errs...)
}

// Health implements netsvc.Service: an error once the accept loop has died.
func (s *Service) Health(context.Context) error {
	if err, ok := s.failed.Load().(error); ok && err != nil {
		return fmt.Errorf("cira: listener stopped: %w", err)
	}
	return nil
}

// Status implements netsvc.Status.
func (s *Service) Status() string {
	n := s.reg.count()
	if n == 1 {
		return "1 device connected"
	}
	return fmt.Sprintf("%d devices connected", n)
}

// ConnectedDevices implements daemon.DeviceCounter.
func (s *Service) ConnectedDevices() int { return s.reg.count() }

// Reload implements netsvc.Reloader. Links stay up: new keep-alive and idle
// settings apply to the next message, TLS settings and names to the next
// handshake, a new Listen= moves the listener.
func (s *Service) Reload(ctx context.Context, cfg *config.Config) error {
	st, err := buildSettings(cfg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.settings.Load()
	if !s.running {
		s.settings.Store(st)
		return nil
	}
	cert := s.cert
	if !slices.Equal(st.names, old.names) || !slices.Equal(st.ips, old.ips) {
		if s.deps.Store == nil {
			return errors.New("cira: reload: new names for the server certificate need the store's CA")
		}
		ca, err := pki.Load(ctx, s.deps.Store)
		if err != nil {
			return fmt.Errorf("cira: reload: %w", err)
		}
		if cert, err = pki.NewServerCert(ca, st.names, st.ips, s.now); err != nil {
			return fmt.Errorf("cira: reload: %w", err)
		}
	}
	if st.listen != old.listen {
		ln, err := s.deps.Listeners.Stream(listenerName, st.listen)
		if err != nil {
			return fmt.Errorf("cira: reload: %w", err)
		}
		s.ln.Close() // its accept loop ends by itself (s.bg)
		ctx, cancel := context.WithCancel(context.Background())
		prev := s.cancel
		s.cancel = func() { cancel(); prev() }
		s.startAccept(ctx, ln)
	}
	s.cert = cert
	s.tlsConfig.Store(newTLSConfig(st, cert))
	s.settings.Store(st)
	s.log.Info("cira: reloaded", "listen", st.listen, "legacy_tls", st.legacy, "keepalive", st.keepAlive.String(),
		"idle_timeout", st.idle.String())
	return nil
}
