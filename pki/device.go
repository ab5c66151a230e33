package pki

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"time"
)

// deviceLife is how long a device's TLS certificate is valid; amtd issues a
// new one when it reconfigures the device.
const deviceLife = 2 * 365 * 24 * time.Hour

// IssueDevice certifies a key an AMT device generated (GenerateKeyPair) for
// its own TLS listener: CN cn, serverAuth, signed SHA-256 (which every AMT
// that does TLS 1.2 accepts), valid from a week back for two years or the
// root's end, whichever is first (spec/activation.md §9 step 5).
func (ca *CA) IssueDevice(pub *rsa.PublicKey, cn string, now time.Time) ([]byte, error) {
	if pub == nil || pub.N.BitLen() < 2048 {
		return nil, errors.New("pki: a device key must be RSA of 2048 bits or more")
	}
	serial, err := randSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:       serial,
		Subject:            pkix.Name{CommonName: cn},
		NotBefore:          now.Add(-serverBackdate),
		NotAfter:           now.Add(deviceLife),
		KeyUsage:           x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:        []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		SignatureAlgorithm: x509.SHA256WithRSA,
	}
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: issue device certificate %s: %w", cn, err)
	}
	return der, nil
}
