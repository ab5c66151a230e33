package cira

import (
	"amtd/amt/apf"
	"amtd/store"
)

// endConsole is why a link ended when the console asked for it.
const endConsole = "console"

// Disconnect drops uuid's CIRA link (any case) with DISCONNECT(by
// application), as MPS's DELETE /api/v1/devices/disconnect destroys the
// socket (spec/redirection.md §7.1). AMT connects again by its own policy.
// It reports whether the device had a link here.
func (s *Service) Disconnect(uuid string) bool {
	u, err := store.NormalizeUUID(uuid)
	if err != nil {
		return false
	}
	sess := s.reg.get(u)
	if sess == nil {
		return false
	}
	sess.kick(apf.DisconnectByApplication, endConsole)
	return true
}
