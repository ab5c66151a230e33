package provision

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"amtd/daemon/config"
	"amtd/daemon/control"
	"amtd/netsvc"
	"amtd/secret"
	"amtd/store"
)

// Options are what the daemon hands the service besides the configuration.
type Options struct {
	// Chains gives the domains' provisioning chains.
	Chains ChainSource
	// CIRARootDER is the appliance root devices are told to trust for CIRA;
	// set when [CIRA] is enabled.
	CIRARootDER []byte
	// AgentCertificate serves the agent endpoint's TLS (the appliance
	// certificate); required with AgentListen=.
	AgentCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// Version is amtd's version, sent to agents.
	Version string
	// DeviceCA certifies devices' TLS keys (profiles with TLS); nil: such
	// profiles fail at the TLS step, saying why.
	DeviceCA DeviceCA
}

// Service is [Provisioning]: the hello listener, the agent endpoint, and
// the activations they start. It is rebuilt on reload on the same sockets
// (netsvc.Listeners); activations cut short by that resume on the device's
// next hello or the agent's next run.
type Service struct {
	cfg    *config.Config
	deps   netsvc.Deps
	hl     *HelloListener
	agent  *AgentServer
	opts   Options
	listen string
	http   *http.Server

	progress *Progress // since this instance started

	// The expiry watch (issue 5): see checkExpiry.
	expiryTick func() (<-chan time.Time, func()) // the daily tick; a test's own in tests
	expiryMu   sync.Mutex
	expiryNote string        // for Status
	expiryStop chan struct{} // closed by Close
	expiryDone chan struct{} // closed when the watch returns
}

// MaxTokenFile bounds what is read from AgentTokenFile=.
const maxTokenFile = 4096

// ReadAgentToken reads the enrolment token file: one line, at least 16
// characters, not readable by everyone.
func ReadAgentToken(path string) (secret.Value, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return secret.Value{}, fmt.Errorf("[Provisioning] AgentTokenFile=%s: %w (create it with amtd agent-token --out %s)", path, err, path)
	}
	if fi.Mode().Perm()&0o007 != 0 {
		return secret.Value{}, fmt.Errorf("[Provisioning] AgentTokenFile=%s is readable by every user (mode %o); run chmod 640 %s", path, fi.Mode().Perm(), path)
	}
	if fi.Size() > maxTokenFile {
		return secret.Value{}, fmt.Errorf("[Provisioning] AgentTokenFile=%s is %d bytes: not a token file", path, fi.Size())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return secret.Value{}, fmt.Errorf("[Provisioning] AgentTokenFile=%s: %w", path, err)
	}
	defer clear(b)
	tok := bytes.TrimSpace(b)
	if len(tok) < 16 || bytes.ContainsAny(tok, " \t\r\n") {
		return secret.Value{}, fmt.Errorf("[Provisioning] AgentTokenFile=%s does not hold one token of 16 or more characters (amtd agent-token writes one)", path)
	}
	return secret.New(tok), nil
}

// New builds the service. It reads the agent token file now, so a bad one
// is an error at start and on reload, not at the first agent.
func New(cfg *config.Config, deps netsvc.Deps, opts Options) (*Service, error) {
	if deps.Store == nil {
		return nil, errors.New("provisioning needs the store: it keeps every password it hands a device")
	}
	if opts.Chains == nil {
		return nil, errors.New("provisioning: no source of provisioning certificates")
	}
	listen := cfg.Provisioning.HelloListen
	if listen == "" {
		listen = "0.0.0.0:9971"
	}
	eng := &Engine{Store: deps.Store, Log: deps.Log, Metrics: deps.Metrics, Now: deps.Now, DeviceCA: opts.DeviceCA}
	eng.progress = newProgress(eng.now())
	if cfg.CIRA.Enable {
		if len(opts.CIRARootDER) == 0 {
			return nil, errors.New("provisioning: [CIRA] is enabled but the appliance root is missing")
		}
		_, p, err := net.SplitHostPort(cfg.CIRA.Listen)
		if err != nil {
			return nil, fmt.Errorf("provisioning: [CIRA] Listen=%s: %w", cfg.CIRA.Listen, err)
		}
		port, _ := strconv.Atoi(p)
		eng.CIRA = &CIRAConfig{Server: cfg.Site.Hostname, Port: port, RootDER: opts.CIRARootDER}
	}
	domains := append([]string(nil), cfg.Site.Domains...)
	s := &Service{cfg: cfg, deps: deps, opts: opts, listen: listen, progress: eng.progress}
	s.hl = &HelloListener{
		// A reload builds a new listener with the new limit: it applies to
		// activations started after it, while the old instance finishes
		// its own (daemon.apply closes it after the new one serves).
		Limits: HelloLimits{MaxActivations: cfg.Provisioning.MaxConcurrentActivations},
		Engine: eng,
		Chains: opts.Chains,
		// The option-15 domain amtd serves is the site's (spec/activation.md
		// §3 step 1): every device on the AMT network carries it.
		Suffixes: func(netip.Addr) []string { return domains },
		Log:      deps.Log,
		Metrics:  deps.Metrics,
	}
	s.hl.Limits.fill()
	if pv := cfg.Provisioning; pv.AgentListen != "" {
		tok, err := ReadAgentToken(pv.AgentTokenFile)
		if err != nil {
			return nil, err
		}
		if opts.AgentCertificate == nil {
			return nil, errors.New("provisioning: the agent endpoint needs the appliance certificate")
		}
		trust, err := ParseTunnelTrust(pv.AgentTLSTrust)
		if err != nil {
			return nil, fmt.Errorf("[Provisioning] AgentTLSTrust=: %w", err)
		}
		var odca []*x509.Certificate
		if pv.AgentODCARoots != "" {
			if odca, err = LoadODCARoots(pv.AgentODCARoots); err != nil {
				return nil, fmt.Errorf("[Provisioning] AgentODCARoots=%s: %w", pv.AgentODCARoots, err)
			}
		}
		s.agent = &AgentServer{Engine: eng, Chains: opts.Chains, Token: tok, AllowFrom: pv.AgentAllowFrom,
			TunnelTrust: trust, ODCARoots: odca, AppVersion: opts.Version, Log: deps.Log, Metrics: deps.Metrics}
	}
	return s, nil
}

