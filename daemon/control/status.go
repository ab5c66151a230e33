package control

import "time"

// StatusReport is the result of the "status" command: what `amtd status`
// shows a person, and what `amtd status --json` gives a script.
type StatusReport struct {
	Version   string    `json:"version"`
	PID       int       `json:"pid"`
	Config    string    `json:"config"`
	Store     string    `json:"store"`
	StartedAt time.Time `json:"started_at"`
	// UptimeSeconds is whole seconds since StartedAt, by the daemon's clock.
	UptimeSeconds int64 `json:"uptime_seconds"`
	// Summary is the line the daemon sends systemd as STATUS=.
	Summary     string          `json:"summary"`
	Services    []ServiceStatus `json:"services"`
	Devices     DeviceCounts    `json:"devices"`
	Activations int             `json:"activations_running"`
	Sockets     []SocketStatus  `json:"sockets,omitempty"`
	// LastReload is nil until the first SIGHUP.
	LastReload *ReloadResult `json:"last_reload,omitempty"`
}

// Service states.
const (
	StateUp     = "up"     // started; see Health
	StateFailed = "failed" // could not be (re)started; see Error
)

// ServiceStatus is one service's line.
type ServiceStatus struct {
	Name  string `json:"name"`
	State string `json:"state"`
	// Health is "ok" or the error the service's health check returned.
	Health  string `json:"health"`
	Summary string `json:"summary,omitempty"`
	Error   string `json:"error,omitempty"`
}

// DeviceCounts: Known from the store, Connected over CIRA.
type DeviceCounts struct {
	Known     int    `json:"known"`
	Connected int    `json:"connected"`
	Error     string `json:"error,omitempty"` // the store could not count
}

// SocketStatus is one socket of the daemon's registry.
type SocketStatus struct {
	Name      string `json:"name"`
	Activated bool   `json:"activated"` // passed in by systemd
	Kind      string `json:"kind"`      // stream, datagram, unix
	Address   string `json:"address"`
}

// ReloadResult is the outcome of the last reload (SIGHUP).
type ReloadResult struct {
	At time.Time `json:"at"`
	OK bool      `json:"ok"`
	// Errors are FILE:LINE: messages for an invalid file, or per-service
	// failures; empty when OK.
	Errors []string `json:"errors,omitempty"`
}
