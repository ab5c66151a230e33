package provision

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"amtd/amt/password"
	"amtd/amt/wsman"
	"amtd/secret"
	"amtd/store"
)

// CIRAConfig is what a device needs to keep a CIRA connection to amtd
// (spec/activation.md §9 step 4, spec/apf.md).
type CIRAConfig struct {
	// Server is what devices dial: amtd's FQDN (the name in its CIRA
	// certificate) or an IPv4 address.
	Server string
	// Port is the CIRA listener's port (4433).
	Port int
	// RootDER is the appliance CA root that signed the CIRA certificate;
	// AMT checks the server against it.
	RootDER []byte
	// IntervalSeconds is the periodic connection interval (default 25, as
	// RPS's "AAAAAAAAABk=").
	IntervalSeconds uint32
}

// Steps of the CIRA configuration, recorded in the device history.
const (
	StepCIRAUnconfigure = "cira-unconfigure"
	StepCIRAPassword    = "cira-password-sealed"
	StepCIRARoot        = "cira-trusted-root"
	StepCIRAServer      = "cira-add-mps"
	StepCIRAPolicy      = "cira-policy"
	StepCIRADetection   = "cira-detection-strings"
	StateConfigured     = "configured"
)

// mpsPasswordLen: AddMpServer takes at most 16 characters (spec/activation.md §11).
const mpsPasswordLen = 16

// MPSUsername is the CIRA user name amtd gives a device: "amt" and 13 hex
// digits of its UUID's SHA-256, 16 alphanumeric characters, inside AMT's
// 5–16 (spec/activation.md §11). It names the device without being its UUID.
func MPSUsername(uuid string) string {
	s := sha256.Sum256([]byte(strings.ToLower(uuid)))
	return "amt" + hex.EncodeToString(s[:])[:13]
}

// ConfigureCIRA makes an activated device connect to amtd over CIRA: it
// removes earlier MPS entries and policy rules, seals a new MPS password as
// pending, adds amtd's root as a trusted root, adds amtd as the MPS with
// that password, adds the periodic and user-initiated policy rules, enables
// user-initiated connections and sets detection strings that cannot match
// the site's option 15 (spec/network.md §5). The MPS password is promoted
// once AMT has accepted it. It logs in with the device's current admin
// password from the store. Safe to run again after any failure.
func (e *Engine) ConfigureCIRA(ctx context.Context, t Target, cc CIRAConfig) error {
	uuid, err := store.NormalizeUUID(t.UUID)
	if err != nil {
		return err
	}
	t.UUID = uuid
	return e.configureCIRA(ctx, uuid, t.host(), e.dialer(t, nil), cc)
}

