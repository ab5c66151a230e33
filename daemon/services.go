package daemon

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"amtd/daemon/config"
	"amtd/daemon/control"
	"amtd/netsvc"
	"amtd/netsvc/api"
	"amtd/netsvc/cira"
	"amtd/netsvc/dhcp"
	"amtd/netsvc/dns"
	"amtd/netsvc/provision"
	"amtd/pki"
	"amtd/provcert"
)

// Spec is one row of the service table: how to build a service from the
// configuration, and whether the configuration enables it.
type Spec struct {
	Name    string
	Enabled func(cfg *config.Config) bool
	New     func(cfg *config.Config, deps netsvc.Deps) (netsvc.Service, error)
}

// DefaultServices is amtd's service table, in start order (stopped in
// reverse). The control socket is not in it: the daemon always runs that
// one first, see Run.
func DefaultServices() []Spec {
	// The API reaches devices through whichever CIRA service this table
	// built last (CIRA reloads in place, so that is the running one).
	link := &ciraLink{}
	return []Spec{
		// DNS goes before DHCP: leases hand out its address as the resolver
		// that answers ProvisionServer (spec/network.md §2).
		{Name: "dns", Enabled: func(c *config.Config) bool { return c.DNS.Enable }, New: newDNS},
		// The registrar puts ProvisionServer into the site's own DNS instead.
		{Name: "dns-registrar", Enabled: func(c *config.Config) bool { return c.Registrar.Enable }, New: newRegistrar},
		{Name: "dhcp", Enabled: func(c *config.Config) bool { return c.DHCP.Enable }, New: newDHCP},
		// Provisioning after DHCP and DNS: devices find it through them.
		{Name: "provisioning", Enabled: func(c *config.Config) bool { return c.Provisioning.Enable }, New: newProvisioning},
		// CIRA last: its links outlive reloads (it implements Reloader), and
		// devices dial it only once provisioning has configured them.
		{Name: "cira", Enabled: func(c *config.Config) bool { return c.CIRA.Enable }, New: link.newCIRA},
		// The console API reads what the others keep in the store.
		{Name: "api", Enabled: func(c *config.Config) bool { return c.API.Enable }, New: link.newAPI},
	}
}

func newDNS(cfg *config.Config, deps netsvc.Deps) (netsvc.Service, error) {
	return dns.New(cfg, deps)
}

func newRegistrar(cfg *config.Config, deps netsvc.Deps) (netsvc.Service, error) {
	return dns.NewRegistrar(cfg, deps)
}

// ciraLink hands the console API the CIRA service for its /amt/* routes
// (issue 6), without a registry in netsvc.Deps: the table's two builders
// share it. A CIRA service closed by a reload that turned [CIRA] off has no
// links, so its Dial answers "not connected".
type ciraLink struct {
	mu  sync.Mutex
	svc *cira.Service
	// relays outlives the API services reloads build, so redirection
	// tokens stay valid and open relay sessions stay counted (issue 6).
	relays *api.RelayState
}

func (l *ciraLink) newCIRA(cfg *config.Config, deps netsvc.Deps) (netsvc.Service, error) {
	svc, err := cira.New(cfg, deps)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.svc = svc
	l.mu.Unlock()
	return svc, nil
}

// current is the CIRA service the table built last, nil before one.
func (l *ciraLink) current() *cira.Service {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.svc
}

// Dial implements api.DeviceDialer.
func (l *ciraLink) Dial(ctx context.Context, uuid string, port uint16) (net.Conn, error) {
	svc := l.current()
	if svc == nil {
		return nil, fmt.Errorf("cira: dial %s: %w ([CIRA] is not running)", uuid, cira.ErrNotConnected)
	}
	return svc.Dial(ctx, uuid, port)
}

