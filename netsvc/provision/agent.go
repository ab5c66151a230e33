package provision

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/websocket"

	"amtd/amt/digest"
	"amtd/amt/rps"
	"amtd/amt/wsman"
	"amtd/metrics"
	"amtd/secret"
	"amtd/store"
)

// AgentServer is the endpoint stock rpc-go agents activate against: the
// RPS WebSocket protocol v4.0.0 (spec/rpc-protocol.md), served over TLS.
//
// The protocol itself authenticates nothing (spec/rpc-protocol.md §10).
// amtd adds, without changing rpc-go: an enrolment token the agent carries
// in the tenant field (`rpc activate --tenantid TOKEN`), compared in
// constant time; an optional list of source subnets; one session per
// device UUID at a time; and a log line for every command with its UUID,
// source and outcome.
type AgentServer struct {
	Engine *Engine
	// Chains gives the domains' provisioning chains for ACM profiles.
	Chains ChainSource
	// Token is the site's enrolment token; empty refuses every agent.
	Token secret.Value
	// AllowFrom, when not empty, lists the subnets agents may connect from.
	AllowFrom []netip.Prefix
	// AppVersion is amtd's version, sent in every message.
	AppVersion string
	// TunnelTrust is which certificates AMT 19+ devices may present in
	// the TLS tunnel; "" is TrustODCA (spec/network.md §7).
	TunnelTrust TunnelTrust
	// ODCARoots are trusted as On-Die CA roots besides Intel's built-in
	// one (amtsim's simulated ODCA, `amtsim -odca FILE`).
	ODCARoots []*x509.Certificate
	// TLSRestartDelay is how long AMT 19+ is given to restart its TLS
	// stack after CommitChanges before the next connection; 0 is RPS's
	// delay_tls_timer, 15 s (spec/activation.md §8 step 3).
	TLSRestartDelay time.Duration
	Log             *slog.Logger
	Metrics         *metrics.Registry

	mu     sync.Mutex
	active map[string]agentClaim
	conns  map[*websocket.Conn]context.CancelFunc
	closed bool
}

// Close ends every agent session: their activations stop at the next call
// and resume when the agent runs again.
func (a *AgentServer) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	for ws, cancel := range a.conns {
		cancel()
		ws.Close()
	}
}

// track registers a session; false when the server is closing.
func (a *AgentServer) track(ws *websocket.Conn, cancel context.CancelFunc) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	if a.conns == nil {
		a.conns = map[*websocket.Conn]context.CancelFunc{}
	}
	a.conns[ws] = cancel
	return true
}

func (a *AgentServer) untrack(ws *websocket.Conn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.conns, ws)
}

func (a *AgentServer) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

func (a *AgentServer) count(cmd, result string) {
	if a.Metrics != nil {
		a.Metrics.CounterVec("amtd_agent_sessions_total", "rpc-go agent sessions by command and result.", "command", "result").With(cmd, result).Inc()
	}
}

// Handler serves the WebSocket on any path (RPS ignores it; rpc-go is
// pointed at wss://HOST/activate).
func (a *AgentServer) Handler() http.Handler {
	return websocket.Server{
		// rpc-go sends no Origin; authentication is the token.
		Handshake: func(*websocket.Config, *http.Request) error { return nil },
		Handler:   a.serve,
	}
}

// agentFirstMessage bounds the wait for the command (rpc-go's handshake
// timeout is 60 s, spec/rpc-protocol.md §2).
const agentFirstMessage = 60 * time.Second

