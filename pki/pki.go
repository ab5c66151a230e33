// Package pki is the appliance's certificate authority: one self-signed root
// created at `amtd store init` and sealed in the store's keys table, and the
// server certificates amtd's TLS listeners present, issued from it.
//
// AMT checks the CIRA server's certificate against the root added with
// AddTrustedRootCertificate and against the configured FQDN or address
// (spec/apf.md §8), so the root must outlive every device configuration: it
// is created once and never rotated implicitly. Server certificates are cheap
// and live in memory only; a restart issues new ones from the same root.
//
// Algorithms follow what AMT accepts: RSA (the legacy TLS mode needs RSA key
// exchange, which needs an RSA leaf), at least 2048 bits, no SHA-1 anywhere
// in the chain (spec/network.md §6). Like MPS, the root is RSA-3072 and the
// server certificate RSA-2048, both signed with SHA-384 (spec/apf.md §8).
package pki

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"time"

	"amtd/secret"
	"amtd/store"
)

// RootName is the name of the appliance CA in the store's keys table. There
// is one root per store (one appliance, one site); it is not named after the
// site's domain, because renaming the domain must not change the root every
// configured device trusts.
const RootName = "ca/appliance"

// Key sizes and lifetimes.
const (
	rootBits   = 3072
	serverBits = 2048
	// The root is valid from a year back to 30 years ahead, as MPS's: an AMT
	// whose clock was never set still accepts it (spec/apf.md §8).
	rootBackdate = 365 * 24 * time.Hour
	rootYears    = 30
	// Server certificates: a week back for clock skew, a year ahead, renewed
	// when less than renewBefore remains.
	serverBackdate = 7 * 24 * time.Hour
	serverLife     = 365 * 24 * time.Hour
	renewBefore    = 30 * 24 * time.Hour
)

// oidNSCertType is Netscape's certificate-type extension. Evidence on whether
// AMT needs nsCertType=server conflicts (deployment#165); MPS includes it and
// it costs nothing (spec/apf.md §8).
var oidNSCertType = asn1.ObjectIdentifier{2, 16, 840, 1, 113730, 1, 1}

// nsCertTypeServer is the BIT STRING with bit 1 (SSL server) set.
var nsCertTypeServer = func() []byte {
	b, err := asn1.Marshal(asn1.BitString{Bytes: []byte{0x40}, BitLength: 2})
	if err != nil {
		panic(err) // a constant; cannot fail
	}
	return b
}()

// CA is the appliance root: its certificate and private key.
type CA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// New generates a new root certificate and key. Its subject CN is
// "amtd root <6 hex digits>" (MPS uses "MPSRoot-<6 hex>"), so that roots of
// two appliances can be told apart in AMT's certificate store.
func New(now time.Time, org string) (*CA, error) {
	key, err := rsa.GenerateKey(rand.Reader, rootBits)
	if err != nil {
		return nil, fmt.Errorf("pki: generate root key: %w", err)
	}
	serial, err := randSerial()
	if err != nil {
		return nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("pki: root key: %w", err)
	}
	ski := sha256.Sum256(spki)
	subject := pkix.Name{CommonName: "amtd root " + hex.EncodeToString(ski[:3])}
	if org != "" {
		subject.Organization = []string{org}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-rootBackdate),
		NotAfter:              now.AddDate(rootYears, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		SubjectKeyId:          ski[:20],
		SignatureAlgorithm:    x509.SHA384WithRSA,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: self-sign root: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse new root: %w", err)
	}
	return &CA{cert: cert, key: key}, nil
}

func randSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil // positive, never zero
}

// Root is the root certificate.
func (ca *CA) Root() *x509.Certificate { return ca.cert }

// RootDER is the root certificate in DER, as AddTrustedRootCertificate takes
// it (base64 of this).
func (ca *CA) RootDER() []byte { return ca.cert.Raw }

// Fingerprint is the SHA-256 of the root certificate in hex, for logs and the
// operator (AMT and MEBx show certificate hashes this way).
func (ca *CA) Fingerprint() string {
	s := sha256.Sum256(ca.cert.Raw)
	return hex.EncodeToString(s[:])
}

// marshal encodes the root as PEM: the certificate, then the PKCS #8 key.
func (ca *CA) marshal() (secret.Value, error) { return EncodeCA(ca.cert, ca.key) }

// parse decodes what marshal wrote and checks that key and certificate match.
func parse(v secret.Value) (*CA, error) {
	cert, key, err := DecodeCA(v)
	if err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key}, nil
}