// Name implements netsvc.Service.
func (s *Service) Name() string { return "provisioning" }

// Start listens for hellos ("hello" socket from systemd, or bound) and, when
// configured, for agents ("agent").
func (s *Service) Start(ctx context.Context) error {
	ln, err := s.deps.Listeners.Stream("hello", s.listen)
	if err != nil {
		return fmt.Errorf("provisioning: hello listener %s: %w", s.listen, err)
	}
	if s.agent != nil {
		aln, err := s.deps.Listeners.Stream("agent", s.cfg.Provisioning.AgentListen)
		if err != nil {
			return fmt.Errorf("provisioning: agent listener %s: %w", s.cfg.Provisioning.AgentListen, err)
		}
		tcfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.opts.AgentCertificate}
		s.http = &http.Server{Handler: s.agent.Handler(), ReadHeaderTimeout: 10 * time.Second, TLSConfig: tcfg,
			ErrorLog: nil, MaxHeaderBytes: 16 << 10}
		go func() { _ = s.http.Serve(tls.NewListener(aln, tcfg)) }()
	}
	s.hl.Serve(ln)
	if s.deps.Log != nil {
		s.deps.Log.Info("provisioning up", "hello", ln.Addr().String(), "agents", s.cfg.Provisioning.AgentListen,
			"domains", strings.Join(s.cfg.Site.Domains, ","), "cira", s.hl.Engine.CIRA != nil)
	}
	s.startExpiryWatch(ctx)
	return nil
}

