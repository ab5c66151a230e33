// Package relayclient is a console for amtd's redirection relay
// (spec/redirection.md §6): it asks for a redirection token, opens
// wss://amtd/relay/webrelay.ashx with it, and speaks AMT's redirection
// protocol (start, digest authentication with whatever user and password
// it is given, then KVM or SOL) as Open AMT's UI or MeshCentral would.
// amtd's tests, benchmarks and `make demo` (cmd/relayclient) use it.
//
// The WebSocket client side is written here (RFC 6455 §5, about 100
// lines) rather than taken from golang.org/x/net/websocket, whose Dial
// reports a refused upgrade as "bad status" without the status or the
// reason amtd sends; a console should show those.
package relayclient

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"amtd/amt/digest"
	"amtd/amt/redir"
	"amtd/secret"
)

// Token asks amtd for a redirection token for device uuid
// (GET /api/v1/authorize/redirection/{guid}) with an operator API key.
func Token(ctx context.Context, c *http.Client, base, apiKey, uuid string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/authorize/redirection/"+uuid, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("authorize redirection: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Token == "" {
		return "", fmt.Errorf("authorize redirection: answer %q has no token", b)
	}
	return out.Token, nil
}

// RefusedError is an upgrade amtd answered with an HTTP error.
type RefusedError struct {
	Status  int
	Message string // amtd's JSON "message"
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("relay refused: %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// CloseError is the close frame that ended the WebSocket.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("relay closed the WebSocket: %d %s", e.Code, e.Reason)
}

// Conn is a WebSocket to the relay: Write sends one binary frame, Read
// returns frame payloads as a byte stream.
type Conn struct {
	c    net.Conn
	br   *bufio.Reader
	left int64 // unread payload of the current frame
	mask bool
	wbuf []byte
}

// Option changes how Dial connects.
type Option func(*net.Dialer)

// WithReadBuffer sets the console socket's receive buffer (SO_RCVBUF) before
// it connects, so benchmarks compare paths with the same buffering.
func WithReadBuffer(n int) Option {
	return func(d *net.Dialer) {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n) })
			if err != nil {
				return err
			}
			return serr
		}
	}
}

// Dial opens the relay WebSocket at addr (host:port) for device uuid in mode
// (kvm, sol, ider) with token as the subprotocol. query, when not nil,
// replaces the standard query (for tests of refusals).
func Dial(ctx context.Context, addr string, tcfg *tls.Config, token, uuid, mode string, query url.Values, opts ...Option) (*Conn, error) {
	if query == nil {
		query = url.Values{"p": {"2"}, "host": {uuid}, "port": {"16994"}, "tls": {"0"}, "tls1only": {"0"}, "mode": {mode}}
	}
	nd := &net.Dialer{}
	for _, o := range opts {
		o(nd)
	}
	d := tls.Dialer{NetDialer: nd, Config: tcfg}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	var kb [16]byte
	_, _ = rand.Read(kb[:])
	key := base64.StdEncoding.EncodeToString(kb[:])
	req := "GET /relay/webrelay.ashx?" + query.Encode() + " HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n"
	if token != "" {
		req += "Sec-WebSocket-Protocol: " + token + "\r\n"
	}
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		nc.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(nc, 32<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		nc.Close()
		var e struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &e) != nil {
			e.Message = string(b)
		}
		return nil, &RefusedError{Status: resp.StatusCode, Message: e.Message}
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		nc.Close()
		return nil, errors.New("relay: bad Sec-WebSocket-Accept")
	}
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != token {
		nc.Close()
		return nil, fmt.Errorf("relay: 101 selected subprotocol %q, not the token offered", got)
	}
	_ = nc.SetDeadline(time.Time{})
	return &Conn{c: nc, br: br, mask: true}, nil
}

