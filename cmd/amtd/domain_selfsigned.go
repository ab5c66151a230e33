package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"amtd/pki"
	"amtd/provcert"
	"amtd/secret"
	"amtd/store"
)

// A self-hosted provisioning root (issue 8): instead of buying a
// certificate per domain, the appliance makes a root of its own and a leaf
// for the domain. AMT trusts the root only once its hash is added to each
// device, in MEBx or by a USB setup.bin (spec/network.md), after which the
// domain works as one with a bought .pfx: the same checks, the same store
// row, the same activation (spec/activation.md §12, §14).
const (
	// AMT needs RSA of 2048 bits or more with SHA-2 throughout the chain
	// (spec/activation.md §12.3, §12.4). The root is typed in MEBx once per
	// device and should never change, hence the larger key.
	provRootBits = 3072
	provLeafBits = 2048
	// The root is valid from a year back (an AMT whose clock was never set
	// still accepts it) to 30 years ahead, as the appliance CA (pki).
	provRootBackdate = 365 * 24 * time.Hour
	provRootYears    = 30
	// The leaf is cheap to reissue from the sealed root ('amtd domain
	// replace-cert SUFFIX --self-signed'); two years keeps the renewal rare
	// and inside the 30-day expiry warning's reach.
	provLeafBackdate = 7 * 24 * time.Hour
	provLeafYears    = 2
)

// provRootKeyName is the name of a domain's self-signed provisioning root
// in the store's keys table. It is kept when the domain is removed, so that
// adding the domain again reuses the root devices already trust.
func provRootKeyName(suffix string) string { return "provroot/" + suffix }

// provRoot is a self-signed provisioning root and its private key.
type provRoot struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func randSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil // positive, never zero
}

// newProvRoot generates a root for the domain suffix: RSA 3072, SHA-256,
// self-signed CA. Its CN carries the suffix and a short key hash, so that
// two appliances' roots can be told apart in AMT's list of hashes.
func newProvRoot(suffix string, now time.Time) (*provRoot, error) {
	key, err := rsa.GenerateKey(rand.Reader, provRootBits)
	if err != nil {
		return nil, fmt.Errorf("generating the root key: %w", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("root key: %w", err)
	}
	ski := sha256.Sum256(spki)
	serial, err := randSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("amtd provisioning root %s %s", suffix, hex.EncodeToString(ski[:3])), Organization: []string{"amtd"}},
		NotBefore:             now.Add(-provRootBackdate),
		NotAfter:              now.AddDate(provRootYears, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		SubjectKeyId:          ski[:20],
		SignatureAlgorithm:    x509.SHA256WithRSA,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("self-signing the root: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the new root: %w", err)
	}
	return &provRoot{cert: cert, key: key}, nil
}

// marshal encodes the root as the keys table keeps a CA (store.KeyCA).
func (r *provRoot) marshal() (secret.Value, error) { return pki.EncodeCA(r.cert, r.key) }

// parseProvRoot decodes what marshal wrote (pki.DecodeCA checks that the key
// and the certificate belong together).
func parseProvRoot(v secret.Value) (*provRoot, error) {
	cert, key, err := pki.DecodeCA(v)
	if err != nil {
		return nil, err
	}
	return &provRoot{cert: cert, key: key}, nil
}

