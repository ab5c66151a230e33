package provision

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"amtd/amt/digest"
	"amtd/amt/wsman"
	"amtd/secret"
	"amtd/store"
)

// pickChainForAgent finds the chain for an agent's device: the suffix rpc-go
// reports (payload fqdn, the trusted suffix) must be the chain's domain or
// below it, and the chain's root hash must be among the device's
// (spec/activation.md §4 step 5). The errors are RPS's texts.
func pickChainForAgent(chains []Chain, suffix string, hashes []string) (*Chain, error) {
	var suffixOK bool
	for i := range chains {
		c := &chains[i]
		if !suffixMatches(suffix, c.Suffix) {
			continue
		}
		suffixOK = true
		if c.Root == nil {
			continue
		}
		s1, s256, s384 := sha1.Sum(c.Root.Raw), sha256.Sum256(c.Root.Raw), sha512.Sum384(c.Root.Raw)
		for _, h := range []string{hex.EncodeToString(s1[:]), hex.EncodeToString(s256[:]), hex.EncodeToString(s384[:])} {
			if slices.ContainsFunc(hashes, func(x string) bool { return strings.EqualFold(x, h) }) {
				return c, nil
			}
		}
	}
	if !suffixOK {
		//lint:ignore ST1005 RPS's text, which rpc-go users search for
		return nil, fmt.Errorf("Specified AMT domain suffix: %s does not match list of available AMT domain suffixes.", suffix)
	}
	//lint:ignore ST1005 RPS's text
	return nil, errors.New("Invalid domain certificate, hash does not exists in list of trusted root certificates on AMT")
}

// ActivateACMAdminSetup activates a device in admin control mode through
// dial (the agent's relay to LMS) with host-based AdminSetup
// (spec/activation.md §6, AMT before 19): the chain goes in leaf first with
// AddNextCertInChain, the firmware nonce and amtd's nonce are signed with
// the leaf key, and AdminSetup is sent exactly once. Then, as admin, the
// MEBx password is set. Both passwords are sealed as pending first and
// promoted after a login as admin in ACM.
func (e *Engine) ActivateACMAdminSetup(ctx context.Context, uuid, host string, dial wsman.Dialer, lsaUser string, lsaPass secret.Value, version string, chain *Chain) (err error) {
	key, ok := chain.Cert.PrivateKey.(*rsa.PrivateKey)
	if !ok {
		return fmt.Errorf("domain %s: the provisioning key is %T; AMT takes RSA only", chain.Suffix, chain.Cert.PrivateKey)
	}
	devs, secrets := e.Store.Devices(), e.Store.Secrets()
	if err := e.ensureDevice(ctx, uuid, version); err != nil {
		return err
	}
	e.started("agent-acm")
	defer e.recordFailure(ctx, uuid, &err)
	if err := devs.SetState(ctx, uuid, StateActivating, StepConnect, "agent, admin control mode, domain "+chain.Suffix, false); err != nil {
		return err
	}
	local, realm, err := e.localSession(ctx, dial, host, lsaUser, lsaPass)
	if err != nil {
		return err
	}
	admin, err := pendingOrNewLen(ctx, secrets, uuid, store.AMTAdmin, passwordLen, "agent activation (ACM)")
	if err != nil {
		return err
	}
	defer admin.Wipe()
	mebx, err := pendingOrNewLen(ctx, secrets, uuid, store.MEBx, passwordLen, "agent activation (ACM)")
	if err != nil {
		return err
	}
	defer mebx.Wipe()
	if err := devs.SetState(ctx, uuid, StateActivating, StepPasswords, "", false); err != nil {
		return err
	}

	mc, sig, err := e.presentChain(ctx, uuid, local, chain, key)
	if err != nil {
		return err
	}
	if err := devs.SetState(ctx, uuid, StateActivating, "admin-setup", "", false); err != nil {
		return err
	}
	in := wsman.AdminSetupInput{NetAdminPassEncryptionType: 2, NetworkAdminPassword: digest.HA1Hex(adminUser, realm, admin),
		McNonce: mc, SigningAlgorithm: 2, DigitalSignature: sig}
	// Exactly once: a retried AdminSetup can hang AMT (rps#2752).
	setupErr := e.call(ctx, func(ctx context.Context) error {
		return local.Invoke(ctx, "IPS_HostBasedSetupService", "AdminSetup", in.Params(), nil)
	})
	var re *wsman.ReturnError
	if errors.As(setupErr, &re) {
		if re.Code == 5 {
			return fmt.Errorf("AdminSetup: AMT refused the certificate chain, hash or domain (ReturnValue 5, AuthFailed)")
		}
		return fmt.Errorf("AdminSetup: %w", setupErr)
	}
	if err := devs.SetState(ctx, uuid, StateActivating, StepVerify, "", false); err != nil {
		return err
	}
	if err := e.verifyMode(ctx, dial, host, admin, ModeACM); err != nil {
		if setupErr != nil {
			return fmt.Errorf("AdminSetup: %w (and the device does not report admin control mode: %v)", setupErr, err)
		}
		return fmt.Errorf("verify: %w", err)
	}
	// The admin password is the device's now, whatever happens next.
	if err := secrets.Promote(ctx, uuid, store.AMTAdmin); err != nil {
		return err
	}
	if err := devs.SetState(ctx, uuid, StateActivating, StepMEBx, "", false); err != nil {
		return err
	}
	adminC := wsman.NewClient(dial, wsman.Credentials{Host: host, Username: adminUser, Password: admin})
	if err := e.call(ctx, func(ctx context.Context) error {
		return adminC.Invoke(ctx, "AMT_SetupAndConfigurationService", "SetMEBxPassword", wsman.SetMEBxPasswordInput{Password: mebx}.Params(), nil)
	}); err != nil {
		return fmt.Errorf("set the MEBx password: %w", err)
	}
	if err := e.promoteMode(ctx, uuid, ModeACM); err != nil {
		return err
	}
	e.count("activated")
	e.log().Info("activated in admin control mode through the agent", "dev", uuid, "domain", chain.Suffix)
	return nil
}

