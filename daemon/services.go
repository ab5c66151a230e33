package daemon

import (
	"amtd/daemon/config"
	"amtd/daemon/control"
	"amtd/netsvc"
	"amtd/netsvc/dhcp"
	"amtd/netsvc/dns"
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
	return []Spec{
		// DNS goes before DHCP: leases hand out its address as the resolver
		// that answers ProvisionServer (spec/network.md §2).
		{Name: "dns", Enabled: func(c *config.Config) bool { return c.DNS.Enable }, New: newDNS},
		// The registrar puts ProvisionServer into the site's own DNS instead.
		{Name: "dns-registrar", Enabled: func(c *config.Config) bool { return c.Registrar.Enable }, New: newRegistrar},
		{Name: "dhcp", Enabled: func(c *config.Config) bool { return c.DHCP.Enable }, New: newDHCP},
	}
}

func newDNS(cfg *config.Config, deps netsvc.Deps) (netsvc.Service, error) {
	return dns.New(cfg, deps)
}

func newRegistrar(cfg *config.Config, deps netsvc.Deps) (netsvc.Service, error) {
	return dns.NewRegistrar(cfg, deps)
}

func newDHCP(cfg *config.Config, deps netsvc.Deps) (netsvc.Service, error) {
	return dhcp.New(cfg, deps)
}

// Optional interfaces a service may implement for STATUS= and `amtd status`.
type (
	// DeviceCounter is implemented by the CIRA relay: devices connected now.
	DeviceCounter interface{ ConnectedDevices() int }
	// ActivationCounter is implemented by provisioning: activations in progress.
	ActivationCounter interface{ ActivationsRunning() int }
	// Commander is implemented by services that answer control socket
	// commands (e.g. "devices"); the daemon registers them while the service runs.
	Commander interface {
		Commands() map[string]control.Handler
	}
)
