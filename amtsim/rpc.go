package amtsim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/websocket"

	"amtd/amt/rps"
	"amtd/secret"
)

// RPCOptions are what rpc-go is run with on the device's host in remote
// mode (spec/rpc-protocol.md §1-§5).
type RPCOptions struct {
	// URL is the server: wss://HOST:PORT/activate.
	URL string
	// Command is the method string, e.g. "activate --profile NAME".
	Command string
	// TenantID is --tenantid (amtd's enrolment token).
	TenantID string
	// Password is the AMT admin password rpc-go sends in place of the local
	// account's when the device is activated.
	Password secret.Value
	// RootCAs verifies the server; nil with Insecure skips verification (-n).
	RootCAs  *x509.CertPool
	Insecure bool
	// Edit, when set, changes the payload before it is sent (tests).
	Edit func(*rps.Payload)
	// Timeout bounds the whole session (default 5 minutes).
	Timeout time.Duration
	// ODCA issues the chain an AMT 19+ device presents on its local TLS
	// port before provisioning; nil uses DefaultODCA.
	ODCA *ODCA
	// TLSFirstByte and TLSIdle are how long the TLS-tunnel relay waits for
	// AMT's first byte and then for more (rpc-go: 2 s each). A test may
	// shorten TLSIdle: every TLS handshake round waits it out.
	TLSFirstByte, TLSIdle time.Duration
	// LMSFailures injects faults in TLS-tunnel mode: the n-th messages
	// relayed (1-based) fail as if LMS broke, and the relay answers
	// connection_reset lms_error instead of reaching AMT.
	LMSFailures []int
	// TLSTunnel is rpc-go's --tls-tunnel on a device that does not enforce
	// TLS (AMT 11-18): the payload says tlsTunnel, WS-Man goes to the plain
	// port, and a port_switch moves LMS to the TLS port, where the relay
	// works as in TLS-tunnel mode (spec/rpc-protocol.md §5, §7).
	TLSTunnel bool
}

// RunRPC plays rpc-go on this device's host: it reads what HECI would give
// (version, UUID, local system account, control mode, trusted root hashes,
// DNS suffix), sends the command, relays every WS-Man request the server
// sends to the device's LMS side and returns AMT's raw response, and ends
// at the server's success or error message, which it returns.
func (d *Device) RunRPC(ctx context.Context, o RPCOptions) (*rps.Message, error) {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	cfg, err := websocket.NewConfig(o.URL, "https://localhost/")
	if err != nil {
		return nil, fmt.Errorf("amtsim rpc: %w", err)
	}
	cfg.TlsConfig = &tls.Config{RootCAs: o.RootCAs, InsecureSkipVerify: o.Insecure, MinVersion: tls.VersionTLS12} //nolint:gosec // rpc-go's -n, asked for
	cfg.Dialer = &net.Dialer{Timeout: 30 * time.Second}
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("amtsim rpc: %w", err)
	}
	defer ws.Close()
	stop := context.AfterFunc(ctx, func() { ws.Close() })
	defer stop()

	p := d.rpcPayload(o.Password)
	p.TLSTunnel = o.TLSTunnel && !p.TLSEnforced
	if o.Edit != nil {
		o.Edit(p)
	}
	b64, err := rps.EncodePayload(p)
	if err != nil {
		return nil, err
	}
	raw, _ := base64.StdEncoding.DecodeString(b64)
	client := rps.Client{AppVersion: "amtsim", TenantID: o.TenantID}
	send := func(m *rps.Message) error {
		b, err := rps.Marshal(m)
		if err != nil {
			return err
		}
		return websocket.Message.Send(ws, string(b))
	}
	if err := send(client.Message(o.Command, raw)); err != nil {
		return nil, fmt.Errorf("amtsim rpc: %w", err)
	}
	var tunnel *lmsTunnel
	relayed := 0
	startTunnel := func() error {
		if o.ODCA == nil {
			var err error
			if o.ODCA, err = DefaultODCA(); err != nil {
				return err
			}
		}
		tunnel = &lmsTunnel{d: d, odca: o.ODCA, firstByte: o.TLSFirstByte, idle: o.TLSIdle}
		if tunnel.firstByte <= 0 {
			tunnel.firstByte = rpcTLSFirstByte
		}
		if tunnel.idle <= 0 {
			tunnel.idle = rpcTLSFirstByte
		}
		return nil
	}
	defer func() {
		if tunnel != nil {
			tunnel.close()
		}
	}()
	if p.TLSEnforced {
		if err := startTunnel(); err != nil {
			return nil, err
		}
	}
	for {
		var text string
		if err := websocket.Message.Receive(ws, &text); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("amtsim rpc: %w", ctx.Err())
			}
			return nil, fmt.Errorf("amtsim rpc: the server closed the session: %w", err)
		}
		m, err := rps.ParseMessage([]byte(text))
		if err != nil {
			return nil, fmt.Errorf("amtsim rpc: %w", err)
		}
		switch {
		case (tunnel != nil || p.TLSTunnel) && m.Method == rps.MethodPortSwitch:
			// Reconnect LMS to the port after the delay, then confirm
			// (executor.go handlePortSwitch).
			ps, err := rps.ParsePortSwitch(m)
			if err != nil {
				return nil, fmt.Errorf("amtsim rpc: %w", err)
			}
			if tunnel == nil {
				// --tls-tunnel: from now on LMS is the TLS port.
				if err := startTunnel(); err != nil {
					return nil, err
				}
			}
			tunnel.close()
			select {
			case <-time.After(time.Duration(ps.Delay) * time.Second):
			case <-ctx.Done():
				return nil, fmt.Errorf("amtsim rpc: %w", ctx.Err())
			}
			if err := send(client.Message(rps.MethodPortSwitchAck, []byte("ok"))); err != nil {
				return nil, fmt.Errorf("amtsim rpc: %w", err)
			}
		case tunnel != nil && m.Method != rps.MethodHeartbeatRequest && m.Method != rps.MethodSuccess && m.Method != rps.MethodError:
			// In TLS-tunnel mode rpc-go writes every other payload to
			// LMS's TLS port and answers with tls_data, whatever the method.
			b, err := m.PayloadBytes()
			if err != nil {
				return nil, fmt.Errorf("amtsim rpc: %w", err)
			}
			relayed++
			if slices.Contains(o.LMSFailures, relayed) {
				tunnel.close()
				if err := send(client.Message(rps.MethodConnectionReset, []byte(rps.ResetLMSError))); err != nil {
					return nil, fmt.Errorf("amtsim rpc: %w", err)
				}
				continue
			}
			if method, out := tunnel.relay(b); method != "" {
				if err := send(client.Message(method, out)); err != nil {
					return nil, fmt.Errorf("amtsim rpc: %w", err)
				}
			}
		case m.Method == rps.MethodWSMan:
			req, err := m.PayloadBytes()
			if err != nil {
				return nil, fmt.Errorf("amtsim rpc: %w", err)
			}
			if err := send(client.Message(rps.MethodResponse, d.lms(req))); err != nil {
				return nil, fmt.Errorf("amtsim rpc: %w", err)
			}
		case m.Method == rps.MethodHeartbeatRequest:
			if err := send(client.Message(rps.MethodHeartbeatResponse, nil)); err != nil {
				return nil, fmt.Errorf("amtsim rpc: %w", err)
			}
		case m.Method == rps.MethodSuccess || m.Method == rps.MethodError:
			return m, nil
		default:
			// rpc-go writes anything else to AMT; the simulator refuses.
			return nil, fmt.Errorf("amtsim rpc: the server sent %q, which rpc-go would write to AMT as is", m.Method)
		}
	}
}

