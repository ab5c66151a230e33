// Package api is [API]: the console REST API over HTTPS, compatible with the
// Open AMT MPS /api/v1 surface for what amtd can answer (spec/redirection.md
// §7), and the Prometheus endpoint on its own plain-HTTP listener.
//
// Every call carries an API key (amtd apikey create): "Authorization: Bearer
// TOKEN", or "X-Api-Key: TOKEN" as Open AMT's gateway examples send it. Keys
// have a role (viewer, operator, admin) and each route names the least role
// it needs. Every authenticated call, and failed authentications up to a
// rate, leave a row in the store's audit trail.
package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/netutil"

	"amtd/daemon/config"
	"amtd/metrics"
	"amtd/netsvc"
)

// Listener names in netsvc.Listeners (and FileDescriptorName= for systemd
// socket activation).
const (
	listenerName        = "api"
	metricsListenerName = "metrics"
)

// Limits on what one request may cost. MPS answers every route within its
// 10 s WS-Man timeout (spec/redirection.md §7); store queries get the same.
const (
	maxHeaderBytes   = 16 << 10
	maxBodyBytes     = 1 << 20
	readHeaderTimout = 10 * time.Second
	readTimeout      = 30 * time.Second
	writeTimeout     = 60 * time.Second
	idleTimeout      = 120 * time.Second
	requestTimeout   = 10 * time.Second
	// maxConns bounds open connections (and so goroutines and TLS state)
	// per listener; consoles and scripts need a handful each, and every
	// open relay session holds one (at most three per device, one per
	// mode): a site of a thousand devices under remote support fits.
	maxConns = 2048
)

// Options are what the daemon hands the service besides the configuration.
type Options struct {
	// Certificate serves the API's TLS: the appliance certificate
	// (pki.ServerCert.GetCertificate). Required.
	Certificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// Devices reaches devices over CIRA for the /api/v1/amt/* routes: the
	// running CIRA service. Nil when [CIRA] is off; those routes then say so.
	Devices DeviceDialer
	// Relays keeps redirection tokens and open relay sessions across the
	// Services a reload builds. Nil: the Service keeps its own and ends its
	// sessions on Close.
	Relays *RelayState
}

// Service is the console API and the metrics endpoint. The daemon rebuilds
// it on the same sockets on reload; the one state a reload must keep, the
// relay's tokens and open sessions, comes in Options.Relays.
type Service struct {
	cfg  config.API
	deps netsvc.Deps
	opts Options
	log  *slog.Logger
	now  func() time.Time

	requests     *metrics.CounterVec
	authFailures *metrics.CounterVec
	auditDropped *metrics.Counter
	failAudit    limiter

	relays        *RelayState
	ownRelays     bool
	relayActive   *metrics.GaugeVec
	relaySessions *metrics.CounterVec
	relayBytes    *metrics.CounterVec

	mu      sync.Mutex
	api     *http.Server
	metrics *http.Server
	addr    string
	ln      net.Listener // the API's, for tests
	// serveErr is why a listener stopped serving other than Close.
	serveErr atomic.Pointer[error]
}

