package provcert

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"slices"
	"time"

	"amtd/amt/roots"
)

// Policy is what Check measures a bundle against.
type Policy struct {
	// Suffix is the domain the certificate is added for; "" skips the
	// domain check.
	Suffix string
	// Now is the time validity is judged at; zero means time.Now().
	Now time.Time
}

// OIDAMTProvisioning is Intel's extended key usage for AMT remote
// configuration (spec/activation.md §12.2).
var OIDAMTProvisioning = asn1.ObjectIdentifier{2, 16, 840, 1, 113741, 1, 2, 3}

// OUClientSetup is the subject OU that marks a provisioning certificate
// instead of the OID; AMT compares it case-sensitively (§12.2).
const OUClientSetup = "Intel(R) Client Setup Certificate"

// MinRSABits is the smallest RSA key AMT accepts anywhere in the chain (§12.4).
const MinRSABits = 2048

// Check runs every check of spec/activation.md §12 on the bundle and returns
// what it finds, errors and warnings, in the order of the Check constants.
// An empty result means the certificate is good for the suffix at that time.
func (b *Bundle) Check(pol Policy) Problems {
	now := pol.Now
	if now.IsZero() {
		now = time.Now()
	}
	var ps Problems
	leaf := b.Leaf

	// §12.1: the key is RSA (it was matched with the leaf by Load).
	if k := b.Key.Public(); !isRSA(k) {
		ps = append(ps, problem(CheckKey, "the private key is %s, not RSA: AMT provisioning certificates must have an RSA key of %d bits or more; order a new one with an RSA key", keyKind(k), MinRSABits))
	}

	// §12.2: serverAuth, and the AMT OID or the OU.
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		ps = append(ps, problem(CheckServerAuth, "the leaf %q lacks the Server Authentication key usage (1.3.6.1.5.5.7.3.1) AMT requires: order an Intel vPro/AMT provisioning certificate, which has it", name(leaf)))
	}
	if !hasAMTPurpose(leaf) {
		ps = append(ps, problem(CheckPurpose, "the leaf %q is not an AMT provisioning certificate: it has neither the key usage %s nor the OU %q; order an Intel vPro/AMT provisioning certificate (Sectigo, DigiCert, Entrust, GoDaddy) or add that key usage on your own CA", name(leaf), OIDAMTProvisioning, OUClientSetup))
	}

	// §12.3 and §12.4, certificate by certificate up the chain.
	for _, c := range b.Chain {
		if !sha2(c.SignatureAlgorithm) {
			ps = append(ps, problem(CheckSignature, "%q is signed with %v: AMT 14 and later refuse SHA-1 (and anything but SHA-2) anywhere in the chain; get a certificate that chains to SHA-2 signatures only, root included", name(c), c.SignatureAlgorithm))
		}
	}
	for _, c := range b.Chain {
		if k, ok := c.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() < MinRSABits {
			ps = append(ps, problem(CheckKeySize, "%q has a %d-bit RSA key: AMT needs %d bits or more throughout the chain; get a certificate with a %d-bit key or larger", name(c), k.N.BitLen(), MinRSABits, MinRSABits))
		}
	}

	// §12.5.
	for _, c := range b.Chain {
		switch {
		case now.Before(c.NotBefore):
			ps = append(ps, problem(CheckValidity, "%q is not valid until %s: wait until then, or check this machine's clock", name(c), c.NotBefore.UTC().Format(time.DateTime+" MST")))
		case now.After(c.NotAfter):
			ps = append(ps, problem(CheckValidity, "%q expired on %s: renew it and load the new .pfx with 'amtd domain replace-cert'", name(c), c.NotAfter.UTC().Format(time.DateTime+" MST")))
		}
	}

	// §12.6: chain by issuer links, each signature verified, a root at the top.
	ps = append(ps, b.linkProblems...)
	if len(b.Unused) > 0 {
		ps = append(ps, warning(CheckChain, "the file holds %d certificate(s) not on the leaf's chain (first: %q); amtd ignores them", len(b.Unused), name(b.Unused[0])))
	}
	if b.Root == nil && !b.linkProblems.Has(CheckChain) {
		ps = append(ps, b.rootProblem())
	}
	if b.Root != nil {
		if _, ok := roots.LookupHex(b.RootSHA256()); !ok {
			ps = append(ps, warning(CheckRoot, "the root %q (SHA-256 %s) is not one Intel AMT trusts by default: add its hash to each device in MEBx or by USB, or use a certificate from a vendor whose root AMT carries", name(b.Root), b.RootSHA256()))
		}
	}

	// §12.7 and §13.
	if pol.Suffix != "" {
		ps = append(ps, CheckSuffix(leaf.Subject.CommonName, pol.Suffix)...)
	}
	return ps
}

func hasAMTPurpose(c *x509.Certificate) bool {
	for _, o := range c.UnknownExtKeyUsage {
		if o.Equal(OIDAMTProvisioning) {
			return true
		}
	}
	return slices.Contains(c.Subject.OrganizationalUnit, OUClientSetup)
}

func sha2(a x509.SignatureAlgorithm) bool {
	switch a {
	case x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA,
		x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS,
		x509.ECDSAWithSHA256, x509.ECDSAWithSHA384, x509.ECDSAWithSHA512:
		return true
	}
	return false
}

func isRSA(k any) bool { _, ok := k.(*rsa.PublicKey); return ok }

func keyKind(k any) string {
	switch k.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA"
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return "of an unknown type"
}