// presentChain reads the firmware's ConfigurationNonce, hands AMT the chain
// leaf first (AddNextCertInChain), and signs the firmware nonce followed by
// a fresh 20-byte McNonce with the leaf key (RSA PKCS#1 v1.5, SHA-256), as
// AdminSetup and UpgradeClientToAdmin take them (spec/activation.md §6
// steps 5-7). It returns both, base64.
func (e *Engine) presentChain(ctx context.Context, uuid string, c *wsman.Client, chain *Chain, key *rsa.PrivateKey) (mcNonce, signature string, err error) {
	var hb wsman.IPSHostBasedSetupService
	if err := e.call(ctx, func(ctx context.Context) error { return c.Get(ctx, "IPS_HostBasedSetupService", &hb) }); err != nil {
		return "", "", fmt.Errorf("read the configuration nonce: %w", err)
	}
	fwNonce, err := base64.StdEncoding.DecodeString(hb.ConfigurationNonce)
	if err != nil || len(fwNonce) == 0 {
		return "", "", fmt.Errorf("the device's ConfigurationNonce %q is not base64", hb.ConfigurationNonce)
	}
	if err := e.Store.Devices().SetState(ctx, uuid, StateActivating, "add-cert-chain", fmt.Sprintf("%d certificates", len(chain.Cert.Certificate)), false); err != nil {
		return "", "", err
	}
	n := len(chain.Cert.Certificate)
	for i, der := range chain.Cert.Certificate {
		in := wsman.AddNextCertInChainInput{NextCertificate: base64.StdEncoding.EncodeToString(der), IsLeafCertificate: i == 0, IsRootCertificate: i == n-1}
		if err := e.call(ctx, func(ctx context.Context) error {
			return c.Invoke(ctx, "IPS_HostBasedSetupService", "AddNextCertInChain", in.Params(), nil)
		}); err != nil {
			return "", "", fmt.Errorf("Error while adding the certificates to AMT: certificate %d of %d: %w", i+1, n, err)
		}
	}
	mc := make([]byte, 20)
	if _, err := rand.Read(mc); err != nil {
		return "", "", err
	}
	sum := sha256.Sum256(append(slices.Clone(fwNonce), mc...))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", "", fmt.Errorf("sign the nonces: %w", err)
	}
	return base64.StdEncoding.EncodeToString(mc), base64.StdEncoding.EncodeToString(sig), nil
}

// UpgradeToACM moves a device in client control mode to admin control mode
// through dial with UpgradeClientToAdmin, in an admin session with the
// stored password (spec/activation.md §7); then the MEBx password, sealed
// as pending first, is set and promoted. The admin password is unchanged.
func (e *Engine) UpgradeToACM(ctx context.Context, uuid, host string, dial wsman.Dialer, admin secret.Value, chain *Chain) (err error) {
	key, ok := chain.Cert.PrivateKey.(*rsa.PrivateKey)
	if !ok {
		return fmt.Errorf("domain %s: the provisioning key is %T; AMT takes RSA only", chain.Suffix, chain.Cert.PrivateKey)
	}
	devs, secrets := e.Store.Devices(), e.Store.Secrets()
	e.started("agent-upgrade")
	defer e.recordFailure(ctx, uuid, &err)
	if err := devs.SetState(ctx, uuid, StateActivating, StepConnect, "agent, upgrade to admin control mode, domain "+chain.Suffix, false); err != nil {
		return err
	}
	c := wsman.NewClient(dial, wsman.Credentials{Host: host, Username: adminUser, Password: admin})
	mebx, err := pendingOrNewLen(ctx, secrets, uuid, store.MEBx, passwordLen, "agent upgrade to ACM")
	if err != nil {
		return err
	}
	defer mebx.Wipe()
	mc, sig, err := e.presentChain(ctx, uuid, c, chain, key)
	if err != nil {
		return err
	}
	if err := devs.SetState(ctx, uuid, StateActivating, "upgrade-client-to-admin", "", false); err != nil {
		return err
	}
	upErr := e.call(ctx, func(ctx context.Context) error {
		return c.Invoke(ctx, "IPS_HostBasedSetupService", "UpgradeClientToAdmin",
			wsman.UpgradeClientToAdminInput{McNonce: mc, SigningAlgorithm: 2, DigitalSignature: sig}.Params(), nil)
	})
	var re *wsman.ReturnError
	if errors.As(upErr, &re) {
		return fmt.Errorf("UpgradeClientToAdmin: %w", upErr)
	}
	if err := e.verifyMode(ctx, dial, host, admin, ModeACM); err != nil {
		if upErr != nil {
			return fmt.Errorf("UpgradeClientToAdmin: %w (and the device does not report admin control mode: %v)", upErr, err)
		}
		return fmt.Errorf("verify: %w", err)
	}
	if err := devs.SetState(ctx, uuid, StateActivating, StepMEBx, "", false); err != nil {
		return err
	}
	if err := e.call(ctx, func(ctx context.Context) error {
		return c.Invoke(ctx, "AMT_SetupAndConfigurationService", "SetMEBxPassword", wsman.SetMEBxPasswordInput{Password: mebx}.Params(), nil)
	}); err != nil {
		return fmt.Errorf("set the MEBx password: %w", err)
	}
	if err := e.promoteMode(ctx, uuid, ModeACM); err != nil {
		return err
	}
	e.count("upgraded")
	return nil
}