func (a *AgentServer) serve(ws *websocket.Conn) {
	defer ws.Close()
	ws.MaxPayloadBytes = maxAgentMessage
	ws.PayloadType = websocket.TextFrame
	s := &agentSession{ws: ws, srv: rps.Server{AppVersion: a.AppVersion}}
	src := remoteAddr(ws.Request())
	log := a.log().With("from", src.String())
	fail := func(cmd string, text string) {
		a.count(cmd, "refused")
		log.Warn("agent refused", "command", cmd, "why", text)
		_ = s.send(s.srv.Error(text))
	}
	m, err := s.recv(time.Now().Add(agentFirstMessage))
	if err != nil {
		log.Info("agent: no command", "err", err)
		return
	}
	// Checked after the first message, so that rpc-go, which writes its
	// command before reading, gets the reason instead of a broken pipe.
	if len(a.AllowFrom) > 0 && !slices.ContainsFunc(a.AllowFrom, func(p netip.Prefix) bool { return p.Contains(src) }) {
		fail("-", "amtd: agents are not accepted from "+src.String()+"; the appliance's [Provisioning] AgentAllowFrom= lists where they may connect from")
		return
	}
	if v, err := rps.ParseVersion(m.ProtocolVersion); err != nil || !rps.Compatible(rps.Version{Major: 4}, v) {
		fail("-", rps.ErrProtocolVersion(m.ProtocolVersion).Error())
		return
	}
	if a.Token.IsZero() || subtle.ConstantTimeCompare([]byte(m.TenantID), a.Token.Reveal()) != 1 {
		fail("-", "amtd: this agent is not enrolled: run rpc with --tenantid and the site's enrolment token (amtd agent-token)")
		return
	}
	cmd, err := rps.ParseCommand(m.Method)
	if err != nil {
		fail("-", err.Error())
		return
	}
	p, err := rps.DecodePayload(m)
	if err == nil {
		err = rps.ValidatePayload(p)
	}
	if err != nil {
		fail(cmd.Name, err.Error())
		return
	}
	uuid, err := store.NormalizeUUID(string(p.UUID))
	if err != nil {
		fail(cmd.Name, "uuid not valid")
		return
	}
	log = log.With("dev", uuid, "command", cmd.String())
	switch {
	case p.TLSEnforced:
		s.tun = a.newSessionTunnel(s, log, p.CurrentMode != rps.ModePreProvisioning)
	case p.TLSTunnel:
		s.tlsNext = a.newSessionTunnel(s, log, true)
		log.Info("agent asked for the TLS tunnel (--tls-tunnel): WS-Man stays on LMS's plain port until the profile's TLS is configured, then port_switch to 16993")
	}
	if !a.claim(uuid, src) {
		fail(cmd.Name, "amtd: another agent session for device "+uuid+" is running")
		return
	}
	released := false
	release := func() {
		if !released {
			released = true
			a.release(uuid)
		}
	}
	defer release()
	log.Info("agent command", "ver", p.Ver, "mode", p.CurrentMode, "tlsEnforced", p.TLSEnforced)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if !a.track(ws, cancel) {
		return
	}
	defer a.untrack(ws)
	var res rps.Result
	switch cmd.Name {
	case rps.MethodActivate:
		res, err = a.activate(ctx, s, cmd, p, uuid)
	case rps.MethodDeactivate:
		res, err = a.deactivate(ctx, s, cmd, p, uuid)
	case rps.MethodMaintenance:
		res, err = a.maintenance(ctx, s, cmd, p, uuid)
	default:
		err = fmt.Errorf("amtd: %s is not offered by this appliance", cmd.Name)
	}
	// The device is free again before the agent hears the end, so the
	// agent's next command never finds its own session still claimed.
	release()
	if err != nil {
		a.count(cmd.Name, "failed")
		log.Warn("agent command failed", "err", err)
		if res.Status == "" {
			_ = s.send(s.srv.Error(err.Error()))
			return
		}
		res.Status += " " + err.Error()
		if msg, merr := s.srv.FlowError(res); merr == nil {
			_ = s.send(msg)
		}
		return
	}
	a.count(cmd.Name, "ok")
	log.Info("agent command done", "result", resultJSON(res))
	if msg, err := s.srv.Success(res); err == nil {
		_ = s.send(msg)
	}
}

// agentClaim is a device an agent session is working on: since when and
// from where, for amtd status.
type agentClaim struct {
	started time.Time
	from    netip.Addr
}

// claim takes the device for one session from src; false when another
// session has it.
func (a *AgentServer) claim(uuid string, src netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.active == nil {
		a.active = map[string]agentClaim{}
	}
	if _, busy := a.active[uuid]; busy {
		return false
	}
	a.active[uuid] = agentClaim{started: time.Now(), from: src}
	return true
}

func (a *AgentServer) release(uuid string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.active, uuid)
}

func remoteAddr(r *http.Request) netip.Addr {
	if r == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		a, _ := netip.ParseAddr(host)
		return a
	}
	return ap.Addr().Unmap()
}

