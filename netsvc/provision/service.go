package provision

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"amtd/daemon/config"
	"amtd/netsvc"
)

// Service is [Provisioning]: the hello listener and the activations it
// starts. It is rebuilt on reload on the same socket (netsvc.Listeners);
// activations cut short by that resume on the device's next hello.
type Service struct {
	cfg    *config.Config
	deps   netsvc.Deps
	hl     *HelloListener
	listen string
}

// New builds the service; chains gives the domains' provisioning chains
// (the store's, opened with their .pfx passwords).
func New(cfg *config.Config, deps netsvc.Deps, chains ChainSource) (*Service, error) {
	if deps.Store == nil {
		return nil, errors.New("provisioning needs the store: it keeps every password it hands a device")
	}
	if chains == nil {
		return nil, errors.New("provisioning: no source of provisioning certificates")
	}
	listen := cfg.Provisioning.HelloListen
	if listen == "" {
		listen = "0.0.0.0:9971"
	}
	domains := append([]string(nil), cfg.Site.Domains...)
	log := deps.Log
	hl := &HelloListener{
		Engine: &Engine{Store: deps.Store, Log: log, Metrics: deps.Metrics, Now: deps.Now},
		Chains: chains,
		// The option-15 domain amtd serves is the site's (spec/activation.md
		// §3 step 1): every device on the AMT network carries it.
		Suffixes: func(netip.Addr) []string { return domains },
		Log:      log,
		Metrics:  deps.Metrics,
	}
	return &Service{cfg: cfg, deps: deps, hl: hl, listen: listen}, nil
}

// Name implements netsvc.Service.
func (s *Service) Name() string { return "provisioning" }

// Start listens for hellos ("hello" socket from systemd, or bound).
func (s *Service) Start(ctx context.Context) error {
	ln, err := s.deps.Listeners.Stream("hello", s.listen)
	if err != nil {
		return fmt.Errorf("provisioning: hello listener %s: %w", s.listen, err)
	}
	s.hl.Serve(ln)
	if s.deps.Log != nil {
		s.deps.Log.Info("hello listener up", "addr", ln.Addr().String(), "domains", strings.Join(s.cfg.Site.Domains, ","))
	}
	return nil
}

// Close stops the listener and waits for activations until ctx ends.
func (s *Service) Close(ctx context.Context) error { return s.hl.Close(ctx) }

// Health implements netsvc.Service: the listener runs in its own goroutine
// and the store's health is checked by the daemon.
func (s *Service) Health(ctx context.Context) error { return nil }

// ActivationsRunning is for STATUS= and `amtd status`.
func (s *Service) ActivationsRunning() int { return s.hl.ActivationsRunning() }

// Status implements netsvc.Status.
func (s *Service) Status() string {
	return fmt.Sprintf("%d activations running", s.hl.ActivationsRunning())
}
