// Package provision activates AMT devices and keeps their passwords safe.
//
// The bare-metal path (spec/activation.md §3): a device in Setup Mode sends a
// hello; amtd connects back to its 16993 with mutual TLS, presenting the
// domain's provisioning chain, and runs the setup sequence over WS-Man. The
// device ends in Admin Control Mode with an admin and a MEBx password that
// only the store knows.
//
// Every password is sealed and fsynced as pending before the device is asked
// to take it, and becomes current only after a login with it succeeds
// (store.Secrets). Each step is recorded in the device's history before it
// runs, so a restarted amtd knows where a device was and resumes: a device
// still in Setup Mode is taken through the sequence again with the same
// pending passwords; a device that already committed is found by trying the
// stored candidates.
package provision

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"amtd/amt/digest"
	"amtd/amt/password"
	"amtd/amt/wsman"
	"amtd/daemon/control"
	"amtd/metrics"
	"amtd/secret"
	"amtd/store"
)

// Provisioning states a device passes through (devices.provisioning_state).
const (
	StateActivating = "activating"
	StateActivated  = "activated"
	StateFailed     = "failed"
)

// Steps of the bare-metal sequence, recorded in the device history before
// each runs (spec/activation.md §3 step 4).
const (
	StepConnect   = "connect"
	StepPasswords = "passwords-sealed"
	StepMEBx      = "set-mebx-password"
	StepAdmin     = "set-admin-acl"
	StepClock     = "clock"
	StepCommit    = "commit"
	StepVerify    = "verify"
	StepResume    = "resume"
)

// Control modes (IPS_HostBasedSetupService.CurrentControlMode).
const (
	ModePreProvisioning = 0
	ModeCCM             = 1
	ModeACM             = 2
)

// adminUser is the AMT admin account name (spec/wsman.md §2).
const adminUser = "admin"

// passwordLen is the length of generated admin and MEBx passwords.
const passwordLen = 16

// clockSkew is how far AMT's clock may be off before amtd sets it
// (spec/activation.md §3 step 4.6).
const clockSkew = 10 * time.Second

// Target is one device to activate.
type Target struct {
	UUID string
	// Addr is host:port of the device's TLS listener (16993).
	Addr string
}

// host is the Host header RPS and MPS send: "<uuid>:16993".
func (t Target) host() string { return t.UUID + ":16993" }

// Engine runs activations. Its zero value is not usable: set Store.
type Engine struct {
	Store *store.Store
	Log   *slog.Logger
	// Metrics, when set, counts activations by result.
	Metrics *metrics.Registry
	// Dial opens the TCP connection to the device; nil uses net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// CallTimeout bounds each WS-Man call (default 30 s: firmware is slow).
	CallTimeout time.Duration
	// Now is the clock the device's time is set from (default time.Now).
	Now func() time.Time
	// CIRA, when set, is where devices whose profile asks for CIRA are
	// told to connect after activation; nil: this appliance runs no relay.
	CIRA *CIRAConfig
	// DeviceCA certifies devices' TLS keys for profiles that turn TLS on.
	DeviceCA DeviceCA

	// progress, when set, counts ends and keeps the last failures for
	// `amtd status` (the Service's).
	progress *Progress
}

// profileFor picks the stored profile for a device (SelectProfile).
func (e *Engine) profileFor(ctx context.Context, uuid, suffix string) (string, ProfileSettings, error) {
	ps, err := e.Store.Profiles().List(ctx)
	if err != nil {
		return "", ProfileSettings{}, err
	}
	return SelectProfile(ps, uuid, suffix)
}

// configure runs what the profile asks after activation: the wired port's
// network settings first (spec/activation.md §9: network comes before the
// rest), then CIRA, when the profile wants it and this appliance runs the
// relay; then redirection and user consent, when the profile sets them.
func (e *Engine) configure(ctx context.Context, uuid, host string, dial wsman.Dialer, ps ProfileSettings, mode int) (cira bool, err error) {
	if ps.Network != NetworkKeep {
		if err := e.configureNetwork(ctx, uuid, host, dial, ps.Network); err != nil {
			return false, err
		}
	}
	if ps.CIRA && e.CIRA != nil {
		cira = true
		if err := e.configureCIRA(ctx, uuid, host, dial, *e.CIRA); err != nil {
			return cira, err
		}
	}
	if ps.TLS {
		if err := e.configureTLS(ctx, uuid, host, dial); err != nil {
			return cira, err
		}
	}
	if ps.Features != nil {
		if err := e.configureFeatures(ctx, uuid, host, dial, ps.Features, mode); err != nil {
			return cira, err
		}
	}
	return cira, nil
}

