package provcert

import (
	"bytes"
	"crypto/x509"
	"errors"
)

// maxChain bounds the walk up the issuers: vendor chains are three or four
// deep.
const maxChain = 8

// buildChain orders the certificates from leaf to root by issuer links
// (spec/activation.md §6 step 2), whatever their order in the file, and
// verifies each signature. It stops at a self-signed certificate, at a
// missing issuer, or after maxChain links.
func buildChain(leaf *x509.Certificate, pool []*x509.Certificate) (chain []*x509.Certificate, root *x509.Certificate, unused []*x509.Certificate, ps Problems) {
	used := make([]bool, len(pool))
	chain = []*x509.Certificate{leaf}
	cur := leaf
	for {
		if ok, err := selfSigned(cur); ok {
			if err != nil {
				ps = append(ps, problem(CheckChain, "the root %q names itself as issuer but its signature does not verify (%v): the file holds a damaged root; export the .pfx again with the chain", name(cur), err))
			} else {
				root = cur
			}
			break
		}
		if len(chain) >= maxChain {
			ps = append(ps, problem(CheckChain, "the chain above %q is longer than %d certificates without reaching a root: export the .pfx again with only the certificate's own chain", name(leaf), maxChain))
			break
		}
		next, sigErr := -1, error(nil)
		for i, c := range pool {
			// By name only: a key-id mismatch shows as a failed signature,
			// which says more than "missing".
			if used[i] || !bytes.Equal(cur.RawIssuer, c.RawSubject) {
				continue
			}
			err := cur.CheckSignatureFrom(c)
			if err == nil || insecure(err) {
				next, sigErr = i, nil
				break
			}
			if next < 0 || !issuedBy(cur, pool[next]) && issuedBy(cur, c) {
				next, sigErr = i, err
			}
		}
		if next < 0 {
			ps = append(ps, problem(CheckChain, "%q was issued by %q, which is not in the file: export the .pfx again including every certificate in the certification path, up to the root", name(cur), cur.Issuer.String()))
			break
		}
		if sigErr != nil {
			ps = append(ps, problem(CheckChain, "the signature on %q does not verify with the key of %q in the file (%v): export the .pfx again with the chain its vendor supplied", name(cur), name(pool[next]), sigErr))
		}
		used[next] = true
		cur = pool[next]
		chain = append(chain, cur)
	}
	for i, c := range pool {
		if !used[i] {
			unused = append(unused, c)
		}
	}
	return chain, root, unused, ps
}

// issuedBy reports whether parent's name (and key id, when both carry one)
// is c's issuer.
func issuedBy(c, parent *x509.Certificate) bool {
	if !bytes.Equal(c.RawIssuer, parent.RawSubject) {
		return false
	}
	if len(c.AuthorityKeyId) > 0 && len(parent.SubjectKeyId) > 0 {
		return bytes.Equal(c.AuthorityKeyId, parent.SubjectKeyId)
	}
	return true
}

// selfSigned reports whether c names itself as issuer, and if so whether its
// signature verifies with its own key. A SHA-1 self-signature counts as
// verified here: the SHA-2 check reports it in its own words.
func selfSigned(c *x509.Certificate) (bool, error) {
	if !bytes.Equal(c.RawSubject, c.RawIssuer) {
		return false, nil
	}
	if len(c.AuthorityKeyId) > 0 && len(c.SubjectKeyId) > 0 && !bytes.Equal(c.AuthorityKeyId, c.SubjectKeyId) {
		return false, nil // same name, another key: a cross-signed CA; its issuer is elsewhere
	}
	err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature)
	if err != nil && !insecure(err) {
		return true, err
	}
	return true, nil
}

// insecure reports a signature Go refuses to check because of its hash
// (SHA-1, MD5): the SHA-2 check names that problem.
func insecure(err error) bool {
	var ia x509.InsecureAlgorithmError
	return errors.As(err, &ia)
}

// rootProblem explains why the chain has no root.
func (b *Bundle) rootProblem() Problem {
	top := b.Chain[len(b.Chain)-1]
	return problem(CheckRoot, "the file holds no self-signed root (the chain ends at %q, issued by %q): export the .pfx again including the root certificate, whose hash AMT checks", name(top), top.Issuer.String())
}