// configureCIRA is ConfigureCIRA through any dialer: the device's TLS port,
// or an agent's relay to LMS.
func (e *Engine) configureCIRA(ctx context.Context, uuid, host string, dial wsman.Dialer, cc CIRAConfig) (err error) {
	if cc.Server == "" || cc.Port == 0 || len(cc.RootDER) == 0 {
		return errors.New("CIRA configuration needs the server name, port and root certificate")
	}
	if cc.IntervalSeconds == 0 {
		cc.IntervalSeconds = 25
	}
	devs, secrets := e.Store.Devices(), e.Store.Secrets()
	c, admin, err := e.adminClient(ctx, uuid, host, dial, "CIRA")
	if err != nil {
		return err
	}
	defer admin.Wipe()
	defer func() {
		if err != nil {
			e.log().Warn("CIRA configuration failed", "dev", uuid, "err", err)
			_ = devs.SetState(context.WithoutCancel(ctx), uuid, StateFailed, "error", "CIRA: "+err.Error(), true)
		}
	}()
	step := func(name string, f func(ctx context.Context) error) error {
		if err := devs.SetState(ctx, uuid, "configuring", name, "", false); err != nil {
			return err
		}
		if err := e.call(ctx, f); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}

	// 1. Earlier MPS entries and their rules (AMT deletes a server's rules
	// with it; rules left over are deleted too).
	if err := step(StepCIRAUnconfigure, func(ctx context.Context) error {
		rules, err := c.Enumerate(ctx, "AMT_RemoteAccessPolicyRule")
		if err != nil {
			return err
		}
		for i := range rules {
			if err := c.Delete(ctx, "AMT_RemoteAccessPolicyRule", wsman.Selector{Name: "PolicyRuleName", Value: rules[i].Value("PolicyRuleName")}); err != nil {
				return err
			}
		}
		saps, err := c.Enumerate(ctx, "AMT_ManagementPresenceRemoteSAP")
		if err != nil {
			return err
		}
		for i := range saps {
			if err := c.Delete(ctx, "AMT_ManagementPresenceRemoteSAP", wsman.Selector{Name: "Name", Value: saps[i].Value("Name")}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}

	// 2. The MPS password, sealed before AMT hears of it.
	mps, err := pendingOrNewLen(ctx, secrets, uuid, store.MPS, mpsPasswordLen, "CIRA configuration")
	if err != nil {
		return err
	}
	defer mps.Wipe()
	user := MPSUsername(uuid)
	if err := devs.SetState(ctx, uuid, "configuring", StepCIRAPassword, "", false); err != nil {
		return err
	}

	// 3. amtd's root, unless AMT has it already.
	if err := step(StepCIRARoot, func(ctx context.Context) error {
		certs, err := c.Enumerate(ctx, "AMT_PublicKeyCertificate")
		if err != nil {
			return err
		}
		blob := base64.StdEncoding.EncodeToString(cc.RootDER)
		for i := range certs {
			if certs[i].Value("X509Certificate") == blob {
				return nil
			}
		}
		return c.Invoke(ctx, "AMT_PublicKeyManagementService", "AddTrustedRootCertificate", wsman.AddCertificateInput{CertificateBlob: blob}.Params(), nil)
	}); err != nil {
		return err
	}

	// 4. amtd as the MPS, then the rules that say when to connect.
	var sap wsman.AddMpServerOutput
	format := 201 // FQDN
	if a, err := netip.ParseAddr(cc.Server); err == nil {
		if !a.Is4() {
			return fmt.Errorf("CIRA server %s: give an FQDN or an IPv4 address", cc.Server)
		}
		format = 3
	}
	if err := step(StepCIRAServer, func(ctx context.Context) error {
		in := wsman.AddMpServerInput{AccessInfo: cc.Server, InfoFormat: format, Port: cc.Port, AuthMethod: 2, Username: user, Password: mps, CN: cc.Server}
		return c.Invoke(ctx, "AMT_RemoteAccessService", "AddMpServer", in.Params(), &sap)
	}); err != nil {
		return err
	}
	// AMT holds the password now: it is the current one.
	if err := secrets.Promote(ctx, uuid, store.MPS); err != nil {
		return err
	}
	if d, err := devs.Get(ctx, uuid); err == nil {
		d.CIRA.MPSUsername = user
		if err := devs.Put(ctx, d); err != nil {
			return err
		}
	}
	if err := step(StepCIRAPolicy, func(ctx context.Context) error {
		// Periodic: 8 bytes, network order, u32 0 (interval) + u32 seconds
		// (spec/activation.md §9 step 4.6).
		ext := make([]byte, 8)
		ext[4], ext[5], ext[6], ext[7] = byte(cc.IntervalSeconds>>24), byte(cc.IntervalSeconds>>16), byte(cc.IntervalSeconds>>8), byte(cc.IntervalSeconds)
		for _, r := range []wsman.AddRemoteAccessPolicyRuleInput{
			{Trigger: 2, TunnelLifeTime: 0, ExtendedData: base64.StdEncoding.EncodeToString(ext), MpServer: sap.MpServer},
			{Trigger: 0, TunnelLifeTime: 300, ExtendedData: "", MpServer: sap.MpServer},
		} {
			if err := c.Invoke(ctx, "AMT_RemoteAccessService", "AddRemoteAccessPolicyRule", r.Params(), nil); err != nil {
				return err
			}
		}
		return c.RequestStateChange(ctx, "AMT_UserInitiatedConnectionService", 32771)
	}); err != nil {
		return err
	}

	// 5. Detection strings that match no real domain, so AMT always
	// believes it is outside and keeps CIRA up (spec/network.md §5, as RPS
	// does; the comparison rule is unverified, so nothing the site serves
	// can equal or end with it).
	if err := step(StepCIRADetection, func(ctx context.Context) error {
		var inst wsman.Instance
		if err := c.Get(ctx, "AMT_EnvironmentDetectionSettingData", &inst); err != nil {
			return err
		}
		inst.Set("DetectionStrings", detectionString())
		_, err := c.Put(ctx, "AMT_EnvironmentDetectionSettingData", inst)
		return err
	}); err != nil {
		return err
	}
	if err := devs.SetState(ctx, uuid, StateConfigured, "cira", "CIRA to "+cc.Server+":"+strconv.Itoa(cc.Port), false); err != nil {
		return err
	}
	e.log().Info("CIRA configured", "dev", uuid, "server", cc.Server, "port", cc.Port)
	return nil
}

// detectionString is a random name under .invalid (RFC 6761), which no
// DHCP server hands out.
func detectionString() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b) + ".amtd.invalid"
}

// pendingOrNewLen returns the device's pending password of kind, or seals a
// new one of n characters as pending and returns it. A pending password left
// by an earlier try is reused: the device may hold it.
func pendingOrNewLen(ctx context.Context, s *store.Secrets, uuid string, kind store.SecretKind, n int, reason string) (secret.Value, error) {
	cs, err := s.Candidates(ctx, uuid, kind)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return secret.Value{}, err
	}
	var pending secret.Value
	for _, c := range cs {
		if c.State == store.StatePending && pending.IsZero() {
			pending = c.Value
		} else {
			c.Value.Wipe()
		}
	}
	if !pending.IsZero() {
		return pending, nil
	}
	v, err := password.Generate(n)
	if err != nil {
		return secret.Value{}, err
	}
	if err := s.SetPending(ctx, uuid, kind, v, reason); err != nil {
		v.Wipe()
		return secret.Value{}, err
	}
	return v, nil
}