func (e *Engine) log() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Log
}

func (e *Engine) now() time.Time {
	if e.Now == nil {
		return time.Now()
	}
	return e.Now()
}

// count ends an activation or configuration well (activated, resumed,
// upgraded) or not (failed, from recordFailure).
func (e *Engine) count(result string) {
	activationMetrics{e.Metrics}.ended(result)
	if result != "failed" {
		e.progress.succeed()
	}
}

// started counts an activation starting on path (hello, agent-acm,
// agent-ccm, agent-upgrade).
func (e *Engine) started(path string) { activationMetrics{e.Metrics}.started(path) }

// dialer makes a WS-Man dialer to t; chain, when set, is presented as the
// client certificate (the setup session). AMT's own certificate is
// self-signed until provisioning installs one, so it is not verified here
// (spec/activation.md §3 step 2, as MeshCentral does).
func (e *Engine) dialer(t Target, chain *tls.Certificate) wsman.Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // AMT's self-signed certificate, see above
		if chain != nil {
			cfg.Certificates = []tls.Certificate{*chain}
		}
		dial := e.Dial
		if dial == nil {
			var d net.Dialer
			dial = d.DialContext
		}
		raw, err := dial(ctx, "tcp", t.Addr)
		if err != nil {
			return nil, err
		}
		c := tls.Client(raw, cfg)
		if err := c.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, err
		}
		return c, nil
	}
}