// EncodeCA encodes a CA as the keys table keeps one (store.KeyCA): the
// certificate, then the PKCS #8 key, in PEM. The appliance root and the
// self-hosted provisioning roots (amtd domain add --self-signed) share it.
func EncodeCA(cert *x509.Certificate, key crypto.Signer) (secret.Value, error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return secret.Value{}, fmt.Errorf("pki: encode root key: %w", err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	b = append(b, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	clear(keyDER)
	v := secret.New(b)
	clear(b)
	return v, nil
}

// DecodeCA decodes what EncodeCA wrote and checks that the key and the
// certificate belong together and that the certificate is a CA.
func DecodeCA(v secret.Value) (*x509.Certificate, crypto.Signer, error) {
	rest := v.Reveal()
	var cert *x509.Certificate
	var key crypto.Signer
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("pki: stored root certificate: %w", err)
			}
			cert = c
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return nil, nil, errors.New("pki: stored root key does not parse as PKCS #8")
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, nil, fmt.Errorf("pki: stored root key of type %T cannot sign", k)
			}
			key = s
		}
	}
	if cert == nil || key == nil {
		return nil, nil, errors.New("pki: stored root lacks its certificate or its key")
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, nil, errors.New("pki: stored root key does not match the root certificate")
	}
	if !cert.IsCA {
		return nil, nil, errors.New("pki: stored root certificate is not a CA")
	}
	return cert, key, nil
}

// ErrExists is returned by Init when the store already holds a root.
var ErrExists = errors.New("pki: the store already holds an appliance root")

// Init creates the appliance root and seals it in the store under RootName.
// It refuses (ErrExists) when one is there: replacing the root would cut off
// every device configured to trust the old one.
func Init(ctx context.Context, st *store.Store, now time.Time, org, actor string) (*CA, error) {
	if _, err := st.Keys().Kind(ctx, RootName); err == nil {
		return nil, ErrExists
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("pki: %w", err)
	}
	ca, err := New(now, org)
	if err != nil {
		return nil, err
	}
	v, err := ca.marshal()
	if err != nil {
		return nil, err
	}
	defer v.Wipe()
	if err := st.Keys().Put(ctx, RootName, store.KeyCA, v, actor, "appliance root created"); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return ca, nil
}

// Load opens the appliance root from the store. It wraps store.ErrNotFound
// when there is none (a store made before amtd had a CA: see LoadOrInit).
func Load(ctx context.Context, st *store.Store) (*CA, error) {
	v, err := st.Keys().Get(ctx, RootName)
	if err != nil {
		return nil, fmt.Errorf("pki: appliance root: %w", err)
	}
	defer v.Wipe()
	return parse(v)
}

// LoadOrInit opens the appliance root, creating it when the store has none
// (created reports that). Stores initialised before amtd had a CA get one
// the first time a service needs it.
func LoadOrInit(ctx context.Context, st *store.Store, now time.Time, org, actor string) (ca *CA, created bool, err error) {
	ca, err = Load(ctx, st)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return ca, false, err
	}
	ca, err = Init(ctx, st, now, org, actor)
	if errors.Is(err, ErrExists) { // created by someone else meanwhile
		ca, err = Load(ctx, st)
		return ca, false, err
	}
	return ca, err == nil, err
}

// IssueServer issues a server certificate for the given DNS names and IP
// addresses, valid from a week before now to a year after, and returns it
// with the chain (leaf, root): AMT 14 reportedly needs the root sent too
// (spec/apf.md §8). The subject CN is the first name, or the first address
// when there is no name, since AMT compares the CN with AddMpServer's CN.
func (ca *CA) IssueServer(names []string, ips []netip.Addr, now time.Time) (tls.Certificate, error) {
	if len(names) == 0 && len(ips) == 0 {
		return tls.Certificate{}, errors.New("pki: a server certificate needs a name or an address")
	}
	key, err := rsa.GenerateKey(rand.Reader, serverBits)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: generate server key: %w", err)
	}
	serial, err := randSerial()
	if err != nil {
		return tls.Certificate{}, err
	}
	cn := ""
	if len(names) > 0 {
		cn = names[0]
	} else {
		cn = ips[0].String()
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-serverBackdate),
		NotAfter:     now.Add(serverLife),
		// KeyEncipherment: the legacy mode's RSA key exchange encrypts the
		// premaster secret to this key.
		KeyUsage:           x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:        []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:           append([]string(nil), names...),
		SignatureAlgorithm: x509.SHA384WithRSA,
		ExtraExtensions:    []pkix.Extension{{Id: oidNSCertType, Value: nsCertTypeServer}},
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.Unmap().AsSlice()))
	}
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: issue server certificate for %s: %w", cn, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: parse issued certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}