// activate runs `rpc activate --profile NAME` (spec/activation.md §4, §5).
func (a *AgentServer) activate(ctx context.Context, s *agentSession, cmd rps.Command, p *rps.Payload, uuid string) (rps.Result, error) {
	prof, err := a.Engine.Store.Profiles().Get(ctx, cmd.Profile)
	if errors.Is(err, store.ErrNotFound) {
		return rps.Result{}, fmt.Errorf("%s does not match list of available AMT profiles", cmd.Profile)
	}
	if err != nil {
		return rps.Result{}, err
	}
	ps, _, err := ParseProfile(prof)
	if err != nil {
		return rps.Result{}, err
	}
	host := s.host(uuid)
	ccm := a.ccmOptions(s)
	switch strings.ToLower(ps.Mode) {
	case "ccm":
		res := rps.Result{Status: "Failed to activate in client control mode.", Network: "", CIRAConnection: "", TLSConfiguration: ""}
		switch p.CurrentMode {
		case rps.ModeACM:
			return rps.Result{}, rps.ErrAlreadyACM(string(p.UUID))
		case rps.ModeCCM:
			// Already in CCM: the password the agent gives must be the stored one.
			if err := a.Engine.checkStoredPassword(ctx, uuid, p.Password.Value); err != nil {
				return rps.Result{}, err
			}
			if err := a.Engine.verifyMode(ctx, s.dial, host, p.Password.Value, ModeCCM); err != nil {
				return res, err
			}
			return rps.Result{Status: "Client control mode."}, nil
		}
		if err := a.Engine.ActivateCCM(ctx, uuid, host, s.dial, p.Username, p.Password.Value, p.Ver, ccm); err != nil {
			return res, err
		}
		return a.configure(ctx, s, uuid, host, ps, ModeCCM, rps.Result{Status: "Client control mode."})
	case "acm":
		res := rps.Result{Status: "Failed to activate in admin control mode."}
		if err := rps.ValidateACM(p); err != nil {
			return rps.Result{}, err
		}
		switch p.CurrentMode {
		case rps.ModeACM:
			if err := a.Engine.checkStoredPassword(ctx, uuid, p.Password.Value); err != nil {
				return rps.Result{}, err
			}
			if err := a.Engine.verifyMode(ctx, s.dial, host, p.Password.Value, ModeACM); err != nil {
				return res, err
			}
			return rps.Result{Status: "Admin control mode."}, nil
		case rps.ModeCCM:
			// The upgrade runs as admin: the agent gives the stored password.
			if err := a.Engine.checkStoredPassword(ctx, uuid, p.Password.Value); err != nil {
				return rps.Result{}, err
			}
			chain, err := a.pickChain(ctx, p)
			if err != nil {
				return rps.Result{}, err
			}
			res.Status = "Failed to upgrade to admin control mode."
			if err := a.Engine.UpgradeToACM(ctx, uuid, host, s.dial, p.Password.Value, chain); err != nil {
				return res, err
			}
			return a.configure(ctx, s, uuid, host, ps, ModeACM, rps.Result{Status: "Upgraded to admin control mode."})
		}
		chain, err := a.pickChain(ctx, p)
		if err != nil {
			return rps.Result{}, err
		}
		if noAdminSetup(p) {
			return a.activateCCMThenACM(ctx, s, uuid, p, ps, chain, ccm)
		}
		if err := a.Engine.ActivateACMAdminSetup(ctx, uuid, host, s.dial, p.Username, p.Password.Value, p.Ver, chain); err != nil {
			return res, err
		}
		return a.configure(ctx, s, uuid, host, ps, ModeACM, rps.Result{Status: "Activated to admin control mode."})
	default:
		return rps.Result{}, fmt.Errorf("profile %s: mode %q: want ccm or acm", cmd.Profile, ps.Mode)
	}
}

// pickChain finds the domain chain for an ACM agent request.
func (a *AgentServer) pickChain(ctx context.Context, p *rps.Payload) (*Chain, error) {
	if a.Chains == nil {
		return nil, errors.New("amtd: no provisioning certificates are configured for agents")
	}
	chains, err := a.Chains.Chains(ctx)
	if err != nil {
		return nil, err
	}
	return pickChainForAgent(chains, p.FQDN, p.CertHashes)
}

// configure runs the profile's configuration through the agent and says
// so in the result (spec/rpc-protocol.md §7: CIRAConnection).
func (a *AgentServer) configure(ctx context.Context, s *agentSession, uuid, host string, ps ProfileSettings, mode int, res rps.Result) (rps.Result, error) {
	cira, err := a.Engine.configure(ctx, uuid, host, s.dial, ps, mode)
	if cira {
		res.CIRAConnection = "Configured"
	}
	if err != nil {
		res.CIRAConnection = "Failed"
		res.Status += " Configuration failed."
		return res, err
	}
	if ps.TLS {
		res.TLSConfiguration = "Configured"
		// AMT restarts its TLS listener with the new certificate.
		if err := a.afterTLSConfigured(ctx, s); err != nil {
			return res, err
		}
	}
	return res, nil
}