// call runs f under the per-call timeout.
func (e *Engine) call(ctx context.Context, f func(ctx context.Context) error) error {
	d := e.CallTimeout
	if d <= 0 {
		d = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return f(ctx)
}

// Result says how an activation ended.
type Result struct {
	// Resumed is true when the device had already committed and amtd only
	// confirmed which stored password it took.
	Resumed bool
	Realm   string
}

// ActivateACM takes a device in Setup Mode to Admin Control Mode over the
// mutual-TLS setup session, presenting chain (leaf first, root last, with
// the leaf's key). It is safe to call again after any failure or crash:
// see the package comment.
func (e *Engine) ActivateACM(ctx context.Context, t Target, chain tls.Certificate) (res Result, err error) {
	uuid, err := store.NormalizeUUID(t.UUID)
	if err != nil {
		return res, err
	}
	t.UUID = uuid
	devs, secrets := e.Store.Devices(), e.Store.Secrets()
	if err := e.ensureDevice(ctx, uuid, ""); err != nil {
		return res, err
	}
	e.started("hello")
	log := e.log().With("dev", uuid)
	defer e.recordFailure(ctx, uuid, &err)
	if err := devs.SetState(ctx, uuid, StateActivating, StepConnect, t.Addr, false); err != nil {
		return res, err
	}

	setup := wsman.NewClient(e.dialer(t, &chain), wsman.Credentials{Host: t.host(), Username: adminUser})
	var gs wsman.AMTGeneralSettings
	err = e.call(ctx, func(ctx context.Context) error { return setup.Get(ctx, "AMT_GeneralSettings", &gs) })
	if err != nil {
		// No setup session: the device may have committed before amtd
		// recorded it. The stored passwords tell.
		if r, rerr := e.resume(ctx, t, log); rerr == nil {
			return r, nil
		} else {
			log.Info("setup session refused and no stored password opens the device", "setup", err, "resume", rerr)
		}
		return res, withReason(ReasonSetupRefused, fmt.Errorf("the device refused the setup session (%w); is it in Setup Mode, and does it trust the domain's root?", err))
	}
	res.Realm = gs.DigestRealm
	if res.Realm == "" {
		return res, errors.New("the device reported no digest realm (AMT_GeneralSettings.DigestRealm)")
	}
	// A machine set up by a USB key from amtd usb-setup reports the host
	// name its record gave it: that matches the record to the device.
	if rec, ok, err := e.Store.USBRecords().MatchHostName(ctx, gs.HostName, uuid); err != nil {
		log.Warn("matching a USB record", "err", err)
	} else if ok {
		log.Info("USB setup record matched", "file", rec.File[:12], "record", rec.Record, "host", gs.HostName)
		_ = devs.SetState(ctx, uuid, StateActivating, "usb-record", fmt.Sprintf("record %d of setup.bin %s", rec.Record, rec.File[:12]), false)
	}
	var sw []wsman.Instance
	if err := e.call(ctx, func(ctx context.Context) (err error) { sw, err = setup.Enumerate(ctx, "CIM_SoftwareIdentity"); return }); err != nil {
		return res, fmt.Errorf("read the AMT version: %w", err)
	}
	version := ""
	for i := range sw {
		if sw[i].Value("InstanceID") == "AMT" {
			version = sw[i].Value("VersionString")
		}
	}
	if version == "" {
		return res, errors.New("the device reported no AMT version (CIM_SoftwareIdentity InstanceID=AMT)")
	}
	if d, err := devs.Get(ctx, uuid); err == nil {
		d.AMTVersion = version
		// Where amtd reached it: the address its hello came from.
		if ap, err := netip.ParseAddrPort(t.Addr); err == nil {
			d.Addresses = []netip.Addr{ap.Addr()}
		}
		if err := devs.Put(ctx, d); err != nil {
			return res, err
		}
	}

	// Passwords: sealed and on disk before the device hears of them. A
	// pending one left by an earlier try is reused: the device may hold it.
	admin, err := pendingOrNew(ctx, secrets, uuid, store.AMTAdmin)
	if err != nil {
		return res, err
	}
	defer admin.Wipe()
	mebx, err := pendingOrNew(ctx, secrets, uuid, store.MEBx)
	if err != nil {
		return res, err
	}
	defer mebx.Wipe()
	if err := devs.SetState(ctx, uuid, StateActivating, StepPasswords, "AMT "+version, false); err != nil {
		return res, err
	}

	steps := []struct {
		step string
		run  func(ctx context.Context) error
	}{
		// The MEBx password must be set before CommitChanges (IRG, spec/activation.md §3 step 4.4).
		{StepMEBx, func(ctx context.Context) error {
			return setup.Invoke(ctx, "AMT_SetupAndConfigurationService", "SetMEBxPassword", wsman.SetMEBxPasswordInput{Password: mebx}.Params(), nil)
		}},
		{StepAdmin, func(ctx context.Context) error {
			in := wsman.SetAdminAclEntryExInput{Username: adminUser, DigestPassword: digest.HA1Base64(adminUser, res.Realm, admin)}
			return setup.Invoke(ctx, "AMT_AuthorizationService", "SetAdminAclEntryEx", in.Params(), nil)
		}},
		{StepClock, func(ctx context.Context) error { return e.syncClock(ctx, setup) }},
		{StepCommit, func(ctx context.Context) error {
			return setup.Invoke(ctx, "AMT_SetupAndConfigurationService", "CommitChanges", nil, nil)
		}},
	}
	for _, s := range steps {
		if err := devs.SetState(ctx, uuid, StateActivating, s.step, "", false); err != nil {
			return res, err
		}
		if err := e.call(ctx, s.run); err != nil {
			return res, fmt.Errorf("%s: %w", s.step, err)
		}
	}
	if err := devs.SetState(ctx, uuid, StateActivating, StepVerify, "", false); err != nil {
		return res, err
	}
	if err := e.Verify(ctx, t, admin); err != nil {
		return res, fmt.Errorf("verify: %w", err)
	}
	if err := e.promote(ctx, uuid); err != nil {
		return res, err
	}
	e.count("activated")
	log.Info("activated in admin control mode", "version", version)
	return res, nil
}

// pendingOrNew returns the device's pending password of kind, or seals a
// new one as pending and returns it.
func pendingOrNew(ctx context.Context, s *store.Secrets, uuid string, kind store.SecretKind) (secret.Value, error) {
	return pendingOrNewLen(ctx, s, uuid, kind, passwordLen, "bare-metal activation")
}

// syncClock sets AMT's clock when it is more than clockSkew off
// (spec/activation.md §3 step 4.6).
func (e *Engine) syncClock(ctx context.Context, c *wsman.Client) error {
	var low wsman.GetLowAccuracyTimeSynchOutput
	if err := c.Invoke(ctx, "AMT_TimeSynchronizationService", "GetLowAccuracyTimeSynch", nil, &low); err != nil {
		return err
	}
	now := e.now()
	if d := now.Sub(time.Unix(low.Ta0, 0)); d < clockSkew && d > -clockSkew {
		return nil
	}
	in := wsman.SetHighAccuracyTimeSynchInput{Ta0: low.Ta0, Tm1: now.Unix(), Tm2: e.now().Unix()}
	return c.Invoke(ctx, "AMT_TimeSynchronizationService", "SetHighAccuracyTimeSynch", in.Params(), nil)
}

// Verify logs in with the admin password over an ordinary session and
// checks the device is in admin control mode.
func (e *Engine) Verify(ctx context.Context, t Target, admin secret.Value) error {
	return e.verifyMode(ctx, e.dialer(t, nil), t.host(), admin, ModeACM)
}

// verifyMode logs in as admin with pw through dial and checks the control
// mode.
func (e *Engine) verifyMode(ctx context.Context, dial wsman.Dialer, host string, pw secret.Value, want int) error {
	c := wsman.NewClient(dial, wsman.Credentials{Host: host, Username: adminUser, Password: pw})
	var hb wsman.IPSHostBasedSetupService
	if err := e.call(ctx, func(ctx context.Context) error { return c.Get(ctx, "IPS_HostBasedSetupService", &hb) }); err != nil {
		return err
	}
	if int(hb.CurrentControlMode) != want {
		return fmt.Errorf("the device is in control mode %d, not %s (%d)", hb.CurrentControlMode, modeNames[want], want)
	}
	return nil
}

var modeNames = map[int]string{ModePreProvisioning: "pre-provisioning", ModeCCM: "client control mode", ModeACM: "admin control mode"}

// promote records that the device took its pending passwords. The admin
// and MEBx passwords were committed together, so both are promoted.
func (e *Engine) promote(ctx context.Context, uuid string) error {
	return e.promoteMode(ctx, uuid, ModeACM)
}

// promoteMode is promote for a device that reached mode.
func (e *Engine) promoteMode(ctx context.Context, uuid string, mode int) error {
	secrets, devs := e.Store.Secrets(), e.Store.Devices()
	for _, kind := range []store.SecretKind{store.AMTAdmin, store.MEBx} {
		if err := secrets.Promote(ctx, uuid, kind); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	d, err := devs.Get(ctx, uuid)
	if err != nil {
		return err
	}
	d.ControlMode, d.LastError, d.NextAction = mode, "", ""
	if err := devs.Put(ctx, d); err != nil {
		return err
	}
	return devs.SetState(ctx, uuid, StateActivated, StepVerify, modeNames[mode], false)
}

// resume finds which stored admin password a device that refuses the setup
// session accepts. If it is the pending one, the device committed before
// amtd recorded it: the passwords are promoted now.
func (e *Engine) resume(ctx context.Context, t Target, log *slog.Logger) (Result, error) {
	secrets := e.Store.Secrets()
	cs, err := secrets.Candidates(ctx, t.UUID, store.AMTAdmin)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		for _, c := range cs {
			c.Value.Wipe()
		}
	}()
	var errs []error
	for _, c := range cs {
		err := e.Verify(ctx, t, c.Value)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s password: %w", c.State, err))
			continue
		}
		if err := e.Store.Devices().SetState(ctx, t.UUID, StateActivating, StepResume, "device accepts the "+c.State+" admin password", false); err != nil {
			return Result{}, err
		}
		switch c.State {
		case store.StatePending:
			if err := e.promote(ctx, t.UUID); err != nil {
				return Result{}, err
			}
		case store.StatePrevious:
			return Result{}, errors.New("the device accepts only the previous admin password: it lost a change; change it again before use")
		default:
			if err := e.promote(ctx, t.UUID); err != nil {
				return Result{}, err
			}
		}
		e.count("resumed")
		log.Info("activation resumed: the device had committed", "password", c.State)
		return Result{Resumed: true}, nil
	}
	return Result{}, errors.Join(errs...)
}