func (l *ciraLink) newAPI(cfg *config.Config, deps netsvc.Deps) (netsvc.Service, error) {
	var d api.DeviceDialer
	if cfg.CIRA.Enable {
		d = l
	}
	l.mu.Lock()
	if l.relays == nil {
		l.relays = api.NewRelayState()
	}
	r := l.relays
	l.mu.Unlock()
	return newAPI(cfg, deps, d, r)
}

func newDHCP(cfg *config.Config, deps netsvc.Deps) (netsvc.Service, error) {
	return dhcp.New(cfg, deps)
}

// newProvisioning wires provisioning to the domains' certificates in the
// store and to the appliance CA (created in a store made before amtd had
// one): the root devices trust for CIRA, the agent endpoint's certificate,
// and the certificates of devices whose profile turns TLS on.
func newProvisioning(cfg *config.Config, deps netsvc.Deps) (netsvc.Service, error) {
	opts := provision.Options{Chains: &provision.StoreChains{Store: deps.Store, Open: provcert.Open}, Version: deps.Version}
	if deps.Store != nil {
		now := time.Now
		if deps.Now != nil {
			now = deps.Now
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ca, created, err := pki.LoadOrInit(ctx, deps.Store, now(), cfg.Site.Hostname, "amtd")
		if err != nil {
			return nil, fmt.Errorf("provisioning: the appliance CA: %w", err)
		}
		if created && deps.Log != nil {
			deps.Log.Info("appliance CA created", "fingerprint", ca.Fingerprint())
		}
		opts.CIRARootDER, opts.DeviceCA = ca.RootDER(), ca
		if cfg.Provisioning.AgentListen != "" {
			sc, err := pki.NewServerCert(ca, []string{cfg.Site.Hostname}, cfg.Site.Addresses, now)
			if err != nil {
				return nil, fmt.Errorf("provisioning: the agent endpoint's certificate: %w", err)
			}
			opts.AgentCertificate = sc.GetCertificate
		}
	}
	return provision.New(cfg, deps, opts)
}

// newAPI serves the console API with the appliance certificate, the one
// devices already trust for CIRA (created here in a store made before amtd
// had a CA).
func newAPI(cfg *config.Config, deps netsvc.Deps, devices api.DeviceDialer, relays *api.RelayState) (netsvc.Service, error) {
	if deps.Store == nil {
		return nil, fmt.Errorf("api: needs the store")
	}
	now := time.Now
	if deps.Now != nil {
		now = deps.Now
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ca, created, err := pki.LoadOrInit(ctx, deps.Store, now(), cfg.Site.Hostname, "amtd")
	if err != nil {
		return nil, fmt.Errorf("api: the appliance CA: %w", err)
	}
	if created && deps.Log != nil {
		deps.Log.Info("appliance CA created", "fingerprint", ca.Fingerprint())
	}
	var names []string
	if cfg.Site.Hostname != "" {
		names = []string{cfg.Site.Hostname}
	}
	sc, err := pki.NewServerCert(ca, names, cfg.Site.Addresses, now)
	if err != nil {
		return nil, fmt.Errorf("api: the HTTPS certificate (from [Site] Hostname= and Address=): %w", err)
	}
	return api.New(cfg, deps, api.Options{Certificate: sc.GetCertificate, Devices: devices, Relays: relays})
}

// Optional interfaces a service may implement for STATUS= and `amtd status`.
type (
	// DeviceCounter is implemented by the CIRA relay: devices connected now.
	DeviceCounter interface{ ConnectedDevices() int }
	// ActivationCounter is implemented by provisioning: activations in progress.
	ActivationCounter interface{ ActivationsRunning() int }
	// ProvisioningReporter is implemented by provisioning: what runs, what
	// waits, and how it went, for `amtd status`.
	ProvisioningReporter interface {
		Provisioning(ctx context.Context) control.ProvisioningStatus
	}
	// Commander is implemented by services that answer control socket
	// commands (e.g. "devices"); the daemon registers them while the service runs.
	Commander interface {
		Commands() map[string]control.Handler
	}
)