// New checks the configuration and what the service needs; it touches no
// socket.
func New(cfg *config.Config, deps netsvc.Deps, opts Options) (*Service, error) {
	if deps.Store == nil {
		return nil, errors.New("api: needs the store: API keys and devices live there")
	}
	if deps.Listeners == nil {
		return nil, errors.New("api: no listener registry in deps")
	}
	if opts.Certificate == nil {
		return nil, errors.New("api: the HTTPS listener needs the appliance certificate")
	}
	if cfg.API.Listen == "" {
		return nil, errors.New("[API] Listen= is empty")
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := deps.Metrics
	if reg == nil {
		reg = metrics.NewRegistry()
		deps.Metrics = reg
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	s := &Service{
		cfg:  cfg.API,
		deps: deps,
		opts: opts,
		log:  log.With("svc", "api"),
		now:  now,
		requests: reg.CounterVec("amtd_api_requests_total",
			"Console API requests by route and HTTP status.", "route", "code"),
		authFailures: reg.CounterVec("amtd_api_auth_failures_total",
			"Console API requests refused before a key was accepted, by reason.", "reason"),
		auditDropped: reg.Counter("amtd_api_auth_failures_unaudited_total",
			"Failed authentications not written to the audit trail because they came faster than its rate limit."),
		// A flood of bad tokens must not become a flood of disk writes:
		// audit 20 at once, then one a second; the counter has the rest.
		failAudit: limiter{burst: 20, every: time.Second},
		relays:    opts.Relays,
		relayActive: reg.GaugeVec("amtd_relay_sessions_active",
			"Redirection relay sessions open now, by mode (kvm, sol, ider).", "mode"),
		relaySessions: reg.CounterVec("amtd_relay_sessions_total",
			"Redirection relay sessions opened (WebSocket upgraded), by mode.", "mode"),
		relayBytes: reg.CounterVec("amtd_relay_bytes_total",
			"Bytes the redirection relay passed, by mode and direction (to_device, to_console).", "mode", "direction"),
	}
	if s.relays == nil {
		s.relays, s.ownRelays = NewRelayState(), true
	}
	return s, nil
}

// Name implements netsvc.Service.
func (s *Service) Name() string { return "api" }

// Start serves the API on its socket ("api" from systemd, else bound to
// Listen=) and, with MetricsListen=, the metrics.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.api != nil {
		return errors.New("api: already started")
	}
	ln, err := s.deps.Listeners.Stream(listenerName, s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("api: listener %s: %w", s.cfg.Listen, err)
	}
	var mln net.Listener
	if s.cfg.MetricsListen != "" {
		if mln, err = s.deps.Listeners.Stream(metricsListenerName, s.cfg.MetricsListen); err != nil {
			ln.Close()
			return fmt.Errorf("api: metrics listener %s: %w", s.cfg.MetricsListen, err)
		}
	}
	tcfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.opts.Certificate,
		// Consoles are current software: TLS 1.2 only with forward-secret
		// AEAD suites (TLS 1.3's are all AEAD).
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		}}
	s.api = &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         tcfg,
		ReadHeaderTimeout: readHeaderTimout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.addr = ln.Addr().String()
	s.ln = ln
	go s.serve("api", s.api, tls.NewListener(netutil.LimitListener(ln, maxConns), tcfg))
	if mln != nil {
		s.metrics = &http.Server{
			Handler:           http.HandlerFunc(s.serveMetrics),
			ReadHeaderTimeout: readHeaderTimout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		}
		go s.serve("metrics", s.metrics, netutil.LimitListener(mln, maxConns))
	}
	s.log.Info("api up", "listen", s.addr, "metrics", s.cfg.MetricsListen)
	return nil
}

// serve runs srv until Close; an earlier end is kept for Health.
func (s *Service) serve(what string, srv *http.Server, ln net.Listener) {
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return
	}
	err = fmt.Errorf("api: the %s listener stopped: %w", what, err)
	s.serveErr.Store(&err)
	s.log.Error("api: listener stopped", "listener", what, "err", err)
}

// serveMetrics answers any GET with the registry in the Prometheus text
// format. The listener is plain HTTP without auth: MetricsListen= belongs on
// loopback or a management network (amtd.conf(5)).
func (s *Service) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if err := s.deps.Metrics.WriteText(w); err != nil {
		s.log.Debug("metrics: write", "err", err)
	}
}

// Addr is the API's listening address once started (for tests and logs).
func (s *Service) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Close stops both listeners and waits for requests in flight until ctx ends.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	api, m := s.api, s.metrics
	s.mu.Unlock()
	var errs []error
	// Relay sessions are hijacked connections Shutdown does not see; a
	// daemon-held RelayState keeps them across a reload.
	if s.ownRelays {
		defer s.relays.Close()
	}
	for _, srv := range []*http.Server{api, m} {
		if srv == nil {
			continue
		}
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("api: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Health implements netsvc.Service: an error once a listener has stopped
// serving on its own. The store is checked by the daemon.
func (s *Service) Health(ctx context.Context) error {
	if p := s.serveErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Status implements netsvc.Status.
func (s *Service) Status() string {
	st := "API on " + s.cfg.Listen
	if s.cfg.MetricsListen != "" {
		st += ", metrics on " + s.cfg.MetricsListen
	}
	return st
}

// limiter is a token bucket: burst tokens, one more every period.
type limiter struct {
	burst  int
	every  time.Duration
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func (l *limiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.IsZero() {
		l.tokens = float64(l.burst)
	} else if d := now.Sub(l.last); d > 0 {
		l.tokens = min(float64(l.burst), l.tokens+float64(d)/float64(l.every))
	}
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}