// checkStoredPassword compares the admin password an agent gave for an
// activated device with the stored current one (spec/activation.md §4 step 4).
func (e *Engine) checkStoredPassword(ctx context.Context, uuid string, given secret.Value) error {
	cur, err := e.Store.Secrets().Current(ctx, uuid, store.AMTAdmin)
	if err != nil || !cur.Equal(given) {
		return rps.ErrPasswordMismatch(uuid)
	}
	cur.Wipe()
	return nil
}

// ActivateCCM activates a device in client control mode through dial (the
// agent's relay to LMS), logging in with the local system account
// (spec/activation.md §5): realm, then Setup with the new admin password,
// sealed as pending first; then a login as admin before promotion. A Setup
// whose answer was lost counts as done when the device reports CCM.
func (e *Engine) ActivateCCM(ctx context.Context, uuid, host string, dial wsman.Dialer, lsaUser string, lsaPass secret.Value, version string, opts ccmOptions) (err error) {
	devs, secrets := e.Store.Devices(), e.Store.Secrets()
	if err := e.ensureDevice(ctx, uuid, version); err != nil {
		return err
	}
	e.started("agent-ccm")
	defer e.recordFailure(ctx, uuid, &err)
	if err := devs.SetState(ctx, uuid, StateActivating, StepConnect, "agent, client control mode", false); err != nil {
		return err
	}
	local, realm, err := e.localSession(ctx, dial, host, lsaUser, lsaPass)
	if err != nil {
		return err
	}
	admin, err := pendingOrNewLen(ctx, secrets, uuid, store.AMTAdmin, passwordLen, "agent activation (CCM)")
	if err != nil {
		return err
	}
	defer admin.Wipe()
	if err := devs.SetState(ctx, uuid, StateActivating, StepPasswords, "", false); err != nil {
		return err
	}
	if err := devs.SetState(ctx, uuid, StateActivating, "setup", "", false); err != nil {
		return err
	}
	in := wsman.SetupInput{NetAdminPassEncryptionType: 2, NetworkAdminPassword: digest.HA1Hex(adminUser, realm, admin)}
	setupErr := e.call(ctx, func(ctx context.Context) error {
		return local.Invoke(ctx, "IPS_HostBasedSetupService", "Setup", in.Params(), nil)
	})
	var re *wsman.ReturnError
	if errors.As(setupErr, &re) {
		return fmt.Errorf("setup: %w", setupErr)
	}
	if opts.afterSetup != nil {
		opts.afterSetup()
	}
	if opts.commit {
		if err := e.commitCCM(ctx, uuid, host, dial, admin, setupErr, opts.restartDelay); err != nil {
			return err
		}
		if opts.afterCommit != nil {
			opts.afterCommit()
		}
	}
	// A lost answer is not a failure if the device reports CCM with the new
	// password (spec/activation.md §5 step 4); any answer is checked the
	// same way before the password is promoted.
	if err := devs.SetState(ctx, uuid, StateActivating, StepVerify, "", false); err != nil {
		return err
	}
	if err := e.verifyMode(ctx, dial, host, admin, ModeCCM); err != nil {
		if setupErr != nil {
			return fmt.Errorf("setup: %w (and the device does not report client control mode: %v)", setupErr, err)
		}
		return fmt.Errorf("verify: %w", err)
	}
	if err := e.promoteMode(ctx, uuid, ModeCCM); err != nil {
		return err
	}
	e.count("activated")
	e.log().Info("activated in client control mode", "dev", uuid)
	return nil
}

// adminSession is the admin session an agent's deactivate or maintenance
// command runs in: the AMT password the agent gave (--password, else the
// payload's), which must be the stored one.
func (a *AgentServer) adminSession(ctx context.Context, s *agentSession, cmd rps.Command, p *rps.Payload, uuid string) (*wsman.Client, string, secret.Value, error) {
	pw := cmd.Password
	if pw.IsZero() {
		pw = p.Password.Value
	}
	if err := a.Engine.checkStoredPassword(ctx, uuid, pw); err != nil {
		return nil, "", secret.Value{}, err
	}
	host := s.host(uuid)
	return wsman.NewClient(s.dial, wsman.Credentials{Host: host, Username: adminUser, Password: pw}), host, pw, nil
}

