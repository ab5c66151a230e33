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
	// Provisioning is what provisioning is doing; nil when it is not
	// running.
	Provisioning *ProvisioningStatus `json:"provisioning,omitempty"`
	Sockets      []SocketStatus      `json:"sockets,omitempty"`
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

// ProvisioningStatus is provisioning's progress on long work: what runs now
// and at which step, what waits, and how it went since Since.
type ProvisioningStatus struct {
	// MaxConcurrent is [Provisioning] MaxConcurrentActivations=;
	// MaxQueued how many devices may wait for a free place.
	MaxConcurrent int `json:"max_concurrent"`
	MaxQueued     int `json:"max_queued"`
	// Running are the activations in progress, oldest first: bare-metal
	// ones and agent sessions.
	Running []ActivationProgress `json:"running"`
	// Queued are devices whose hello came while every place was taken,
	// first come first.
	Queued []QueuedDevice `json:"queued"`
	// Since is when the counts started: the daemon's start or its last
	// reload, which rebuilds the service.
	Since time.Time `json:"since"`
	// Succeeded and Failed count activations and profile configurations
	// that ended since Since.
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	// RecentFailures are the last few failures, newest first.
	RecentFailures []ActivationFailure `json:"recent_failures"`
}

// ActivationProgress is one device being worked on.
type ActivationProgress struct {
	UUID string `json:"uuid"`
	// Path is "hello" (bare metal) or "agent" (an rpc-go session).
	Path string `json:"path"`
	// Address is where the device's hello or the agent's session came from.
	Address string `json:"address,omitempty"`
	// Started is when amtd took the device on (the hello's activation, or
	// the agent session's claim of the device).
	Started time.Time `json:"started,omitzero"`
	// Step is the last step the device's history records (amtd devices
	// show lists them all), StepDetail what it said and StepSince when.
	Step       string    `json:"step,omitempty"`
	StepDetail string    `json:"step_detail,omitempty"`
	StepSince  time.Time `json:"step_since,omitzero"`
}

// QueuedDevice is a device waiting for a free place.
type QueuedDevice struct {
	UUID    string    `json:"uuid"`
	Address string    `json:"address"`
	Since   time.Time `json:"since"`
}

// ActivationFailure is one failed activation in plain words.
type ActivationFailure struct {
	UUID string    `json:"uuid"`
	At   time.Time `json:"at"`
	// Step is where it failed; Reason the error, as in the device's
	// last_error; Kind its sort (timeout, network, setup-refused, ...),
	// the reason label of amtd_activation_failures_total.
	Step   string `json:"step"`
	Kind   string `json:"kind"`
	Reason string `json:"reason"`
}
