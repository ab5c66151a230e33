package cira

import (
	"slices"

	"amtd/store"
)

// BoundPorts returns the ports uuid's live link forwards (tcpip-forward,
// spec/apf.md §4 step 6), as the link holds them now, and whether the
// device has a link here. The device row in the store carries the same
// list but is written every few seconds, so it lags a link that just came
// up; Dial checks against this one.
func (s *Service) BoundPorts(uuid string) ([]uint16, bool) {
	u, err := store.NormalizeUUID(uuid)
	if err != nil {
		return nil, false
	}
	sess := s.reg.get(u)
	if sess == nil {
		return nil, false
	}
	sess.mu.Lock()
	defer sess.mu.Unlock()
	return slices.Clone(sess.ports), true
}