// Write sends p as one masked binary frame.
func (c *Conn) Write(p []byte) (int, error) {
	if err := c.writeFrame(0x2, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *Conn) writeFrame(op byte, p []byte) error {
	b := c.wbuf[:0]
	b = append(b, 0x80|op)
	switch n := len(p); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var m [4]byte
	_, _ = rand.Read(m[:])
	b = append(b, m[:]...)
	start := len(b)
	b = append(b, p...)
	for i := range p {
		b[start+i] ^= m[i%4]
	}
	c.wbuf = b
	_, err := c.c.Write(b)
	return err
}

// Read returns payload bytes of data frames; a close frame ends it with a
// *CloseError, pings are answered.
func (c *Conn) Read(p []byte) (int, error) {
	for c.left == 0 {
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return 0, err
		}
		op := h[0] & 0x0F
		n := int64(h[1] & 0x7F)
		switch n {
		case 126:
			var e [2]byte
			if _, err := io.ReadFull(c.br, e[:]); err != nil {
				return 0, err
			}
			n = int64(binary.BigEndian.Uint16(e[:]))
		case 127:
			var e [8]byte
			if _, err := io.ReadFull(c.br, e[:]); err != nil {
				return 0, err
			}
			n = int64(binary.BigEndian.Uint64(e[:]) & (1<<63 - 1))
		}
		if h[1]&0x80 != 0 {
			return 0, errors.New("relay: the server masked a frame")
		}
		switch op {
		case 0x0, 0x1, 0x2:
			c.left = n
		case 0x8, 0x9, 0xA:
			if n > 125 {
				return 0, errors.New("relay: control frame over 125 bytes")
			}
			b := make([]byte, n)
			if _, err := io.ReadFull(c.br, b); err != nil {
				return 0, err
			}
			switch op {
			case 0x8:
				ce := &CloseError{Code: 1005}
				if len(b) >= 2 {
					ce.Code, ce.Reason = int(binary.BigEndian.Uint16(b)), string(b[2:])
				}
				_ = c.writeFrame(0x8, b[:min(2, len(b))])
				return 0, ce
			case 0x9:
				if err := c.writeFrame(0xA, b); err != nil {
					return 0, err
				}
			}
		default:
			return 0, fmt.Errorf("relay: frame opcode %d", op)
		}
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.br.Read(p)
	c.left -= int64(n)
	return n, err
}

// Close sends a normal close frame and closes the connection.
func (c *Conn) Close() error {
	_ = c.writeFrame(0x8, []byte{0x03, 0xE8})
	return c.c.Close()
}

// SetDeadline sets the underlying connection's deadline.
func (c *Conn) SetDeadline(t time.Time) error { return c.c.SetDeadline(t) }

// readMsg reads one session-control message from the stream.
func readMsg(br *bufio.Reader) (redir.Message, error) {
	for need := 1; ; need++ {
		b, err := br.Peek(need)
		if err != nil {
			return nil, err
		}
		m, n, err := redir.Parse(b)
		if err == nil {
			_, _ = br.Discard(n)
			return m, nil
		}
		if !errors.Is(err, redir.ErrShort) {
			return nil, err
		}
		if need >= br.Size() {
			return nil, errors.New("relay: message too long")
		}
	}
}

// Session is an authenticated redirection session, over the relay or
// straight to a device.
type Session struct {
	io.ReadWriteCloser
	R *bufio.Reader // the stream after authentication
}

// Authenticate starts a session of type t on c (a relay Conn, or a TLS
// connection to AMT itself) and authenticates with digest as a console
// would, computing the response from user and password. Through amtd any
// user and password do (empty ones too): amtd replaces them with the AMT
// admin's. It fails with AMT's refusal (and amtd's close reason) if AMT
// refuses.
func Authenticate(c io.ReadWriteCloser, t redir.SessionType, user, password string) (*Session, error) {
	br := bufio.NewReaderSize(c, 32<<10)
	send := func(m redir.Message) error {
		b, err := redir.Marshal(m)
		if err == nil {
			_, err = c.Write(b)
		}
		return err
	}
	fail := func(what string, err error) (*Session, error) {
		// A refusal is followed by the relay's close frame: read it for
		// the reason.
		var ce *CloseError
		if !errors.As(err, &ce) {
			for range 4 {
				if _, rerr := readMsg(br); rerr != nil {
					if errors.As(rerr, &ce) {
						err = fmt.Errorf("%w (%w)", err, ce)
					}
					break
				}
			}
		}
		return nil, fmt.Errorf("redirection %s: %w", what, err)
	}
	if err := send(redir.StartSession{Type: t}); err != nil {
		return fail("start", err)
	}
	m, err := readMsg(br)
	if err != nil {
		return fail("start", err)
	}
	if r, ok := m.(redir.StartSessionReply); !ok || r.Status != redir.StartSuccess {
		return fail("start", fmt.Errorf("AMT answered %s", m))
	}
	if err := send(redir.AuthenticateSession{Type: redir.AuthQuery}); err != nil {
		return fail("query", err)
	}
	if m, err = readMsg(br); err != nil {
		return fail("query", err)
	}
	if r, ok := m.(redir.AuthenticateSessionReply); !ok || r.Status != redir.AuthSuccess {
		return fail("query", fmt.Errorf("AMT answered %s", m))
	}
	req, _ := redir.ChallengeRequest(user).Message()
	if err := send(req); err != nil {
		return fail("challenge", err)
	}
	if m, err = readMsg(br); err != nil {
		return fail("challenge", err)
	}
	r, ok := m.(redir.AuthenticateSessionReply)
	if !ok || r.Status != redir.AuthFailure || r.Type != redir.AuthDigest {
		return fail("challenge", fmt.Errorf("AMT answered %s", m))
	}
	ch, err := redir.ParseDigestChallenge(r.Data)
	if err != nil {
		return fail("challenge", err)
	}
	// The console's own response: wrong unless it knows the password,
	// which through amtd it need not; amtd computes the real one.
	var cb [8]byte
	_, _ = rand.Read(cb[:])
	cnonce := hex.EncodeToString(cb[:])
	ha1 := digest.HA1Hex(user, ch.Realm, secret.FromString(password))
	resp, _ := redir.DigestFields{User: user, Realm: ch.Realm, Nonce: ch.Nonce, URI: redir.DigestURI, CNonce: cnonce,
		NC: "00000001", QOP: ch.QOP,
		Response: secret.FromString(digest.Response(ha1.RevealString(), ch.Nonce, "00000001", cnonce, ch.QOP, "POST", redir.DigestURI))}.Message()
	if err := send(resp); err != nil {
		return fail("response", err)
	}
	if m, err = readMsg(br); err != nil {
		return fail("response", err)
	}
	if r, ok := m.(redir.AuthenticateSessionReply); !ok || r.Status != redir.AuthSuccess {
		return fail("response", fmt.Errorf("AMT answered %s", m))
	}
	return &Session{ReadWriteCloser: c, R: br}, nil
}

// StartKVM sends KVM start and waits for its reply; raw RFB follows on R.
func (s *Session) StartKVM() error {
	b, _ := redir.Marshal(redir.KVMStart{})
	if _, err := s.Write(b); err != nil {
		return err
	}
	m, err := readMsg(s.R)
	if err != nil {
		return err
	}
	if _, ok := m.(redir.KVMStartReply); !ok {
		return fmt.Errorf("KVM start: AMT answered %s", m)
	}
	return nil
}

// StartSOL sends SOL settings and waits for their reply.
func (s *Session) StartSOL() error {
	b, _ := redir.Marshal(redir.SOLSettings{Sequence: 1, MaxTxBuffer: 1000, TxTimeout: 100, TxOverflowTimeout: 0,
		RxTimeout: 10000, RxFlushTimeout: 100, Heartbeat: 0})
	if _, err := s.Write(b); err != nil {
		return err
	}
	m, err := readMsg(s.R)
	if err != nil {
		return err
	}
	if _, ok := m.(redir.SOLSettingsReply); !ok {
		return fmt.Errorf("SOL settings: AMT answered %s", m)
	}
	return nil
}

// SendSOL sends console data as a 0x28 message (spec/redirection.md §4;
// 10-byte header with the LE16 length at offset 8, as MeshCentral's).
func (s *Session) SendSOL(seq uint32, data []byte) error {
	b := make([]byte, 10, 10+len(data))
	b[0] = 0x28
	binary.LittleEndian.PutUint32(b[4:], seq)
	binary.LittleEndian.PutUint16(b[8:], uint16(len(data)))
	_, err := s.Write(append(b, data...))
	return err
}

// ReadSOL reads one 0x2A message and returns its data.
func (s *Session) ReadSOL() ([]byte, error) {
	m, err := readMsg(s.R)
	if err != nil {
		return nil, err
	}
	d, ok := m.(redir.SOLDataFromAMT)
	if !ok {
		return nil, fmt.Errorf("SOL: got %s", m)
	}
	return append([]byte(nil), d.Data...), nil
}
