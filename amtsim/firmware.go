package amtsim

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"amtd/amt/password"
)

// Return values the firmware methods use (spec/wsman.md §6). The host-based
// setup service has its own small table; the AMT_* services return Intel
// PT_STATUS codes; CIM methods return DMTF codes.
const (
	hbsSuccess       = 0
	hbsInvalidState  = 2
	hbsInvalidParam  = 3
	hbsAuthFailed    = 5
	ptSuccess        = 0
	ptInternalError  = 1
	ptInvalidName    = 12
	ptNotPermitted   = 16
	ptMaxLimit       = 23
	ptInvalidParam   = 36
	ptInvalidPass    = 2054
	ptDataMissing    = 2057
	ptDuplicate      = 2058
	cimCompleted     = 0
	cimInvalidParam  = 5
	cimInvalidTransn = 4097
)

// Limits of the simulated flash. Real firmware has fixed slot counts too;
// these numbers are guesses sized for what amtd configures.
const (
	maxKeys      = 16
	maxCerts     = 24
	maxMPServers = 4
	maxChain     = 8
)

// Session says how a WS-Man caller reached the firmware.
type Session struct {
	// Setup is the mutual-TLS remote configuration session: the client
	// presented a provisioning chain that passed the checks
	// (spec/activation.md §3).
	Setup bool
	// Local is the host side (LMS), where the OS admin account works.
	Local bool
	User  string
}

// CheckPassword applies the AMT admin and MEBx rule (spec/activation.md
// §11), as firmware does.
func CheckPassword(p string) error { return password.Check(p) }

// checkUsername applies the username rule of spec/activation.md §11.
func checkUsername(u string) error {
	switch {
	case u == "" || len(u) > 16:
		return fmt.Errorf("user name %q: 1–16 characters", u)
	case strings.HasPrefix(u, "$$"):
		return fmt.Errorf("user name %q starts with $$, reserved for local accounts", u)
	}
	return nil
}

// trustedLocked is the default root table plus the user-added hashes.
func (d *Device) trustedLocked() []RootHash {
	return append(DefaultRootHashes(), d.s.UserHashes...)
}

// ChainCheck returns the checks this device applies to a provisioning
// chain now.
func (d *Device) ChainCheck() ChainCheck {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.chainCheckLocked()
}

func (d *Device) chainCheckLocked() ChainCheck {
	return ChainCheck{Version: d.Version, Trusted: d.trustedLocked(), Suffix: d.dnsSuffixLocked(), Now: d.now()}
}

// ConfigurationNonce is the current nonce (IPS_HostBasedSetupService).
func (d *Device) ConfigurationNonce() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.s.ConfigurationNonce)
}

// Setup is IPS_HostBasedSetupService.Setup: client control mode with the
// admin password given as hex MD5 A1 (spec/wsman.md §2, §6).
func (d *Device) Setup(encType int, passHex string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.s.ControlMode != ModePreProvisioning {
		return hbsInvalidState
	}
	if encType != 2 || !isHexMD5(passHex) {
		return hbsInvalidParam
	}
	d.s.AdminUser, d.s.AdminHA1 = "admin", strings.ToLower(passHex)
	d.s.ControlMode, d.s.ProvisioningState = ModeCCM, StatePost
	d.s.ConfigurationNonce = newNonce()
	d.commitLocked()
	d.log.Info("Setup: client control mode")
	return hbsSuccess
}

func isHexMD5(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 16
}

// AddNextCertInChain collects the provisioning chain, leaf first and root
// last (spec/activation.md §6 step 6).
func (d *Device) AddNextCertInChain(der []byte, isLeaf, isRoot bool) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if isLeaf {
		d.chain = d.chain[:0]
	} else if len(d.chain) == 0 {
		return hbsInvalidState // the first certificate must be the leaf
	}
	if len(d.chain) >= maxChain {
		return hbsInvalidParam
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return hbsInvalidParam
	}
	d.chain = append(d.chain, c)
	if isRoot && !isSelfSigned(c) {
		return hbsInvalidParam
	}
	return hbsSuccess
}