// issueLeaf makes the domain's provisioning certificate under the root
// and returns it as a .pfx under a random password: RSA 2048, SHA-256,
// serverAuth with Intel's AMT OID and OU (spec/activation.md §12.2). The CN
// is the suffix itself, which every matching rule of §13 accepts cleanly (it
// is the suffix, or a parent of a device's longer suffix).
func (r *provRoot) issueLeaf(suffix string, now time.Time) (pfx []byte, password secret.Value, err error) {
	key, err := rsa.GenerateKey(rand.Reader, provLeafBits)
	if err != nil {
		return nil, secret.Value{}, fmt.Errorf("generating the leaf key: %w", err)
	}
	serial, err := randSerial()
	if err != nil {
		return nil, secret.Value{}, err
	}
	notAfter := now.AddDate(provLeafYears, 0, 0)
	if notAfter.After(r.cert.NotAfter) {
		notAfter = r.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: suffix, Organization: []string{"amtd"}, OrganizationalUnit: []string{provcert.OUClientSetup}},
		DNSNames:              []string{suffix},
		NotBefore:             now.Add(-provLeafBackdate),
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		UnknownExtKeyUsage:    []asn1.ObjectIdentifier{provcert.OIDAMTProvisioning},
		AuthorityKeyId:        r.cert.SubjectKeyId,
		SignatureAlgorithm:    x509.SHA256WithRSA,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, r.cert, &key.PublicKey, r.key)
	if err != nil {
		return nil, secret.Value{}, fmt.Errorf("signing the leaf: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, secret.Value{}, fmt.Errorf("parsing the new leaf: %w", err)
	}
	// The password only protects the file inside the sealed store row; it
	// is random so that the .pfx is never stored under a guessable one.
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return nil, secret.Value{}, fmt.Errorf("pfx password: %w", err)
	}
	pw := []byte(base64.RawURLEncoding.EncodeToString(raw))
	clear(raw)
	defer clear(pw)
	pfx, err = pkcs12.Modern.Encode(key, leaf, []*x509.Certificate{r.cert}, string(pw))
	if err != nil {
		return nil, secret.Value{}, fmt.Errorf("encoding the .pfx: %w", err)
	}
	return pfx, secret.New(pw), nil
}

// selfSignedPFX returns a new .pfx for the domain under its self-signed
// root: the root already sealed in the store when there is one (a renewal,
// or a domain added again: devices keep trusting it), else a new root,
// which is sealed before the caller stores the domain. created says which.
func selfSignedPFX(ctx context.Context, keys *store.Keys, suffix, actor string, now time.Time) (pfx []byte, pw secret.Value, created bool, err error) {
	name := provRootKeyName(suffix)
	var root *provRoot
	v, err := keys.Get(ctx, name)
	switch {
	case err == nil:
		root, err = parseProvRoot(v)
		v.Wipe()
		if err != nil {
			return nil, secret.Value{}, false, fmt.Errorf("key %s: %w", name, err)
		}
	case errors.Is(err, store.ErrNotFound):
		if root, err = newProvRoot(suffix, now); err != nil {
			return nil, secret.Value{}, false, err
		}
		created = true
	default:
		return nil, secret.Value{}, false, err
	}
	pfx, pw, err = root.issueLeaf(suffix, now)
	if err != nil {
		return nil, secret.Value{}, false, err
	}
	if created {
		// The root first: a domain whose root key was lost could never get
		// a new leaf that devices trust. A root left without its domain
		// (the domain's Put failed) is reused by the next attempt.
		sealed, err := root.marshal()
		if err == nil {
			err = keys.Put(ctx, name, store.KeyCA, sealed, actor, "self-signed provisioning root for "+suffix)
			sealed.Wipe()
		}
		if err != nil {
			clear(pfx)
			pw.Wipe()
			return nil, secret.Value{}, false, err
		}
	}
	return pfx, pw, created, nil
}

// writeSelfSignedRoot tells the administrator the one thing a self-signed
// domain needs before devices accept it: the root's hash on each device.
func writeSelfSignedRoot(w io.Writer, suffix, rootSHA string, created bool) {
	what := "The provisioning root of " + suffix + " is this appliance's own"
	if created {
		what += " (new, sealed in the store as " + provRootKeyName(suffix) + ")"
	} else {
		what += " (the one already in the store as " + provRootKeyName(suffix) + ": devices that trust it need nothing new)"
	}
	fmt.Fprintf(w, "\n%s.\nNo device trusts it by default. Its SHA-256 is:\n\n    %s\n\n", what, rootSHA)
	fmt.Fprintf(w, "Add this hash on each device before activation: in MEBx (Intel AMT Configuration >\n"+
		"Remote Setup And Configuration > TLS PKI > Manage Hashes), or by USB with\n"+
		"'amtd usb-setup --domain %s --out FILE', which also sets the PKI DNS suffix.\n", suffix)
}
