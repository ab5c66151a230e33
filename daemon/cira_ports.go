package daemon

import "amtd/netsvc/api"

// The relay picks a device's redirection port (16994 or 16995) from the
// ports its live CIRA link forwards, through the DeviceDialer it is handed,
// when that can.
var _ api.DevicePorts = (*ciraLink)(nil)

// BoundPorts implements api.DevicePorts with the running CIRA service;
// false when there is none or the device has no link.
func (l *ciraLink) BoundPorts(uuid string) ([]uint16, bool) {
	svc := l.current()
	if svc == nil {
		return nil, false
	}
	return svc.BoundPorts(uuid)
}