// deactivate runs `rpc deactivate --password PW`: the password must be the
// stored one; forced deactivation (-f, without it) is refused
// (spec/rpc-protocol.md §10). Unprovision(1) as admin; the device record
// says deactivated; the stored passwords stay, in case the device did not.
func (a *AgentServer) deactivate(ctx context.Context, s *agentSession, cmd rps.Command, p *rps.Payload, uuid string) (rps.Result, error) {
	if cmd.Force && cmd.Password.IsZero() {
		return rps.Result{}, errors.New("amtd: forced deactivation is not allowed on this appliance; give the AMT password (rpc deactivate --password)")
	}
	c, _, _, err := a.adminSession(ctx, s, cmd, p, uuid)
	if err != nil {
		return rps.Result{}, err
	}
	if err := a.Engine.call(ctx, func(ctx context.Context) error {
		return c.Invoke(ctx, "AMT_SetupAndConfigurationService", "Unprovision", wsman.UnprovisionInput{ProvisioningMode: 1}.Params(), nil)
	}); err != nil {
		return rps.Result{Status: "Deactivation failed."}, err
	}
	if err := a.Engine.Store.Devices().SetMode(ctx, uuid, ModePreProvisioning, "deactivated", "unprovision", "by agent"); err != nil {
		a.log().Warn("agent: the device is deactivated but recording it failed", "device", uuid, "err", err)
	}
	return rps.Result{Status: "Deactivated"}, nil
}

// maintenance runs `rpc maintenance -password PW --TASK`: synctime sets AMT's
// clock; changepassword gives the device a new admin password (the one
// given, if it meets AMT's rule, else a random one), sealed as pending first
// and promoted after a login with it (spec/activation.md §10).
func (a *AgentServer) maintenance(ctx context.Context, s *agentSession, cmd rps.Command, p *rps.Payload, uuid string) (rps.Result, error) {
	c, host, pw, err := a.adminSession(ctx, s, cmd, p, uuid)
	if err != nil {
		return rps.Result{}, err
	}
	switch cmd.Task {
	case rps.TaskSyncTime:
		if err := a.Engine.call(ctx, func(ctx context.Context) error { return a.Engine.syncClock(ctx, c) }); err != nil {
			return rps.Result{Status: "Time synchronization failed."}, err
		}
		return rps.Result{Status: "Time synchronized."}, nil
	case rps.TaskChangePassword:
		if err := a.Engine.ChangeAdminPassword(ctx, uuid, host, s.dial, pw, cmd.NewPassword); err != nil {
			return rps.Result{Status: "Password change failed."}, err
		}
		return rps.Result{Status: "Password changed."}, nil
	case rps.TaskSyncHostname:
		// AMT's host and domain names become the OS's (RPS syncHostname).
		host, domain := p.HostnameInfo.Hostname, p.HostnameInfo.DNSSuffixOS
		if host == "" {
			host = p.Hostname
		}
		if host == "" {
			return rps.Result{}, errors.New("amtd: the agent sent no host name to sync")
		}
		if err := a.Engine.call(ctx, func(ctx context.Context) error {
			var gs wsman.Instance
			if err := c.Get(ctx, "AMT_GeneralSettings", &gs); err != nil {
				return err
			}
			gs.Set("HostName", host)
			gs.Set("DomainName", domain)
			_, err := c.Put(ctx, "AMT_GeneralSettings", gs)
			return err
		}); err != nil {
			return rps.Result{Status: "Host name synchronization failed."}, err
		}
		devs := a.Engine.Store.Devices()
		if d, err := devs.Get(ctx, uuid); err == nil {
			d.Hostname, d.DNSSuffix = host, domain
			_ = devs.Put(ctx, d)
		}
		return rps.Result{Status: "Host name synchronized."}, nil
	case rps.TaskSyncIP:
		ip, err := a.syncIP(ctx, c, p.IPConfiguration)
		if err != nil {
			return rps.Result{Status: "IP synchronization failed."}, err
		}
		devs := a.Engine.Store.Devices()
		if d, err := devs.Get(ctx, uuid); err == nil && ip.IsValid() && !slices.Contains(d.Addresses, ip) {
			d.Addresses = append(d.Addresses, ip)
			_ = devs.Put(ctx, d)
		}
		return rps.Result{Status: "IP synchronized."}, nil
	case rps.TaskSyncDeviceInfo:
		// What the agent read over HECI goes into the device record.
		devs := a.Engine.Store.Devices()
		d, err := devs.Get(ctx, uuid)
		if err != nil {
			return rps.Result{}, err
		}
		d.AMTVersion, d.AMTBuild, d.AMTSKU = p.Ver, p.Build, p.SKU
		if p.Hostname != "" {
			d.Hostname = p.Hostname
		}
		if err := devs.Put(ctx, d); err != nil {
			return rps.Result{}, err
		}
		return rps.Result{Status: "Device info synchronized."}, nil
	}
	return rps.Result{}, fmt.Errorf("amtd: maintenance --%s is not offered by this appliance", cmd.Task)
}