// Close stops the listeners and waits for activations until ctx ends.
func (s *Service) Close(ctx context.Context) error {
	var errs []error
	if s.http != nil {
		// Hijacked WebSocket connections are not the HTTP server's to close.
		s.agent.Close()
		if err := s.http.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	s.stopExpiryWatch()
	errs = append(errs, s.hl.Close(ctx))
	return errors.Join(errs...)
}

// Health implements netsvc.Service. The listeners run in their own
// goroutines and back off on accept errors; the store is checked by the
// daemon.
func (s *Service) Health(ctx context.Context) error { return nil }

// ActivationsRunning is for STATUS= and `amtd status`.
func (s *Service) ActivationsRunning() int { return s.hl.ActivationsRunning() }

// Status implements netsvc.Status.
func (s *Service) Status() string {
	agents := "no agent endpoint"
	if s.agent != nil {
		agents = "agents on " + s.cfg.Provisioning.AgentListen
	}
	var c control.ProvisioningStatus
	s.progress.counts(&c)
	st := fmt.Sprintf("%d activations running, %d queued, %d done, %d failed since %s; %s",
		s.hl.ActivationsRunning(), s.hl.queued(), c.Succeeded, c.Failed, c.Since.Local().Format(time.TimeOnly), agents)
	s.expiryMu.Lock()
	defer s.expiryMu.Unlock()
	if s.expiryNote != "" {
		st += "; " + s.expiryNote
	}
	return st
}

// Provisioning is the progress report of `amtd status`: the activations
// running (bare-metal ones and agent sessions) with the step the device's
// history last records, the devices queued, and the counts and failures
// since this instance started.
func (s *Service) Provisioning(ctx context.Context) control.ProvisioningStatus {
	st := control.ProvisioningStatus{MaxConcurrent: s.hl.Limits.MaxActivations, MaxQueued: s.hl.Limits.MaxQueued}
	st.Running, st.Queued = s.hl.progress()
	if s.agent != nil {
		st.Running = append(st.Running, agentSessions(s.agent)...)
	}
	s.progress.counts(&st)
	devs := s.deps.Store.Devices()
	for i := range st.Running {
		r := &st.Running[i]
		if h, err := devs.History(ctx, r.UUID); err == nil && len(h) > 0 {
			last := h[len(h)-1]
			r.Step, r.StepDetail, r.StepSince = last.Step, last.Detail, last.Time
		}
	}
	return st
}

// An expired provisioning certificate stops every ACM activation of its
// domain, and vendors take days to reissue one: the daemon says so from
// store.ExpiryWarning (30 days) ahead, at start and once a day, in the log,
// in `amtd status` and as a gauge (spec/activation.md §12.5).
const expiryEvery = 24 * time.Hour

func (s *Service) startExpiryWatch(ctx context.Context) {
	s.checkExpiry(ctx)
	tick := s.expiryTick
	if tick == nil {
		tick = func() (<-chan time.Time, func()) { t := time.NewTicker(expiryEvery); return t.C, t.Stop }
	}
	c, stopTick := tick()
	s.expiryStop, s.expiryDone = make(chan struct{}), make(chan struct{})
	stop, done := s.expiryStop, s.expiryDone
	go func() {
		defer close(done)
		defer stopTick()
		for {
			select {
			case <-stop:
				return
			case <-c:
				s.checkExpiry(context.Background())
			}
		}
	}()
}

func (s *Service) stopExpiryWatch() {
	if s.expiryStop == nil {
		return // never started
	}
	select {
	case <-s.expiryStop:
	default:
		close(s.expiryStop)
	}
	<-s.expiryDone
}

// checkExpiry sets amtd_domain_cert_expiry_days for every domain, warns in
// the log about each certificate within the warning (or expired), and keeps
// a note of them for Status. A store error is logged; the next tick retries.
func (s *Service) checkExpiry(ctx context.Context) {
	now := time.Now()
	if s.deps.Now != nil {
		now = s.deps.Now()
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	all, err := s.deps.Store.Domains().List(ctx)
	var soon []store.Domain
	if err == nil {
		soon, err = s.deps.Store.Domains().Expiring(ctx, now) // soonest first
	}
	if err != nil {
		if s.deps.Log != nil {
			s.deps.Log.Warn("provisioning: cannot read the domains to check certificate expiry", "err", err)
		}
		return
	}
	if s.deps.Metrics != nil {
		g := s.deps.Metrics.GaugeVec("amtd_domain_cert_expiry_days", "Whole days until the domain's provisioning certificate expires (negative once expired).", "domain")
		for _, d := range all {
			g.With(d.Suffix).Set(float64(d.DaysLeft(now)))
		}
	}
	var notes []string
	for _, d := range soon {
		days, exp := d.DaysLeft(now), d.LeafExpiry.UTC().Format(time.DateOnly)
		msg, note := "provisioning certificate expires soon: renew it and load it with 'amtd domain replace-cert'",
			fmt.Sprintf("certificate of %s expires in %d days (%s): renew it", d.Suffix, days, exp)
		if d.Expired(now) {
			msg, note = "provisioning certificate has expired: ACM activation in the domain fails until 'amtd domain replace-cert' loads a new one",
				fmt.Sprintf("certificate of %s EXPIRED on %s: replace it", d.Suffix, exp)
		}
		if s.deps.Log != nil {
			s.deps.Log.Warn(msg, "domain", d.Suffix, "expires", exp, "days_left", days)
		}
		notes = append(notes, note)
	}
	s.expiryMu.Lock()
	s.expiryNote = strings.Join(notes, "; ")
	s.expiryMu.Unlock()
}

// agentSessions lists the devices agents are working on now (activations,
// and maintenance or deactivation), by UUID.
func agentSessions(a *AgentServer) []control.ActivationProgress {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]control.ActivationProgress, 0, len(a.active))
	for uuid, c := range a.active {
		p := control.ActivationProgress{UUID: uuid, Path: "agent", Started: c.started}
		if c.from.IsValid() {
			p.Address = c.from.String()
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(x, y control.ActivationProgress) int { return strings.Compare(x.UUID, y.UUID) })
	return out
}
