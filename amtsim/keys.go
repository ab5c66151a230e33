package amtsim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"sync"
	"time"
)

// KeyPool hands out real RSA-2048 keys. Generating one takes tens of
// milliseconds, so thousands of devices would spend minutes in
// GenerateKeyPair; the pool makes Size keys once and hands them out in
// turn, so devices share private keys. This is a simulation shortcut
// (docs/amtsim.md): every key is a real key and every certificate over it
// verifies, but two devices may hold the same one.
type KeyPool struct {
	Size int

	mu   sync.Mutex
	keys []*rsa.PrivateKey
	next int
}

// NewKeyPool returns a pool of size keys, generated on first demand.
func NewKeyPool(size int) *KeyPool {
	if size < 1 {
		size = 1
	}
	return &KeyPool{Size: size}
}

var (
	sharedOnce sync.Once
	shared     *KeyPool
)

func sharedPool() *KeyPool {
	sharedOnce.Do(func() { shared = NewKeyPool(4) })
	return shared
}

// Key returns the next key, generating it while the pool is not full.
func (p *KeyPool) Key() (*rsa.PrivateKey, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.keys) < p.Size {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		p.keys = append(p.keys, k)
		return k, nil
	}
	k := p.keys[p.next%len(p.keys)]
	p.next++
	return k, nil
}

// selfSigned makes the certificate AMT generates for itself when
// provisioning starts (spec/network.md §7); its subject is a guess
// ("Unknown" is unverified), so it names the device.
func selfSigned(key *rsa.PrivateKey, cn string, now time.Time) (tls.Certificate, []byte, error) {
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Intel(R) AMT"}},
		NotBefore:    now.Add(-24 * time.Hour),
		NotAfter:     now.AddDate(20, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, der, nil
}
