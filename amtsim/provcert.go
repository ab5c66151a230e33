package amtsim

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"amtd/amt/roots"
)

// OIDIntelSetup is the Intel AMT provisioning OID a setup certificate
// carries in its EKU (spec/activation.md §12).
var OIDIntelSetup = asn1.ObjectIdentifier{2, 16, 840, 1, 113741, 1, 2, 3}

// OUIntelSetup is the subject OU accepted instead of the OID
// (spec/activation.md §12; case-sensitive).
const OUIntelSetup = "Intel(R) Client Setup Certificate"

// ErrProvisioningCert is wrapped by every provisioning-chain rejection.
var ErrProvisioningCert = errors.New("provisioning certificate rejected")

// ChainCheck holds what the firmware checks a provisioning chain against.
type ChainCheck struct {
	Version Version
	Trusted []RootHash // default table plus user-added
	Suffix  string     // the device's DNS suffix (trusted, else option 15)
	Now     time.Time
}

// OrderChain puts certs in leaf-to-root order by issuer links, starting
// from the first certificate (the leaf AMT is given first in TLS and in
// AddNextCertInChain); spec/activation.md §6 step 2.
func OrderChain(certs []*x509.Certificate) ([]*x509.Certificate, error) {
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: empty chain", ErrProvisioningCert)
	}
	rest := slices.Clone(certs[1:])
	out := []*x509.Certificate{certs[0]}
	for cur := certs[0]; !isSelfSigned(cur); {
		i := slices.IndexFunc(rest, func(c *x509.Certificate) bool { return signedBy(cur, c) })
		if i < 0 {
			return nil, fmt.Errorf("%w: no issuer for %q in the chain, and it is not a self-signed root", ErrProvisioningCert, cur.Subject.CommonName)
		}
		cur = rest[i]
		out = append(out, cur)
		rest = slices.Delete(rest, i, i+1)
	}
	return out, nil
}

func isSelfSigned(c *x509.Certificate) bool { return signedBy(c, c) }

// signedBy checks c's signature with parent's key and the name link.
// Certificate.CheckSignatureFrom refuses SHA-1 outright, but AMT 11–13
// accept SHA-1 chains, so the version rule decides that, not this check.
func signedBy(c, parent *x509.Certificate) bool {
	if !bytesEqual(c.RawIssuer, parent.RawSubject) {
		return false
	}
	if parent != c && parent.BasicConstraintsValid && !parent.IsCA {
		return false
	}
	return parent.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// Verify runs the firmware's provisioning-certificate checks
// (spec/activation.md §3 step 3, §12, §13) on a leaf-first chain that ends
// in its self-signed root, and returns the matched root hash.
func (c ChainCheck) Verify(chain []*x509.Certificate) (RootHash, error) {
	ordered, err := OrderChain(chain)
	if err != nil {
		return RootHash{}, err
	}
	leaf, root := ordered[0], ordered[len(ordered)-1]
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return RootHash{}, fmt.Errorf("%w: leaf %q lacks the serverAuth EKU", ErrProvisioningCert, leaf.Subject.CommonName)
	}
	hasOID := slices.ContainsFunc(leaf.UnknownExtKeyUsage, func(o asn1.ObjectIdentifier) bool { return o.Equal(OIDIntelSetup) })
	hasOU := slices.Contains(leaf.Subject.OrganizationalUnit, OUIntelSetup)
	if !hasOID && !hasOU {
		return RootHash{}, fmt.Errorf("%w: leaf %q has neither EKU %s nor OU %q", ErrProvisioningCert, leaf.Subject.CommonName, OIDIntelSetup, OUIntelSetup)
	}
	for _, cert := range ordered {
		pub, ok := cert.PublicKey.(*rsa.PublicKey)
		if !ok {
			return RootHash{}, fmt.Errorf("%w: %q has a %T key; AMT takes RSA only", ErrProvisioningCert, cert.Subject.CommonName, cert.PublicKey)
		}
		if pub.N.BitLen() < 2048 {
			return RootHash{}, fmt.Errorf("%w: %q has an RSA-%d key; AMT needs ≥ 2048", ErrProvisioningCert, cert.Subject.CommonName, pub.N.BitLen())
		}
		if c.Version.rejectsSHA1() && isSHA1(cert.SignatureAlgorithm) {
			return RootHash{}, fmt.Errorf("%w: %q is signed with %s; AMT %d takes SHA-2 only", ErrProvisioningCert, cert.Subject.CommonName, cert.SignatureAlgorithm, c.Version.Major)
		}
		if c.Now.Before(cert.NotBefore) || c.Now.After(cert.NotAfter) {
			return RootHash{}, fmt.Errorf("%w: %q is outside its validity %s–%s", ErrProvisioningCert, cert.Subject.CommonName,
				cert.NotBefore.Format(time.DateOnly), cert.NotAfter.Format(time.DateOnly))
		}
	}
	matched, ok := matchRoot(root.Raw, c.Trusted)
	if !ok {
		sum := sha256.Sum256(root.Raw)
		return RootHash{}, fmt.Errorf("%w: root %q (SHA-256 %s) is not in the device's trusted hashes", ErrProvisioningCert,
			root.Subject.CommonName, hex.EncodeToString(sum[:]))
	}
	if !DomainMatches(leaf, c.Suffix) {
		return RootHash{}, fmt.Errorf("%w: leaf %q does not match the device's DNS suffix %q", ErrProvisioningCert, leaf.Subject.CommonName, c.Suffix)
	}
	return matched, nil
}

