package daemon

import "amtd/netsvc/api"

// The API drops a device's CIRA link (DELETE /api/v1/devices/disconnect)
// through the DeviceDialer it is handed, when that can.
var _ api.DeviceDisconnecter = (*ciraLink)(nil)

// Disconnect implements api.DeviceDisconnecter with the running CIRA
// service; false when there is none or the device has no link.
func (l *ciraLink) Disconnect(uuid string) bool {
	svc := l.current()
	return svc != nil && svc.Disconnect(uuid)
}