// lms writes one raw HTTP request to the device's LMS side and returns its
// raw answer, as rpc-go does with 127.0.0.1:16992.
func (d *Device) lms(req []byte) []byte {
	a, b := net.Pipe()
	go d.ServeLocal(b)
	go func() { _, _ = a.Write(req) }()
	_ = a.SetReadDeadline(time.Now().Add(2 * time.Minute))
	resp, _ := io.ReadAll(a)
	a.Close()
	return resp
}

// rpcPayload is what rpc-go reads over HECI (spec/rpc-protocol.md §5).
func (d *Device) rpcPayload(adminPassword secret.Value) *rps.Payload {
	d.mu.Lock()
	defer d.mu.Unlock()
	var hashes []string
	for _, h := range d.trustedLocked() {
		hashes = append(hashes, strings.ToLower(h.Hex))
	}
	suffix := d.dnsSuffixLocked()
	p := &rps.Payload{Ver: d.Version.short(), Build: strconv.Itoa(d.Version.Build), SKU: "16392", UUID: rps.UUID(d.UUID.String()),
		Username: LocalSystemUser, Password: rps.Password{Value: secret.FromString(d.s.LSAPassword)}, CurrentMode: d.s.ControlMode,
		Hostname: d.s.HostName, FQDN: suffix, Client: "RPC", CertHashes: hashes,
		HostnameInfo: rps.HostnameInfo{DNSSuffixOS: suffix, Hostname: d.s.HostName}, TLSEnforced: d.TLSEnforced()}
	if d.s.ControlMode != ModePreProvisioning {
		p.Password = rps.Password{Value: adminPassword}
	}
	// The OS's view of the network: rpc-go sends the active interface's
	// address (maintenance --syncip's default) and DHCP as the OS uses it.
	if d.net.IP.IsValid() {
		p.IPConfiguration = rps.IPConfiguration{DHCP: true, IPAddress: d.net.IP.String()}
		if d.net.DNS.IsValid() {
			p.IPConfiguration.PrimaryDNS = d.net.DNS.Addr().String()
		}
	}
	return p
}
