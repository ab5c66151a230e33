package provision

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"amtd/amt/rps"
	"amtd/amt/wsman"
	"amtd/secret"
	"amtd/store"
)

// The AMT 19+ activation flow through the agent (spec/activation.md §5 step
// 3, §8): CCM Setup, then CommitChanges as admin; ACM is CCM followed by
// UpgradeClientToAdmin, since host-based AdminSetup is gone from CSME 19.

// defaultTLSRestartDelay is RPS's delay_tls_timer: the wait after a commit
// for AMT to restart its TLS stack (spec/activation.md §8 step 3).
const defaultTLSRestartDelay = 15 * time.Second

// ccmOptions are what differs in a CCM activation through the agent.
type ccmOptions struct {
	// commit runs CommitChanges as admin after Setup (AMT 19+).
	commit bool
	// restartDelay is waited after the commit.
	restartDelay time.Duration
	// afterSetup is called once Setup was sent: the device may have left
	// pre-provisioning, and its TLS certificate may change.
	afterSetup func()
	// afterCommit is called once the commit succeeded: AMT restarts its
	// TLS stack, so a kept connection is gone.
	afterCommit func()
}

func (a *AgentServer) ccmOptions(s *agentSession) ccmOptions {
	if s.tun == nil {
		return ccmOptions{}
	}
	return ccmOptions{commit: true, restartDelay: a.restartDelay(), afterSetup: func() { s.tun.activated.Store(true) },
		afterCommit: s.tun.dropKept}
}

func (a *AgentServer) restartDelay() time.Duration {
	if a.TLSRestartDelay > 0 {
		return a.TLSRestartDelay
	}
	return defaultTLSRestartDelay
}

// noAdminSetup reports whether the device needs the CCM-then-upgrade path
// to ACM: it enforces TLS locally, or reports AMT 19 or later, where Intel
// removed host-based AdminSetup (spec/activation.md §4 step 3, §8; RPS
// keys on the version).
func noAdminSetup(p *rps.Payload) bool {
	if p.TLSEnforced {
		return true
	}
	major, _, _ := strings.Cut(p.Ver, ".")
	n, err := strconv.Atoi(major)
	return err == nil && n >= 19
}

