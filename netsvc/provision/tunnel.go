package provision

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/net/websocket"

	"amtd/amt/rps"
)

// maxAgentMessage is the largest text frame amtd reads from an agent, as
// RPS: 102400 bytes (spec/rpc-protocol.md §2).
const maxAgentMessage = 102400

// agentSession is one rpc-go WebSocket connection.
type agentSession struct {
	ws  *websocket.Conn
	srv rps.Server
	mu  sync.Mutex // one exchange at a time: the agent relays in order
	// tun, when set, is the TLS tunnel of a device that enforces TLS on
	// its local ports (AMT 19+, tlsEnforced): WS-Man goes as TLS records
	// instead of wsman/response messages (spec/rpc-protocol.md §7).
	tun *tunnel
	// tlsNext is the TLS tunnel to switch to once TLS is configured, when
	// the agent asked for it on a device that does not enforce TLS
	// (--tls-tunnel, AMT 11-18: spec/rpc-protocol.md §5, §7).
	tlsNext *tunnel
}

// host is the Host header of WS-Man through the agent: LMS's TLS port when
// the device enforces TLS, else its plain port (spec/rpc-protocol.md §6).
func (s *agentSession) host(uuid string) string {
	if s.tun != nil {
		return uuid + ":16993"
	}
	return uuid + ":16992"
}

func (s *agentSession) send(m *rps.Message) error {
	b, err := rps.Marshal(m)
	if err != nil {
		return err
	}
	return websocket.Message.Send(s.ws, string(b))
}

// recv reads the next message the agent sends, answering nothing itself:
// heartbeat replies are skipped (spec/rpc-protocol.md §7).
func (s *agentSession) recv(deadline time.Time) (*rps.Message, error) {
	for {
		_ = s.ws.SetReadDeadline(deadline)
		var text string
		if err := websocket.Message.Receive(s.ws, &text); err != nil {
			return nil, fmt.Errorf("agent connection: %w", err)
		}
		m, err := rps.ParseMessage([]byte(text))
		if err != nil {
			return nil, err
		}
		if m.Method == rps.MethodHeartbeatResponse {
			continue
		}
		return m, nil
	}
}

// dial is a wsman.Dialer over the agent: every "connection" carries one
// HTTP request to AMT as a wsman message and reads the agent's response
// message back (spec/rpc-protocol.md §6), so the same WS-Man client and
// activation code serve the agent path and the network path.
func (s *agentSession) dial(ctx context.Context) (net.Conn, error) {
	if s.tun != nil {
		return s.tun.dial(ctx)
	}
	c := &tunnelConn{s: s, ctx: ctx}
	if dl, ok := ctx.Deadline(); ok {
		c.deadline = dl
	}
	return c, nil
}

// tunnelConn is one request/response exchange through the agent.
type tunnelConn struct {
	s        *agentSession
	ctx      context.Context
	out      bytes.Buffer
	in       *bytes.Reader
	deadline time.Time
	closed   bool
}

// exchangeTimeout bounds one relay when the call has no deadline: rpc-go
// waits 4 s for LMS's first byte; firmware can take longer to finish.
const exchangeTimeout = 60 * time.Second

func (c *tunnelConn) Write(p []byte) (int, error) {
	if c.closed {
		return 0, net.ErrClosed
	}
	if c.in != nil {
		return 0, errors.New("agent tunnel: one request per exchange")
	}
	return c.out.Write(p)
}

func (c *tunnelConn) Read(p []byte) (int, error) {
	if c.closed {
		return 0, net.ErrClosed
	}
	if c.in == nil {
		b, err := c.exchange()
		if err != nil {
			return 0, err
		}
		c.in = bytes.NewReader(b)
	}
	n, err := c.in.Read(p)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// exchange sends the request and waits for AMT's response. A
// connection_reset from the agent (its LMS socket closed) gets the request
// sent once more (spec/rpc-protocol.md §6).
func (c *tunnelConn) exchange() ([]byte, error) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	deadline := c.deadline
	if deadline.IsZero() {
		deadline = time.Now().Add(exchangeTimeout)
	}
	for attempt := 0; attempt < 2; attempt++ {
		if err := c.ctx.Err(); err != nil {
			return nil, err
		}
		if err := c.s.send(c.s.srv.WSMan(c.out.Bytes())); err != nil {
			return nil, err
		}
		m, err := c.s.recv(deadline)
		if err != nil {
			return nil, err
		}
		switch m.Method {
		case rps.MethodResponse:
			return m.PayloadBytes()
		case rps.MethodConnectionReset:
			continue
		default:
			return nil, fmt.Errorf("agent sent %q while amtd waited for AMT's response", m.Method)
		}
	}
	return nil, errors.New("the agent lost its connection to AMT (LMS) twice")
}

func (c *tunnelConn) Close() error                       { c.closed = true; return nil }
func (c *tunnelConn) LocalAddr() net.Addr                { return agentAddr{} }
func (c *tunnelConn) RemoteAddr() net.Addr               { return agentAddr{} }
func (c *tunnelConn) SetDeadline(t time.Time) error      { c.deadline = t; return nil }
func (c *tunnelConn) SetReadDeadline(t time.Time) error  { c.deadline = t; return nil }
func (c *tunnelConn) SetWriteDeadline(t time.Time) error { return nil }

type agentAddr struct{}

func (agentAddr) Network() string { return "rps" }
func (agentAddr) String() string  { return "agent" }

// resultJSON is for logs: the Result a session ended with.
func resultJSON(r rps.Result) string {
	b, _ := json.Marshal(r)
	return string(b)
}