func isSHA1(a x509.SignatureAlgorithm) bool {
	return a == x509.SHA1WithRSA || a == x509.ECDSAWithSHA1 || a == x509.DSAWithSHA1 || a == x509.MD5WithRSA
}

// matchRoot looks up the root's SHA-256, SHA-1 or SHA-384 in trusted.
func matchRoot(der []byte, trusted []RootHash) (RootHash, bool) {
	s256 := sha256.Sum256(der)
	s1 := sha1.Sum(der)
	s384 := sha512.Sum384(der)
	forms := map[string]string{
		"sha256": hex.EncodeToString(s256[:]),
		"sha1":   hex.EncodeToString(s1[:]),
		"sha384": hex.EncodeToString(s384[:]),
	}
	for _, h := range trusted {
		if strings.EqualFold(forms[h.Algorithm], h.Hex) {
			return h, true
		}
	}
	return RootHash{}, false
}

// DefaultRootHashes is the factory table of spec/activation.md §14.
func DefaultRootHashes() []RootHash {
	var out []RootHash
	for _, r := range roots.Default() {
		out = append(out, RootHash{Algorithm: "sha256", Hex: r.SHA256, Name: r.CA})
	}
	return out
}

// DomainMatches applies the union of the domain rules of spec/activation.md
// §13 to the leaf's CN and DNS SANs, each with a leading "*." removed (the
// firmware's wildcard handling is unverified, so a wildcard is accepted):
//   - the name equals the suffix;
//   - the suffix ends with "." + name (MeshCentral's cn/FQDN rule);
//   - the name ends with "." + suffix (the IRG's "domain suffix matches the
//     FQDN suffix in the SCA certificate": a leaf for host.corp.example
//     matches suffix corp.example).
//
// Comparison ignores case and a trailing dot. An empty suffix matches
// nothing: AMT without option 15 or a PKI suffix cannot be configured.
func DomainMatches(leaf *x509.Certificate, suffix string) bool {
	suffix = normName(suffix)
	if suffix == "" {
		return false
	}
	names := append([]string{leaf.Subject.CommonName}, leaf.DNSNames...)
	for _, n := range names {
		n = normName(strings.TrimPrefix(n, "*."))
		if n == "" {
			continue
		}
		if n == suffix || strings.HasSuffix(suffix, "."+n) || strings.HasSuffix(n, "."+suffix) {
			return true
		}
	}
	return false
}

func normName(s string) string { return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), ".")) }