// verifySignedNonceLocked checks the chain collected by AddNextCertInChain
// and the signature over ConfigurationNonce || McNonce with the leaf key
// (spec/activation.md §6 step 7). Any failure is AuthFailed (§6: "ReturnValue
// 5 is what an invalid chain, hash or domain produces"). The nonce is
// refreshed whatever the outcome, so a signature cannot be replayed.
func (d *Device) verifySignedNonceLocked(mcNonce []byte, alg int, sig []byte) error {
	nonce := d.s.ConfigurationNonce
	d.s.ConfigurationNonce = newNonce()
	chain := d.chain
	d.chain = nil
	if alg != 2 {
		return fmt.Errorf("SigningAlgorithm %d: only 2 (RSASHA2256) is supported", alg)
	}
	if len(mcNonce) != 20 {
		return fmt.Errorf("McNonce has %d bytes, want 20", len(mcNonce))
	}
	if len(chain) == 0 || !isSelfSigned(chain[len(chain)-1]) {
		return fmt.Errorf("no complete certificate chain was added (AddNextCertInChain leaf first, root last)")
	}
	if _, err := d.chainCheckLocked().Verify(chain); err != nil {
		return err
	}
	pub, ok := chain[0].PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("leaf key is not RSA")
	}
	h := sha256.Sum256(append(slices.Clone(nonce), mcNonce...))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig); err != nil {
		return fmt.Errorf("signature over ConfigurationNonce||McNonce does not verify with the leaf key: %w", err)
	}
	return nil
}

// AdminSetup is IPS_HostBasedSetupService.AdminSetup (spec/activation.md §6).
func (d *Device) AdminSetup(encType int, passHex string, mcNonce []byte, alg int, sig []byte) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.s.ControlMode != ModePreProvisioning {
		return hbsInvalidState
	}
	if encType != 2 || !isHexMD5(passHex) {
		return hbsInvalidParam
	}
	if err := d.verifySignedNonceLocked(mcNonce, alg, sig); err != nil {
		d.commitLocked()
		d.log.Warn("AdminSetup refused", "err", err)
		return hbsAuthFailed
	}
	d.s.AdminUser, d.s.AdminHA1 = "admin", strings.ToLower(passHex)
	d.s.ControlMode, d.s.ProvisioningState = ModeACM, StatePost
	d.commitLocked()
	d.log.Info("AdminSetup: admin control mode")
	return hbsSuccess
}

// UpgradeClientToAdmin moves CCM to ACM (spec/activation.md §7).
func (d *Device) UpgradeClientToAdmin(mcNonce []byte, alg int, sig []byte) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.s.ControlMode != ModeCCM {
		return hbsInvalidState
	}
	if err := d.verifySignedNonceLocked(mcNonce, alg, sig); err != nil {
		d.commitLocked()
		d.log.Warn("UpgradeClientToAdmin refused", "err", err)
		return hbsAuthFailed
	}
	d.s.ControlMode = ModeACM
	d.commitLocked()
	d.log.Info("UpgradeClientToAdmin: admin control mode")
	return hbsSuccess
}

