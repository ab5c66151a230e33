// Package provcert opens and checks Intel AMT provisioning certificates: the
// .pfx (PKCS#12) bundle a vendor sells for a domain, with the private key
// amtd signs the activation nonce with (spec/activation.md §6, §12, §13).
//
// Load decodes a file and builds the chain from the leaf by issuer links;
// Bundle.Check then runs every check of spec/activation.md §12 and returns
// each failure as one Problem sentence saying what is wrong and what to do.
// The .pfx comes from an administrator's upload and is parsed as untrusted
// input: its size and its key-derivation work are bounded before the
// PKCS#12 decoder sees it.
package provcert

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"

	"software.sslmate.com/src/go-pkcs12"

	"amtd/amt/roots"
)

// MaxPFXSize bounds the file Load accepts. A vendor .pfx with a four-deep
// chain is under 10 KiB.
const MaxPFXSize = 256 << 10

// Bundle is a decoded provisioning certificate: the private key, the leaf it
// belongs to and the chain above it, ordered by issuer links.
type Bundle struct {
	// Key is the private key of the file (AMT needs RSA: see Check).
	Key crypto.Signer
	// Leaf is the certificate whose public key is Key's.
	Leaf *x509.Certificate
	// Chain is the leaf first, then each issuer in turn, ending at Root when
	// the file holds one.
	Chain []*x509.Certificate
	// Root is the self-signed certificate the chain ends at, or nil.
	Root *x509.Certificate
	// Unused are certificates in the file that are not on the leaf's chain.
	Unused []*x509.Certificate

	// linkProblems are what chain building found (missing issuer, bad
	// signature); Check reports them with the rest.
	linkProblems Problems
}

// Load decodes a .pfx with its password and builds the leaf's chain. Only
// what makes the file unusable is an error here (not PKCS#12, wrong
// password, no key, a key that belongs to no certificate in the file); the
// error is a Problem. Everything else is reported by Check.
func Load(pfx, password []byte) (*Bundle, error) {
	if len(pfx) == 0 {
		return nil, problem(CheckDecode, "the file is empty: give the .pfx (PKCS#12) file exported with the private key")
	}
	if len(pfx) > MaxPFXSize {
		return nil, problem(CheckDecode, "the file is %d KiB, over the %d KiB a provisioning .pfx can need: give the .pfx with the key and its chain only", len(pfx)>>10, MaxPFXSize>>10)
	}
	if bytes.HasPrefix(bytes.TrimLeft(pfx, " \t\r\n"), []byte("-----BEGIN")) {
		return nil, problem(CheckDecode, "the file is PEM text, not a .pfx: bundle it with 'openssl pkcs12 -export -inkey KEY.pem -in CERT.pem -certfile CHAIN.pem -out DOMAIN.pfx'")
	}
	if err := checkWork(pfx); err != nil {
		return nil, err
	}
	key, first, cas, err := pkcs12.DecodeChain(pfx, string(password))
	if err != nil {
		return nil, decodeProblem(err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, problem(CheckKey, "the private key in the file is of type %T, which cannot sign: export the .pfx again with the certificate's RSA key", key)
	}
	certs := append([]*x509.Certificate{first}, cas...)
	// The leaf is the certificate of the key, wherever it sits in the file:
	// Windows and OpenSSL write different orders.
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := signer.Public().(equaler)
	if !ok {
		return nil, problem(CheckKey, "the private key in the file is of type %T, which amtd cannot compare with a certificate: export the .pfx again with the certificate's RSA key", key)
	}
	var leaf *x509.Certificate
	var rest []*x509.Certificate
	for _, c := range certs {
		if leaf == nil && pub.Equal(c.PublicKey) {
			leaf = c
			continue
		}
		rest = append(rest, c)
	}
	if leaf == nil {
		return nil, problem(CheckKey, "the private key in the file belongs to none of its %d certificate(s): export the .pfx again from the machine that made the certificate request, with the private key", len(certs))
	}
	b := &Bundle{Key: signer, Leaf: leaf}
	b.Chain, b.Root, b.Unused, b.linkProblems = buildChain(leaf, rest)
	return b, nil
}

// decodeProblem turns a go-pkcs12 error into a sentence for the person
// who exported the file.
func decodeProblem(err error) error {
	var ni pkcs12.NotImplementedError
	switch {
	case errors.Is(err, pkcs12.ErrIncorrectPassword), errors.Is(err, pkcs12.ErrDecryption):
		return problem(CheckDecode, "the password does not open the file: give the password set when the .pfx was exported")
	case errors.As(err, &ni):
		return problem(CheckDecode, "the file uses an encoding amtd cannot read (%v): export it again as PKCS#12 with AES-256 or 3DES", err)
	}
	return problem(CheckDecode, "the file is not a readable .pfx (%v): export the certificate with its private key and full chain as PKCS#12 (.pfx/.p12)", err)
}

// TLSCertificate is the chain to present to AMT, leaf first and root last,
// with the leaf's key.
func (b *Bundle) TLSCertificate() tls.Certificate {
	raw := make([][]byte, len(b.Chain))
	for i, c := range b.Chain {
		raw[i] = c.Raw
	}
	return tls.Certificate{Certificate: raw, PrivateKey: b.Key, Leaf: b.Leaf}
}

// RootSHA256 is the lower-case hex SHA-256 of the root's DER: the hash AMT
// looks for in its trusted list (spec/activation.md §14). It is "" when the
// file holds no root.
func (b *Bundle) RootSHA256() string {
	if b.Root == nil {
		return ""
	}
	sum := sha256.Sum256(b.Root.Raw)
	return hex.EncodeToString(sum[:])
}

// NotDefaultRoot is the verdict for a root outside the default list.
const NotDefaultRoot = "not a default root: devices need its hash added in MEBx or by USB"

// RootVerdict says whether the root with this SHA-256 (hex) is one AMT
// trusts out of the box (amt/roots), for reports.
func RootVerdict(sha256Hex string) string {
	if sha256Hex == "" {
		return "no root in the file"
	}
	if r, ok := roots.LookupHex(sha256Hex); ok {
		return fmt.Sprintf("default AMT root #%d (%s)", r.Index, r.CA)
	}
	return NotDefaultRoot
}

// Open decodes a stored .pfx into the chain to present and its root, as
// netsvc/provision.OpenPFX wants. It needs what activation cannot do
// without (a key matching a leaf, a self-signed root at the end of the
// chain); the policy checks were made when the file was added.
func Open(pfx, password []byte) (tls.Certificate, *x509.Certificate, error) {
	b, err := Load(pfx, password)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	if b.Root == nil {
		return tls.Certificate{}, nil, b.rootProblem()
	}
	return b.TLSCertificate(), b.Root, nil
}

// name is how a certificate is called in a message.
func name(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return c.Subject.String()
}
