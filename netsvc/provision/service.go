package provision

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"amtd/daemon/config"
	"amtd/netsvc"
	"amtd/secret"
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
	eng := &Engine{Store: deps.Store, Log: deps.Log, Metrics: deps.Metrics, Now: deps.Now}
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
	s := &Service{cfg: cfg, deps: deps, opts: opts, listen: listen}
	s.hl = &HelloListener{
		Engine: eng,
		Chains: opts.Chains,
		// The option-15 domain amtd serves is the site's (spec/activation.md
		// §3 step 1): every device on the AMT network carries it.
		Suffixes: func(netip.Addr) []string { return domains },
		Log:      deps.Log,
		Metrics:  deps.Metrics,
	}
	if pv := cfg.Provisioning; pv.AgentListen != "" {
		tok, err := ReadAgentToken(pv.AgentTokenFile)
		if err != nil {
			return nil, err
		}
		if opts.AgentCertificate == nil {
			return nil, errors.New("provisioning: the agent endpoint needs the appliance certificate")
		}
		s.agent = &AgentServer{Engine: eng, Chains: opts.Chains, Token: tok, AllowFrom: pv.AgentAllowFrom,
			AppVersion: opts.Version, Log: deps.Log, Metrics: deps.Metrics}
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
	return fmt.Sprintf("%d activations running; %s", s.hl.ActivationsRunning(), agents)
}