// SetAdminAclEntryEx sets the admin user and its digest hash: base64 of
// the 16 raw MD5 bytes (spec/wsman.md §2). MeshCentral's hex form is
// accepted too, because whether AMT takes it is unverified; it is logged.
func (d *Device) SetAdminAclEntryEx(user, digestPassword string) int {
	if err := checkUsername(user); err != nil {
		return ptInvalidName
	}
	var ha1 string
	if raw, err := base64.StdEncoding.DecodeString(digestPassword); err == nil && len(raw) == 16 {
		ha1 = hex.EncodeToString(raw)
	} else if isHexMD5(digestPassword) {
		d.log.Info("SetAdminAclEntryEx: DigestPassword in hex form (MeshCentral's), accepted; AMT's acceptance is unverified")
		ha1 = strings.ToLower(digestPassword)
	} else {
		return ptInvalidPass
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.s.AdminUser, d.s.AdminHA1 = user, ha1
	d.commitLocked()
	return ptSuccess
}

// SetMEBxPassword sets the MEBx password; it must satisfy the password
// rule (2054 otherwise). In client control mode the MEBx is not the remote
// caller's to change (spec/activation.md §9 step 7: "ACM only").
func (d *Device) SetMEBxPassword(p string) int {
	if CheckPassword(p) != nil {
		return ptInvalidPass
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.s.ControlMode == ModeCCM {
		return ptNotPermitted
	}
	d.s.MEBxPassword = p
	d.commitLocked()
	return ptSuccess
}

// CommitChanges ends the bare-metal setup session in admin control mode
// and makes pending TLS settings take effect (spec/activation.md §3 step 8).
// A device ending up in ACM needs its MEBx password first: 2057 otherwise
// (IRG; spec/activation.md §8 SHBC). The setup session also needs the admin
// ACL entry.
func (d *Device) CommitChanges(sess Session) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	toACM := d.s.ControlMode == ModePreProvisioning && sess.Setup
	if d.s.ControlMode == ModePreProvisioning && !toACM {
		return ptNotPermitted
	}
	if (toACM || d.s.ControlMode == ModeACM) && d.s.MEBxPassword == "" {
		return ptDataMissing
	}
	if toACM && d.s.AdminHA1 == "" {
		return ptDataMissing
	}
	if toACM {
		d.s.ControlMode, d.s.ProvisioningState = ModeACM, StatePost
		d.log.Info("CommitChanges: admin control mode")
	}
	d.s.ActiveTLS = ActiveTLS{CertInstanceID: d.s.TLSCredCert, Enabled: d.s.TLSRemote.Enabled, AcceptNonSecure: d.s.TLSRemote.AcceptNonSecure || !d.s.TLSRemote.Enabled}
	d.commitLocked()
	hooks := slices.Clone(d.onCommit)
	go func() {
		for _, h := range hooks {
			h()
		}
	}()
	return ptSuccess
}

// unprovisionDropDelay is how long after Unprovision the CIRA tunnel
// stays up for the reply to leave.
const unprovisionDropDelay = time.Second

// Unprovision returns the device to pre-provisioning: passwords, keys,
// certificates, CIRA and TLS settings go, user-added root hashes are
// deleted (spec/activation.md §10); the realm, UUID and the MEBx PKI DNS
// suffix stay. Whether a full unprovision also resets the MEBx password is
// unverified; the simulator resets it.
func (d *Device) Unprovision(mode int) int {
	if mode != 1 {
		return ptInvalidParam
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.s.ControlMode == ModePreProvisioning {
		return ptNotPermitted
	}
	old := d.s
	fresh := factorySettings(d.UUID, d.Version, old.Realm)
	fresh.RemoteConfigEnabled = old.RemoteConfigEnabled
	fresh.TrustedDNSSuffix = old.TrustedDNSSuffix
	fresh.DhcpDNSSuffix = old.DhcpDNSSuffix
	fresh.HostName = old.HostName
	d.s = fresh
	d.chain = nil
	d.dsrv = nil
	d.commitLocked()
	d.log.Info("Unprovision: pre-provisioning")
	// The tunnel goes once the answer is out: AMT replies to an Unprovision
	// that came over CIRA (MPS's deactivate reads its ReturnValue), then
	// drops the link its MPS settings no longer allow.
	time.AfterFunc(unprovisionDropDelay, d.ciraReconcile)
	return ptSuccess
}

// Time returns the firmware clock (host clock plus the stored offset).
func (d *Device) Time() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.now().Unix() + d.s.ClockOffset
}

// SetClockOffset skews the firmware clock, as a device with a drifted RTC.
func (d *Device) SetClockOffset(sec int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.s.ClockOffset = sec
	d.commitLocked()
}

// SetHighAccuracyTimeSynch sets the clock to Tm1 (spec/wsman.md §6). Ta0
// must be a value GetLowAccuracyTimeSynch could have returned recently; the
// window of 5 minutes is a guess.
func (d *Device) SetHighAccuracyTimeSynch(ta0, tm1, tm2 int64) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	fw := d.now().Unix() + d.s.ClockOffset
	if ta0 > fw || fw-ta0 > 300 || tm2 < tm1 {
		return ptInvalidParam
	}
	d.s.ClockOffset = tm1 - d.now().Unix()
	d.commitLocked()
	return ptSuccess
}

// Power states of CIM_AssociatedPowerManagementService (DMTF): the
// requestable set is the one in the fixture.
var requestablePower = []int{10, 8, 5, 11, 4, 7, 14, 12}

// RequestPowerStateChange applies a DMTF power action and reports the
// resulting PowerState.
func (d *Device) RequestPowerStateChange(state int) int {
	if !slices.Contains(requestablePower, state) && state != 2 {
		return cimInvalidParam
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch state {
	case 2, 5, 10, 11, 14: // on, power cycle, master bus reset, …: the host ends up on
		d.s.PowerState = 2
	case 8, 12, 13:
		d.s.PowerState = 8
	case 4:
		d.s.PowerState = 4
	case 7:
		d.s.PowerState = 7
	}
	d.commitLocked()
	return cimCompleted
}

// PowerState is the CIM PowerState the device reports.
func (d *Device) PowerState() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.s.PowerState
}
