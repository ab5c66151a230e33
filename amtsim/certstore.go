package amtsim

import (
	"bytes"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"slices"
)

// GenerateKeyPair is AMT_PublicKeyManagementService.GenerateKeyPair
// (spec/wsman.md §6): RSA 2048 only. The key comes from the KeyPool.
func (d *Device) GenerateKeyPair(alg, length int) (string, int) {
	if alg != 0 || length != 2048 {
		return "", ptInvalidParam
	}
	key, err := d.keys.Key()
	if err != nil {
		return "", ptInternalError
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", ptInternalError
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.s.Keys) >= maxKeys {
		return "", ptMaxLimit
	}
	id := fmt.Sprintf("Intel(r) AMT Key: Handle: %d", d.s.NextKey)
	d.s.NextKey++
	d.s.Keys = append(d.s.Keys, KeyPair{InstanceID: id, PKCS8: der})
	d.commitLocked()
	return id, ptSuccess
}

func (kp KeyPair) private() (*rsa.PrivateKey, error) {
	k, err := x509.ParsePKCS8PrivateKey(kp.PKCS8)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key %s is %T", kp.InstanceID, k)
	}
	return rk, nil
}

// keyForLocked finds the stored key pair whose public key is cert's.
func (d *Device) keyForLocked(cert *x509.Certificate) (*rsa.PrivateKey, bool) {
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, false
	}
	for _, kp := range d.s.Keys {
		k, err := kp.private()
		if err == nil && k.PublicKey.Equal(pub) {
			return k, true
		}
	}
	return nil, false
}

// AddCertificate stores a certificate for one of the device's key pairs
// (the certificate amtd signs over GenerateKeyPair's key).
func (d *Device) AddCertificate(blob string) (string, int) {
	return d.addCert(blob, false)
}

// AddTrustedRootCertificate stores a trusted root, e.g. the CIRA root the
// device will check the MPS certificate against (spec/apf.md §8).
func (d *Device) AddTrustedRootCertificate(blob string) (string, int) {
	return d.addCert(blob, true)
}

func (d *Device) addCert(blob string, root bool) (string, int) {
	der, err := base64.StdEncoding.DecodeString(blob)
	if err != nil {
		return "", ptInvalidParam
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return "", ptInvalidParam
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !root {
		if _, ok := d.keyForLocked(cert); !ok {
			return "", ptInvalidParam // no private key for it in the store
		}
	}
	for _, c := range d.s.Certs {
		if bytes.Equal(c.DER, der) {
			return "", ptDuplicate
		}
	}
	if len(d.s.Certs) >= maxCerts {
		return "", ptMaxLimit
	}
	id := fmt.Sprintf("Intel(r) AMT Certificate: Handle: %d", d.s.NextCert)
	d.s.NextCert++
	d.s.Certs = append(d.s.Certs, StoredCert{InstanceID: id, DER: der, TrustedRoot: root})
	d.commitLocked()
	return id, ptSuccess
}

// deleteCert removes a certificate that is not in use by the TLS context.
func (d *Device) deleteCert(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := slices.IndexFunc(d.s.Certs, func(c StoredCert) bool { return c.InstanceID == id })
	if i < 0 || d.s.TLSCredCert == id {
		return false
	}
	d.s.Certs = slices.Delete(d.s.Certs, i, i+1)
	d.commitLocked()
	return true
}

func (d *Device) deleteKey(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := slices.IndexFunc(d.s.Keys, func(k KeyPair) bool { return k.InstanceID == id })
	if i < 0 {
		return false
	}
	d.s.Keys = slices.Delete(d.s.Keys, i, i+1)
	d.commitLocked()
	return true
}

// setTLSCredential selects the TLS certificate (Create or Put of
// AMT_TLSCredentialContext). It takes effect at CommitChanges.
func (d *Device) setTLSCredential(certID string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if certID == "" {
		d.s.TLSCredCert = ""
		d.commitLocked()
		return true
	}
	i := slices.IndexFunc(d.s.Certs, func(c StoredCert) bool { return c.InstanceID == certID && !c.TrustedRoot })
	if i < 0 {
		return false
	}
	d.s.TLSCredCert = certID
	d.commitLocked()
	return true
}

// listenerCertificate is the certificate 16993 presents: the committed TLS
// credential when there is one, else the device's self-signed certificate.
func (d *Device) listenerCertificate() (*tls.Certificate, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if id := d.s.ActiveTLS.CertInstanceID; id != "" {
		for _, c := range d.s.Certs {
			if c.InstanceID != id {
				continue
			}
			cert, err := x509.ParseCertificate(c.DER)
			if err != nil {
				break
			}
			if key, ok := d.keyForLocked(cert); ok {
				return &tls.Certificate{Certificate: [][]byte{c.DER}, PrivateKey: key, Leaf: cert}, nil
			}
		}
		d.log.Warn("committed TLS certificate is gone; serving the self-signed one", "cert", id)
	}
	if d.self == nil {
		key, err := d.keys.Key()
		if err != nil {
			return nil, err
		}
		c, _, err := selfSigned(key, "AMT-"+d.UUID.String(), d.now())
		if err != nil {
			return nil, err
		}
		d.self = &c
	}
	return d.self, nil
}

// trustedRootsLocked is the pool of roots added with
// AddTrustedRootCertificate.
func (d *Device) trustedRootsLocked() *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range d.s.Certs {
		if !c.TrustedRoot {
			continue
		}
		if cert, err := x509.ParseCertificate(c.DER); err == nil {
			pool.AddCert(cert)
		}
	}
	return pool
}
