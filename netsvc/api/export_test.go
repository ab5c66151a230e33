package api

// For api_test (the daemon wiring test): simulated devices as amtd's
// activation leaves them.
var (
	AddSimDevice   = addSimDevice
	StartSimDevice = startSimDevice
)

// SimUUID is a device UUID for StartSimDevice.
const SimUUID = simUUID