// commitCCM is step 3 of spec/activation.md §5 on AMT 19+: as admin with the
// new password, CommitChanges; if the commit fails, Unprovision(1) as rpc-go
// does, so the device is not left half-activated. Then AMT is given
// restartDelay to restart TLS.
func (e *Engine) commitCCM(ctx context.Context, uuid, host string, dial wsman.Dialer, admin secret.Value, setupErr error, restartDelay time.Duration) error {
	if err := e.Store.Devices().SetState(ctx, uuid, StateActivating, StepCommit, "CommitChanges as admin (TLS enforced, AMT 19+)", false); err != nil {
		return err
	}
	c := wsman.NewClient(dial, wsman.Credentials{Host: host, Username: adminUser, Password: admin})
	commitErr := e.call(ctx, func(ctx context.Context) error {
		return c.Invoke(ctx, "AMT_SetupAndConfigurationService", "CommitChanges", nil, nil)
	})
	if commitErr != nil {
		if setupErr != nil && errors.Is(commitErr, wsman.ErrWrongPassword) {
			// Setup's answer was lost and the new password does not work:
			// the device did not take it.
			return fmt.Errorf("setup: %w (and the new admin password does not open the device: %v)", setupErr, commitErr)
		}
		uerr := e.call(ctx, func(ctx context.Context) error {
			return c.Invoke(ctx, "AMT_SetupAndConfigurationService", "Unprovision", wsman.UnprovisionInput{ProvisioningMode: 1}.Params(), nil)
		})
		if uerr != nil {
			return fmt.Errorf("CommitChanges after Setup: %w (and Unprovision to undo it failed too: %v; the device may be half-activated)", commitErr, uerr)
		}
		return fmt.Errorf("CommitChanges after Setup: %w; the device was unprovisioned again", commitErr)
	}
	return sleepCtx(ctx, restartDelay)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// activateCCMThenACM is the AMT 19+ path to admin control mode
// (spec/activation.md §8): CCM with its commit, then the upgrade with the
// domain chain in an admin session. If the upgrade fails, the half-done
// CCM device is deactivated again (§8 step 7).
func (a *AgentServer) activateCCMThenACM(ctx context.Context, s *agentSession, uuid string, p *rps.Payload, ps ProfileSettings, chain *Chain, ccm ccmOptions) (rps.Result, error) {
	res := rps.Result{Status: "Failed to activate in admin control mode."}
	host := s.host(uuid)
	if err := a.Engine.ActivateCCM(ctx, uuid, host, s.dial, p.Username, p.Password.Value, p.Ver, ccm); err != nil {
		return res, err
	}
	admin, err := a.Engine.Store.Secrets().Current(ctx, uuid, store.AMTAdmin)
	if err != nil {
		return res, err
	}
	defer admin.Wipe()
	if err := a.Engine.UpgradeToACM(ctx, uuid, host, s.dial, admin, chain); err != nil {
		c := wsman.NewClient(s.dial, wsman.Credentials{Host: host, Username: adminUser, Password: admin})
		uerr := a.Engine.call(ctx, func(ctx context.Context) error {
			return c.Invoke(ctx, "AMT_SetupAndConfigurationService", "Unprovision", wsman.UnprovisionInput{ProvisioningMode: 1}.Params(), nil)
		})
		if uerr != nil {
			return res, fmt.Errorf("%w (the device stays in client control mode: Unprovision failed: %v)", err, uerr)
		}
		devs := a.Engine.Store.Devices()
		if d, gerr := devs.Get(ctx, uuid); gerr == nil {
			d.ControlMode = ModePreProvisioning
			_ = devs.Put(ctx, d)
		}
		return res, fmt.Errorf("%w; the device was returned to pre-provisioning", err)
	}
	return a.configure(ctx, s, uuid, host, ps, ModeACM, rps.Result{Status: "Activated to admin control mode."})
}

// portSwitch tells the agent that AMT's TLS listener restarts (after a
// commit that changed its certificate): rpc-go closes LMS, waits delay,
// reconnects to port, and confirms with port_switch_ack
// (spec/rpc-protocol.md §7). rootPEM is the root amtd now validates AMT
// against; rpc-go does not use it.
func (t *tunnel) portSwitch(ctx context.Context, port int, rootPEM string, delay time.Duration) error {
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer t.release()
	t.dropKept() // LMS is about to reconnect elsewhere
	secs := min(int((delay+time.Second-1)/time.Second), rps.MaxPortSwitchDelay)
	if err := t.s.send(t.s.srv.PortSwitch(port, rootPEM, secs)); err != nil {
		return err
	}
	// rpc-go waits the delay, then tries to connect 5 times 5 s apart.
	deadline := time.Now().Add(time.Duration(secs)*time.Second + time.Minute)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	for {
		m, err := t.s.recv(deadline)
		if err != nil {
			return fmt.Errorf("port_switch: %w", err)
		}
		switch m.Method {
		case rps.MethodPortSwitchAck:
			return nil
		case rps.MethodTLSData, rps.MethodConnectionReset:
			// the end of the previous connection
		default:
			return fmt.Errorf("port_switch: the agent sent %q instead of port_switch_ack", m.Method)
		}
	}
}

// newSessionTunnel is an agent session's TLS tunnel with the server's trust
// settings; activated says the device may have left pre-provisioning.
func (a *AgentServer) newSessionTunnel(s *agentSession, log *slog.Logger, activated bool) *tunnel {
	var caRoot []byte
	if a.Engine.DeviceCA != nil {
		caRoot = a.Engine.DeviceCA.RootDER()
	}
	trust := a.TunnelTrust
	if trust == "" {
		trust = TrustODCA
	}
	t := newTunnel(s, log, trust, a.ODCARoots, caRoot, activated)
	t.retryDelay = a.restartDelay()
	if a.Metrics != nil {
		events := a.Metrics.CounterVec("amtd_agent_tls_tunnel_events_total",
			"rpc-go TLS tunnel events (AMT 19+): how AMT's certificate was accepted or refused, connection resets, handshakes and their retries, kept connections reused.", "event")
		t.count = func(e string) { events.With(e).Inc() }
	}
	return t
}

// afterTLSConfigured sends port_switch once amtd committed a new TLS
// certificate to a device behind the tunnel, with the appliance root. When
// the agent asked for --tls-tunnel on a device that does not enforce TLS
// (AMT 11-18), this is where the session moves to the TLS tunnel
// (spec/rpc-protocol.md §5 tlsTunnel: "TLS on AMT 11-18, then switch to
// it"). What rpc-go does then on those versions is unverified, so a switch
// that fails there is logged, not a failed activation: the device is
// configured either way.
func (a *AgentServer) afterTLSConfigured(ctx context.Context, s *agentSession) error {
	switched := false
	if s.tun == nil {
		if s.tlsNext == nil {
			return nil
		}
		s.tun, switched = s.tlsNext, true
	}
	var root string
	if a.Engine.DeviceCA != nil {
		root = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.Engine.DeviceCA.RootDER()}))
	}
	err := s.tun.portSwitch(ctx, 16993, root, a.restartDelay())
	if switched {
		if err != nil {
			s.tun.log.Warn("agent TLS tunnel (--tls-tunnel): port_switch to 16993 after configuring TLS failed; the device is configured, the agent may stay on 16992", "err", err)
			return nil
		}
		s.tun.log.Info("agent TLS tunnel (--tls-tunnel): the agent switched LMS to 16993")
	}
	return err
}
