// Package netsvc holds what every amtd network service shares: the Deps wiring
// struct, the Service lifecycle, and the registry of listening sockets.
//
// Each service lives in its own package (netsvc/dhcp, netsvc/dns, ...) and
// exposes New(cfg, deps) (*Service, error), which validates and allocates but
// does not touch the network; Start, which begins serving on sockets taken from
// deps.Listeners; Close, which stops and frees what Start made; and Health.
// The shape follows Caddy's module lifecycle (New → Provision → Validate → use →
// Cleanup), see ../shared/STYLE.md.
package netsvc

import (
	"context"
	"log/slog"
	"time"

	"amtd/daemon/config"
	"amtd/metrics"
	"amtd/store"
)

// Deps is built once by cmd/amtd and handed to every service. Nothing in amtd
// reaches for a global: what a service needs comes from here.
type Deps struct {
	Log       *slog.Logger
	Store     *store.Store
	Now       func() time.Time
	Metrics   *metrics.Registry
	Listeners *Listeners
	Hosts     *Hosts
	// Version is amtd's version: shown by `amtd status`, and sent to
	// rpc-go agents.
	Version string
}

// Service is one network service of the daemon.
type Service interface {
	// Name is the short name used in logs, STATUS= and `amtd status` (e.g. "dns").
	Name() string
	// Start begins serving. It returns once the sockets are in use; serving
	// continues in goroutines until Close. An error leaves nothing running.
	Start(ctx context.Context) error
	// Close stops accepting, drains in-flight work until ctx ends, and releases
	// what Start made. It is safe to call on a service that never started.
	Close(ctx context.Context) error
	// Health returns nil while the service is doing its job. The daemon stops
	// feeding the systemd watchdog while any service reports an error, so a
	// health check must be cheap and must fail when the service is wedged.
	Health(ctx context.Context) error
}

// Reloader is implemented by services that can take a new configuration in
// place, keeping their connections (the CIRA relay must not drop devices on a
// reload). Reload must validate everything before changing anything: an error
// leaves the service running on its old configuration.
//
// Services that do not implement Reloader are rebuilt on reload: the daemon
// builds the new instance on the same sockets (see Listeners), starts it, and
// only then closes the old one.
type Reloader interface {
	Reload(ctx context.Context, cfg *config.Config) error
}

// Status is an optional interface: a service that has a one-line summary for
// STATUS= and `amtd status` (e.g. "12 leases", "3 devices connected").
type Status interface {
	Status() string
}
