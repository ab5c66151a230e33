package provision

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"amtd/amt/wsman"
)

// DeviceCA certifies the keys devices generate for their TLS listeners
// (pki.CA).
type DeviceCA interface {
	IssueDevice(pub *rsa.PublicKey, cn string, now time.Time) ([]byte, error)
	RootDER() []byte
}

// StepTLS is recorded in the device history before TLS is configured.
const StepTLS = "tls"

// tlsRemoteSettings is the InstanceID of the network-side TLS settings
// (spec/wsman.md §6).
const tlsRemoteSettings = "Intel(r) AMT 802.3 TLS Settings"

// configureTLS gives the device's TLS listener a certificate from the
// appliance CA (spec/activation.md §9 step 5): GenerateKeyPair on the
// device, the public key certified, AddCertificate, the TLS credential
// context, the remote TLS settings on, CommitChanges. amtd uses TLS mode 2
// (server authentication, non-TLS still accepted), so CIRA, the relay and
// older consoles keep working; spec/activation.md §9 explains why RPS
// refuses CIRA and TLS together and why mode 2 avoids it.
func (e *Engine) configureTLS(ctx context.Context, uuid, host string, dial wsman.Dialer) (err error) {
	if e.DeviceCA == nil {
		return errors.New("TLS: this appliance has no CA to certify devices with")
	}
	c, admin, err := e.adminClient(ctx, uuid, host, dial, "TLS")
	if err != nil {
		return err
	}
	defer admin.Wipe()
	defer e.recordFailure(ctx, uuid, &err)
	if err := e.Store.Devices().SetState(ctx, uuid, "configuring", StepTLS, "certificate from the appliance CA, mode 2", false); err != nil {
		return err
	}
	call := func(f func(ctx context.Context) error) error { return e.call(ctx, f) }

	var gen wsman.Instance
	if err := call(func(ctx context.Context) error {
		return c.Invoke(ctx, "AMT_PublicKeyManagementService", "GenerateKeyPair", wsman.GenerateKeyPairInput{KeyAlgorithm: 0, KeyLength: 2048}.Params(), &gen)
	}); err != nil {
		return fmt.Errorf("TLS: GenerateKeyPair: %w", err)
	}
	keyID := ""
	if epr := gen.EPR("KeyPair"); epr != nil {
		keyID = epr.Selector("InstanceID")
	}
	var pairs []wsman.Instance
	if err := call(func(ctx context.Context) (err error) {
		pairs, err = c.Enumerate(ctx, "AMT_PublicPrivateKeyPair")
		return
	}); err != nil {
		return fmt.Errorf("TLS: read the key pair: %w", err)
	}
	var pub *rsa.PublicKey
	for i := range pairs {
		if pairs[i].Value("InstanceID") != keyID {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(pairs[i].Value("DERKey"))
		if err != nil {
			return fmt.Errorf("TLS: the device's public key is not base64: %w", err)
		}
		if pub, err = x509.ParsePKCS1PublicKey(raw); err != nil {
			return fmt.Errorf("TLS: the device's public key: %w", err)
		}
	}
	if pub == nil {
		return fmt.Errorf("TLS: the key pair %q GenerateKeyPair named is not listed", keyID)
	}
	der, err := e.DeviceCA.IssueDevice(pub, "AMT-"+strings.ReplaceAll(uuid, "-", "")[:12], e.now())
	if err != nil {
		return err
	}
	var added wsman.Instance
	if err := call(func(ctx context.Context) error {
		return c.Invoke(ctx, "AMT_PublicKeyManagementService", "AddCertificate", wsman.AddCertificateInput{CertificateBlob: base64.StdEncoding.EncodeToString(der)}.Params(), &added)
	}); err != nil {
		return fmt.Errorf("TLS: AddCertificate: %w", err)
	}
	certEPR := added.EPR("CreatedCertificate")
	if certEPR == nil {
		return errors.New("TLS: AddCertificate named no certificate")
	}
	ctxBody := wsman.Instance{Props: []wsman.Property{
		{Name: "ElementInContext", EPR: &wsman.EPR{ResourceURI: wsman.BaseAMT + "AMT_PublicKeyCertificate", Selectors: []wsman.Selector{{Name: "InstanceID", Value: certEPR.Selector("InstanceID")}}}},
		{Name: "ElementProvidingContext", EPR: &wsman.EPR{ResourceURI: wsman.BaseAMT + "AMT_TLSProtocolEndpointCollection", Selectors: []wsman.Selector{{Name: "ElementName", Value: "TLSProtocolEndpointInstances Collection"}}}},
	}}
	if err := call(func(ctx context.Context) error {
		existing, err := c.Enumerate(ctx, "AMT_TLSCredentialContext")
		if err != nil {
			return err
		}
		if len(existing) > 0 {
			_, err = c.Put(ctx, "AMT_TLSCredentialContext", ctxBody)
			return err
		}
		req, err := c.B.Create("AMT_TLSCredentialContext", ctxBody)
		if err != nil {
			return err
		}
		_, err = c.Do(ctx, req)
		return err
	}); err != nil {
		return fmt.Errorf("TLS: credential context: %w", err)
	}
	if err := call(func(ctx context.Context) error {
		settings, err := c.Enumerate(ctx, "AMT_TLSSettingData")
		if err != nil {
			return err
		}
		for i := range settings {
			if settings[i].Value("InstanceID") != tlsRemoteSettings {
				continue
			}
			s := settings[i]
			s.Set("Enabled", "true")
			s.Set("AcceptNonSecureConnections", "true")
			s.Set("MutualAuthentication", "false")
			_, err := c.Put(ctx, "AMT_TLSSettingData", s, wsman.Selector{Name: "InstanceID", Value: tlsRemoteSettings})
			return err
		}
		return fmt.Errorf("no %q instance", tlsRemoteSettings)
	}); err != nil {
		return fmt.Errorf("TLS: settings: %w", err)
	}
	if err := call(func(ctx context.Context) error {
		return c.Invoke(ctx, "AMT_SetupAndConfigurationService", "CommitChanges", nil, nil)
	}); err != nil {
		return fmt.Errorf("TLS: CommitChanges: %w", err)
	}
	return e.Store.Devices().SetState(ctx, uuid, StateConfigured, StepTLS, "TLS on, certificate "+fmt.Sprintf("%x", der[len(der)-4:]), false)
}