// ChangeAdminPassword gives an activated device a new admin password
// through dial: newPW if set (it must meet AMT's rule), else a random one.
// It is sealed as pending before SetAdminAclEntryEx and promoted only after
// a login with it; until then the current one stays current.
func (e *Engine) ChangeAdminPassword(ctx context.Context, uuid, host string, dial wsman.Dialer, current, newPW secret.Value) error {
	secrets := e.Store.Secrets()
	if !newPW.IsZero() {
		if err := password.Check(newPW.RevealString()); err != nil {
			return err
		}
		if err := secrets.SetPending(ctx, uuid, store.AMTAdmin, newPW, "changepassword"); err != nil {
			return err
		}
	}
	pw, err := pendingOrNewLen(ctx, secrets, uuid, store.AMTAdmin, passwordLen, "changepassword")
	if err != nil {
		return err
	}
	defer pw.Wipe()
	c := wsman.NewClient(dial, wsman.Credentials{Host: host, Username: adminUser, Password: current})
	var gs wsman.AMTGeneralSettings
	if err := e.call(ctx, func(ctx context.Context) error { return c.Get(ctx, "AMT_GeneralSettings", &gs) }); err != nil {
		return err
	}
	in := wsman.SetAdminAclEntryExInput{Username: adminUser, DigestPassword: digest.HA1Base64(adminUser, gs.DigestRealm, pw)}
	setErr := e.call(ctx, func(ctx context.Context) error {
		return c.Invoke(ctx, "AMT_AuthorizationService", "SetAdminAclEntryEx", in.Params(), nil)
	})
	var hb wsman.IPSHostBasedSetupService
	nc := wsman.NewClient(dial, wsman.Credentials{Host: host, Username: adminUser, Password: pw})
	if err := e.call(ctx, func(ctx context.Context) error { return nc.Get(ctx, "IPS_HostBasedSetupService", &hb) }); err != nil {
		if setErr != nil {
			return fmt.Errorf("SetAdminAclEntryEx: %w", setErr)
		}
		return fmt.Errorf("the new password does not open the device: %w", err)
	}
	if err := secrets.Promote(ctx, uuid, store.AMTAdmin); err != nil {
		return err
	}
	return e.Store.Devices().SetState(ctx, uuid, StateActivated, "changepassword", "admin password changed", false)
}