// RPS's syncip failures (src/stateMachines/maintenance/syncIP.ts), with
// its texts, which rpc-go users search for.
var (
	errNoWiredSettings     = errors.New("Device has no wired configuration settings") //lint:ignore ST1005 RPS's text
	errWirelessOnly        = errors.New("Not applicable for wireless only device")    //lint:ignore ST1005 RPS's text
	errAlreadySynchronized = errors.New("IPAddress already synchronized")
)

// syncIP runs `rpc maintenance --syncip` as RPS does: the wired
// AMT_EthernetPortSettings (wiredPort; "… Settings 1" is wireless) gets the host's address that rpc-go sent in ipConfiguration
// (--staticip/--netmask/…, else the OS interface's). A device on DHCP is
// put back to following the host instead (IpSyncEnabled, no static fields);
// a static one gets the address, and the mask, gateway and DNS servers
// given, keeping its own where none was given (spec/activation.md §10,
// spec/wsman.md §6). It returns the address set, invalid when none was.
// RPS puts SharedStaticIp=false and IpSyncEnabled=false on the static path;
// amtd does the same.
func (a *AgentServer) syncIP(ctx context.Context, c *wsman.Client, target rps.IPConfiguration) (netip.Addr, error) {
	ip, err := netip.ParseAddr(target.IPAddress)
	if err != nil || !ip.Is4() {
		return netip.Addr{}, fmt.Errorf("amtd: the agent sent no usable IPv4 address to sync (ipConfiguration.ipAddress %q)", clipText(target.IPAddress))
	}
	optional := map[string]string{"SubnetMask": target.Netmask, "DefaultGateway": target.Gateway, "PrimaryDNS": target.PrimaryDNS, "SecondaryDNS": target.SecondaryDNS}
	for name, v := range optional {
		if v == "" {
			continue
		}
		if a, err := netip.ParseAddr(v); err != nil || !a.Is4() {
			return netip.Addr{}, fmt.Errorf("amtd: ipConfiguration %s %q is not an IPv4 address", name, clipText(v))
		}
	}
	var ports []wsman.Instance
	if err := a.Engine.call(ctx, func(ctx context.Context) (err error) {
		ports, err = c.Enumerate(ctx, "AMT_EthernetPortSettings")
		return
	}); err != nil {
		return netip.Addr{}, err
	}
	// The wired port as the profile's network step finds it; any other
	// port is the wireless one.
	var wired, wireless *wsman.Instance
	if w, ok := wiredPort(ports); ok {
		wired = &w
	}
	for i := range ports {
		if wired == nil || ports[i].Value("InstanceID") != wired.Value("InstanceID") {
			wireless = &ports[i]
		}
	}
	switch {
	case wired == nil:
		return netip.Addr{}, errNoWiredSettings
	case wireless != nil && wired.Value("MACAddress") == "":
		return netip.Addr{}, errWirelessOnly
	case wired.Value("IPAddress") == ip.String():
		return netip.Addr{}, errAlreadySynchronized
	}
	put := *wired
	put.Props = slices.Clone(wired.Props)
	var set netip.Addr
	if strings.EqualFold(wired.Value("DHCPEnabled"), "true") {
		put.Set("IpSyncEnabled", "true")
		put.Set("SharedStaticIp", "false")
		for _, name := range []string{"IPAddress", "SubnetMask", "DefaultGateway", "PrimaryDNS", "SecondaryDNS"} {
			put.Set(name)
		}
	} else {
		put.Set("IpSyncEnabled", "false")
		put.Set("SharedStaticIp", "false")
		put.Set("IPAddress", ip.String())
		for name, v := range optional {
			if v != "" {
				put.Set(name, v)
			}
		}
		set = ip
	}
	if err := a.Engine.call(ctx, func(ctx context.Context) error {
		_, err := c.Put(ctx, "AMT_EthernetPortSettings", put, wsman.Selector{Name: "InstanceID", Value: wired.Value("InstanceID")})
		return err
	}); err != nil {
		return netip.Addr{}, err
	}
	return set, nil
}

// clipText bounds agent-supplied text quoted in an error.
func clipText(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
