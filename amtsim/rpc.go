package amtsim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
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
		switch m.Method {
		case rps.MethodWSMan:
			req, err := m.PayloadBytes()
			if err != nil {
				return nil, fmt.Errorf("amtsim rpc: %w", err)
			}
			if err := send(client.Message(rps.MethodResponse, d.lms(req))); err != nil {
				return nil, fmt.Errorf("amtsim rpc: %w", err)
			}
		case rps.MethodHeartbeatRequest:
			if err := send(client.Message(rps.MethodHeartbeatResponse, nil)); err != nil {
				return nil, fmt.Errorf("amtsim rpc: %w", err)
			}
		case rps.MethodSuccess, rps.MethodError:
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
		HostnameInfo: rps.HostnameInfo{DNSSuffixOS: suffix, Hostname: d.s.HostName}}
	if d.s.ControlMode != ModePreProvisioning {
		p.Password = rps.Password{Value: adminPassword}
	}
	return p
}
