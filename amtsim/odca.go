package amtsim

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"sync"
	"time"
)

// ODCA is a stand-in for Intel's On-Die CA: a root that issues each
// simulated AMT 19+ device the certificate chain its local TLS port presents
// before provisioning. Real devices carry a chain up to Intel's ODCA root
// (spec/network.md §7); the simulator cannot, so a test makes its own root
// and tells amtd to trust it.
type ODCA struct {
	Root *x509.Certificate
	key  crypto.Signer

	mu     sync.Mutex
	chains map[*Device]*tls.Certificate
}

// NewODCA makes a root shaped like Intel's: ECDSA P-384, subject
// O=Intel Corporation, OU=OnDie CA Root Cert Signing, with "amtsim" in the
// common name so it is never mistaken for the real one.
func NewODCA() (*ODCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := odcaTemplate(pkix.Name{Organization: []string{"Intel Corporation"}, OrganizationalUnit: []string{"OnDie CA Root Cert Signing"},
		CommonName: "amtsim simulated On-Die CA root"}, true)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &ODCA{Root: root, key: key, chains: map[*Device]*tls.Certificate{}}, nil
}

// LoadODCA reads a simulated ODCA root from path (PEM certificate and EC
// key), creating it there (mode 0600) when the file does not exist, and
// writes the certificate alone to path+".crt" for the server to trust.
func LoadODCA(path string) (*ODCA, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		o, err := NewODCA()
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalECPrivateKey(o.key.(*ecdsa.PrivateKey))
		if err != nil {
			return nil, err
		}
		crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: o.Root.Raw})
		out := append(crt, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})...)
		if err := os.WriteFile(path, out, 0o600); err != nil {
			return nil, fmt.Errorf("amtsim: ODCA root: %w", err)
		}
		if err := os.WriteFile(path+".crt", crt, 0o644); err != nil {
			return nil, fmt.Errorf("amtsim: ODCA root: %w", err)
		}
		return o, nil
	}
	if err != nil {
		return nil, fmt.Errorf("amtsim: ODCA root: %w", err)
	}
	o := &ODCA{chains: map[*Device]*tls.Certificate{}}
	for blk, rest := pem.Decode(b); blk != nil; blk, rest = pem.Decode(rest) {
		switch blk.Type {
		case "CERTIFICATE":
			o.Root, err = x509.ParseCertificate(blk.Bytes)
		case "EC PRIVATE KEY":
			o.key, err = x509.ParseECPrivateKey(blk.Bytes)
		}
		if err != nil {
			return nil, fmt.Errorf("amtsim: ODCA root %s: %w", path, err)
		}
	}
	if o.Root == nil || o.key == nil {
		return nil, fmt.Errorf("amtsim: ODCA root %s: want a CERTIFICATE and an EC PRIVATE KEY block", path)
	}
	return o, nil
}

var (
	defaultODCAOnce sync.Once
	defaultODCA     *ODCA
	defaultODCAErr  error
)

// DefaultODCA is the process-wide simulated ODCA root, used when RPCOptions
// names none.
func DefaultODCA() (*ODCA, error) {
	defaultODCAOnce.Do(func() { defaultODCA, defaultODCAErr = NewODCA() })
	return defaultODCA, defaultODCAErr
}

func odcaTemplate(subject pkix.Name, ca bool) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 96))
	t := &x509.Certificate{
		SerialNumber: serial, Subject: subject,
		NotBefore: time.Date(2019, 4, 3, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2049, 12, 31, 23, 59, 59, 0, time.UTC),
		BasicConstraintsValid: true, IsCA: ca,
	}
	if ca {
		t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		// The RCFG leaf carries no serverAuth EKU and no SAN; RPS and rpc-go
		// skip EKU and name checks for it (spec/network.md §7).
		t.KeyUsage = x509.KeyUsageDigitalSignature
	}
	return t
}

// odcaChainLevels are the five certificates below the root, leaf first, in
// the order rpc-go checks them (internal/certs/lmsTls.go): the leaf's CN is
// "iAMT CSME IDevID RCFG"; certificate 3 is the ROM CA, whose issuer's OU
// starts with "ODCA 2 CSME P". The names in between are guesses.
var odcaChainLevels = []pkix.Name{
	{Organization: []string{"Intel Corporation"}, CommonName: "iAMT CSME IDevID RCFG"},
	{Organization: []string{"Intel Corporation"}, OrganizationalUnit: []string{"CSME"}, CommonName: "CSME MTL PCH iAMT CA"},
	{Organization: []string{"Intel Corporation"}, OrganizationalUnit: []string{"CSME"}, CommonName: "CSME MTL PCH Kernel CA"},
	{Organization: []string{"Intel Corporation"}, OrganizationalUnit: []string{"CSME"}, CommonName: "CSME MTL PCH ROM CA"},
	{Organization: []string{"Intel Corporation"}, OrganizationalUnit: []string{"ODCA 2 CSME P MTL"}, CommonName: "www.intel.com"},
}

// Chain returns d's pre-provisioning certificate: six certificates, leaf
// first and this root last, made on first use and kept for the life of the
// process, as a device's is burned in.
func (o *ODCA) Chain(d *Device) (*tls.Certificate, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if c, ok := o.chains[d]; ok {
		return c, nil
	}
	var (
		ders      [][]byte
		parent    = o.Root
		parentKey = o.key
		leafKey   crypto.Signer
	)
	for i := len(odcaChainLevels) - 1; i >= 0; i-- {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		name := odcaChainLevels[i]
		if i == 0 {
			name.SerialNumber = d.UUID.String()
		}
		der, err := x509.CreateCertificate(rand.Reader, odcaTemplate(name, i > 0), parent, key.Public(), parentKey)
		if err != nil {
			return nil, fmt.Errorf("amtsim: ODCA chain: %w", err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		ders = append([][]byte{der}, ders...)
		parent, parentKey, leafKey = c, key, key
	}
	ders = append(ders, o.Root.Raw)
	leaf, _ := x509.ParseCertificate(ders[0])
	c := &tls.Certificate{Certificate: ders, PrivateKey: leafKey, Leaf: leaf}
	o.chains[d] = c
	return c, nil
}