// ensureDevice creates the device's row when it has none.
func (e *Engine) ensureDevice(ctx context.Context, uuid, version string) error {
	devs := e.Store.Devices()
	_, err := devs.Get(ctx, uuid)
	if errors.Is(err, store.ErrNotFound) {
		return devs.Put(ctx, store.Device{UUID: uuid, AMTVersion: version})
	}
	return err
}

// recordFailure, deferred with the function's error, counts a failed
// activation by the step it failed at and why, keeps it for `amtd status`,
// and says why on the device (last_error, in plain words).
func (e *Engine) recordFailure(ctx context.Context, uuid string, err *error) {
	if *err == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	step := "start"
	if h, herr := e.Store.Devices().History(ctx, uuid); herr == nil && len(h) > 0 {
		step = h[len(h)-1].Step
	}
	reason := failureReason(*err)
	e.count("failed")
	activationMetrics{e.Metrics}.failed(step, reason)
	e.progress.fail(control.ActivationFailure{UUID: uuid, At: e.now(), Step: step, Kind: reason, Reason: (*err).Error()})
	e.log().Warn("activation failed", "dev", uuid, "step", step, "reason", reason, "err", *err)
	_ = e.Store.Devices().SetState(ctx, uuid, StateFailed, "error", (*err).Error(), true)
}

// localSession logs in with the local system account through dial (the
// agent's relay to LMS) and reads the digest realm.
func (e *Engine) localSession(ctx context.Context, dial wsman.Dialer, host, user string, pass secret.Value) (*wsman.Client, string, error) {
	c := wsman.NewClient(dial, wsman.Credentials{Host: host, Username: user, Password: pass})
	var gs wsman.AMTGeneralSettings
	if err := e.call(ctx, func(ctx context.Context) error { return c.Get(ctx, "AMT_GeneralSettings", &gs) }); err != nil {
		return nil, "", fmt.Errorf("read the realm with the local system account: %w", err)
	}
	if err := digest.ValidateRealm(gs.DigestRealm); err != nil {
		return nil, "", fmt.Errorf("the device's realm: %w", err)
	}
	return c, gs.DigestRealm, nil
}

// adminClient is a WS-Man client through dial as the device's current admin
// (the stored password); the caller wipes the returned password when done.
func (e *Engine) adminClient(ctx context.Context, uuid, host string, dial wsman.Dialer, what string) (*wsman.Client, secret.Value, error) {
	admin, err := e.Store.Secrets().Current(ctx, uuid, store.AMTAdmin)
	if err != nil {
		return nil, secret.Value{}, fmt.Errorf("%s: no current admin password for the device: %w", what, err)
	}
	return wsman.NewClient(dial, wsman.Credentials{Host: host, Username: adminUser, Password: admin}), admin, nil
}
