package pki

import (
	"crypto/tls"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// ServerCert keeps one server certificate for a set of names and addresses
// and issues a new one from the root when less than 30 days of the old one
// remain, so a listener that runs for years never presents an expired
// certificate. Use GetCertificate as tls.Config.GetCertificate.
type ServerCert struct {
	ca    *CA
	names []string
	ips   []netip.Addr
	now   func() time.Time

	mu   sync.Mutex
	cert *tls.Certificate
}

// NewServerCert issues the first certificate now, so that a bad name shows
// up when the service starts rather than at a device's first handshake.
func NewServerCert(ca *CA, names []string, ips []netip.Addr, now func() time.Time) (*ServerCert, error) {
	if now == nil {
		now = time.Now
	}
	s := &ServerCert{ca: ca, names: slices.Clone(names), ips: slices.Clone(ips), now: now}
	if _, err := s.Certificate(); err != nil {
		return nil, err
	}
	return s, nil
}

// Certificate returns the current certificate, issuing a new one first when
// the current one is due for renewal. Handshakes wait for the one issuance
// in progress rather than each issuing their own.
func (s *ServerCert) Certificate() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.cert != nil && now.Before(s.cert.Leaf.NotAfter.Add(-renewBefore)) {
		return s.cert, nil
	}
	c, err := s.ca.IssueServer(s.names, s.ips, now)
	if err != nil {
		if s.cert != nil && now.Before(s.cert.Leaf.NotAfter) {
			return s.cert, nil // still valid; try again at the next handshake
		}
		return nil, err
	}
	s.cert = &c
	return s.cert, nil
}

// GetCertificate implements tls.Config.GetCertificate.
func (s *ServerCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.Certificate()
}
