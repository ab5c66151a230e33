package provision

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"amtd/amt/rps"
)

// The TLS tunnel (spec/rpc-protocol.md §7): AMT 19+ enforces TLS on its
// local ports, so rpc-go relays raw TLS records between amtd and LMS's
// 16993 as tls_data messages, and amtd runs the TLS client. The same
// wsman.Client writes its HTTP requests into that TLS connection.
//
// What rpc-go does with the records decides the shape of this client
// (internal/rps/executor.go, internal/lm/service.go):
//   - every tls_data amtd sends is written to LMS; rpc-go then reads AMT's
//     answer until LMS has been quiet for 2 s or AMT closed, and sends it
//     back as one tls_data; nothing read sends nothing;
//   - a payload starting with a ClientHello makes rpc-go close and reopen
//     its LMS connection first, so each handshake gets a fresh connection
//     to AMT; other payloads go on the LMS connection already open;
//   - AMT closing with nothing to send, or a failed LMS read, comes back as
//     connection_reset.
//
// A handshake costs two rounds (ClientHello, then the client's Finished)
// before the request's own, so the TLS connection is kept across WS-Man
// requests with HTTP keep-alive, as RPS does by default
// (amt_tls_tunnel_persistent): tlsTunnelConn is a wsman.KeepAliveConn. A
// request on a kept connection costs one round (rpc-go's 2 s of quiet,
// since AMT keeps the connection open), against two handshake rounds and
// a short one (AMT closes after Connection: close) on a new connection.
// If a kept connection breaks, the client sends again on a new one only
// what is safe to repeat; a kept connection idle for longer than
// tunnelKeepIdle is not handed out, which keeps that risk to the
// back-to-back calls of one flow.
//
// So the client sends what TLS wrote in one message only when it is about
// to read (a flight, or a whole request, per tls_data: a request split over
// two messages would cost a 2 s quiet round), and it never sends
// close_notify: rpc-go would write it to a socket AMT already closed and
// answer connection_reset, or fail the session on the write. RPS's tunnel
// likewise destroys its socket without an alert.

// TunnelTrust says which certificates amtd accepts from a device through
// the TLS tunnel.
type TunnelTrust string

const (
	// TrustODCA, the default: before provisioning the chain must lead to
	// Intel's On-Die CA root (spec/network.md §7); that is when it matters,
	// since Setup hands the new admin password's hash to whoever answers.
	// Once the device may have left pre-provisioning, a chain to the
	// appliance's device CA (a certificate amtd configured) is recognised,
	// and any other certificate is accepted, logged and pinned for the
	// session: what AMT presents then is unverified (RPS expects a
	// self-signed one after the transition, or finds one another manager
	// installed), and RPS skips verification there too; the login with the
	// stored admin password is what authenticates the device.
	TrustODCA TunnelTrust = "odca"
	// TrustLog accepts any certificate and logs what was seen: for devices
	// whose chains amtd does not know yet (the ODCA rules are rpc-go's and
	// RPS's, checked against few devices).
	TrustLog TunnelTrust = "log"
)

// ParseTunnelTrust reads the trust policy's name; "" is TrustODCA.
func ParseTunnelTrust(s string) (TunnelTrust, error) {
	switch t := TunnelTrust(strings.ToLower(strings.TrimSpace(s))); t {
	case "", TrustODCA:
		return TrustODCA, nil
	case TrustLog:
		return TrustLog, nil
	default:
		return "", fmt.Errorf("agent TLS trust %q: want odca or log", s)
	}
}

// maxTLSDataChunk is the most TLS bytes amtd puts in one tls_data message:
// base64 makes 64 KiB 87 KiB, under rpc-go's and RPS's 102400-byte frame.
const maxTLSDataChunk = 64 << 10

// tunnelHandshakeAttempts bounds the handshakes tried when rpc-go reports
// its LMS connection lost before any request went through.
const tunnelHandshakeAttempts = 3

// tunnelKeepIdle is how long a kept TLS connection may stay idle and still
// be reused. AMT's own idle timeout is not documented; the calls of a flow
// follow each other at once, and the longer waits (delay_timer after
// Setup, the TLS restart after CommitChanges) may leave a dead connection,
// so the call after them starts a new one.
const tunnelKeepIdle = 5 * time.Second

// errLMSReset is wrapped when the agent reports connection_reset.
var errLMSReset = errors.New("the agent lost its connection to AMT (LMS)")

// tunnel is an agent session's TLS state.
type tunnel struct {
	s   *agentSession
	log *slog.Logger
	// sem admits one TLS connection in use at a time (rpc-go has one LMS
	// socket), or a port switch. A kept connection does not hold it: the
	// next dial takes it, or closes it before a new handshake.
	sem chan struct{}

	trust     TunnelTrust
	odca      *x509.CertPool
	deviceCA  *x509.CertPool // nil when the appliance has no device CA
	activated atomic.Bool    // the device may have left pre-provisioning

	// retryDelay is waited before a handshake is tried again after a
	// connection_reset: AMT may be restarting its TLS stack (RPS waits
	// delay_tls_timer then).
	retryDelay time.Duration
	// count, when set, counts tunnel events: what AMT's certificate was
	// accepted as (odca, device-ca, pinned, logged) or refused, and
	// resets, handshakes and their retries, and kept connections reused.
	count func(event string)

	mu      sync.Mutex
	pinned  []byte // SHA-256 of the unverified certificate accepted
	checked bool   // the first accepted chain was logged
	kept    *tlsTunnelConn
	keptAt  time.Time
}

func (t *tunnel) event(e string) {
	if t.count != nil {
		t.count(e)
	}
}

func newTunnel(s *agentSession, log *slog.Logger, trust TunnelTrust, odca []*x509.Certificate, deviceCA []byte, activated bool) *tunnel {
	t := &tunnel{s: s, log: log, sem: make(chan struct{}, 1), trust: trust, odca: x509.NewCertPool()}
	for _, c := range append(intelODCARoots(), odca...) {
		t.odca.AddCert(c)
	}
	if len(deviceCA) > 0 {
		if c, err := x509.ParseCertificate(deviceCA); err == nil {
			t.deviceCA = x509.NewCertPool()
			t.deviceCA.AddCert(c)
		}
	}
	t.activated.Store(activated)
	return t
}

// dial opens a TLS connection to AMT through the agent: a wsman.Dialer.
// A connection_reset during the handshake, before any request went out, is
// answered with a new handshake (rpc-go reopens LMS on the ClientHello);
// one after the request fails the call, since AMT may have acted on it.
func (t *tunnel) dial(ctx context.Context) (net.Conn, error) {
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("agent TLS tunnel: waiting for the previous connection: %w", ctx.Err())
	}
	t.mu.Lock()
	kept, at := t.kept, t.keptAt
	t.kept = nil
	t.mu.Unlock()
	if kept != nil {
		if time.Since(at) < tunnelKeepIdle && !kept.rc.closed.Load() {
			t.event("reused")
			kept.reused = true
			kept.held = true
			return kept, nil
		}
		kept.Close()
	}
	cfg := &tls.Config{
		// AMT's certificates carry no usable name (the ODCA leaf has no SAN,
		// rpc-go#1068): the chain is checked by verifyPeer instead.
		InsecureSkipVerify:    true, //nolint:gosec // verified in VerifyPeerCertificate
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error { return t.verifyPeer(raw) },
		MinVersion:            tls.VersionTLS12, // AMT 19 speaks 1.2 (spec/network.md §6)
	}
	var lastErr error
	for attempt := 0; attempt < tunnelHandshakeAttempts; attempt++ {
		rc := &recordConn{t: t}
		if dl, ok := ctx.Deadline(); ok {
			rc.deadline = dl
		}
		tc := tls.Client(rc, cfg)
		err := tc.HandshakeContext(ctx)
		if err == nil {
			t.event("handshake")
			t.log.Debug("agent TLS tunnel: handshake done", "attempt", attempt+1)
			return &tlsTunnelConn{Conn: tc, rc: rc, held: true}, nil
		}
		rc.abandon()
		lastErr = err
		if !errors.Is(err, errLMSReset) || ctx.Err() != nil {
			break
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < t.retryDelay {
			break // no time left to wait for AMT
		}
		t.event("handshake-retry")
		t.log.Info("agent TLS tunnel: LMS connection lost during the handshake; starting again", "attempt", attempt+1, "after", t.retryDelay)
		if sleepCtx(ctx, t.retryDelay) != nil {
			break
		}
	}
	t.release()
	return nil, fmt.Errorf("agent TLS tunnel to AMT: handshake: %w", lastErr)
}

func (t *tunnel) release() { <-t.sem }

// dropKept closes the kept connection, if any (before a port switch).
func (t *tunnel) dropKept() {
	t.mu.Lock()
	kept := t.kept
	t.kept = nil
	t.mu.Unlock()
	if kept != nil {
		kept.Close()
	}
}

// verifyPeer applies the trust policy to AMT's certificate chain.
func (t *tunnel) verifyPeer(raw [][]byte) error {
	certs := make([]*x509.Certificate, 0, len(raw))
	for i, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			if t.trust == TrustLog {
				t.event("cert-logged")
				t.log.Warn("agent TLS tunnel: AMT's certificate does not parse; accepted (trust=log)", "index", i, "err", err)
				return nil
			}
			t.event("cert-refused")
			return fmt.Errorf("AMT's certificate %d does not parse: %w", i, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return errors.New("AMT presented no certificate")
	}
	leaf := certs[0]
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	verify := func(roots *x509.CertPool) error {
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		return err
	}
	odcaErr := verify(t.odca)
	if odcaErr == nil {
		if why := odcaShape(certs); why != "" {
			// rpc-go refuses these; its rules come from few devices, so
			// amtd logs instead (the chain itself verified).
			t.log.Warn("agent TLS tunnel: AMT's On-Die CA chain verifies but is not shaped as rpc-go expects", "why", why, "chain", describeChain(certs))
		}
		t.event("cert-odca")
		t.logOnce("AMT's TLS certificate chains to the On-Die CA root", certs)
		return nil
	}
	if t.deviceCA != nil && verify(t.deviceCA) == nil {
		t.event("cert-device-ca")
		t.logOnce("AMT's TLS certificate is the one amtd configured (appliance device CA)", certs)
		return nil
	}
	if t.activated.Load() {
		sum := sha256.Sum256(leaf.Raw)
		t.mu.Lock()
		defer t.mu.Unlock()
		switch {
		case t.pinned == nil:
			kind := "issued by " + leaf.Issuer.String()
			if len(certs) == 1 && selfSigned(leaf) {
				kind = "self-signed"
			}
			t.event("cert-pinned")
			t.pinned = sum[:]
			t.log.Warn("agent TLS tunnel: the device, out of pre-provisioning, presents a certificate amtd cannot verify; accepted and pinned for this session",
				"kind", kind, "chain", describeChain(certs), "sha256", hex.EncodeToString(sum[:]))
			return nil
		case bytes.Equal(t.pinned, sum[:]):
			t.event("cert-pinned")
			return nil
		}
		t.event("cert-refused")
		return fmt.Errorf("AMT's certificate changed within the session (%s, was SHA-256 %s)", describeChain(certs), hex.EncodeToString(t.pinned[:8]))
	}
	if t.trust == TrustLog {
		t.event("cert-logged")
		t.log.Warn("agent TLS tunnel: AMT's certificate does not chain to a trusted root; accepted (trust=log)", "chain", describeChain(certs), "odca", odcaErr)
		return nil
	}
	t.event("cert-refused")
	return fmt.Errorf("AMT's certificate (%s) does not chain to Intel's On-Die CA root (%v); "+
		"if this device is genuine, record what it presents and set the agent TLS trust to log (spec/network.md §7)", describeChain(certs), odcaErr)
}

// selfSigned reports whether c is signed by its own key. AMT's self-signed
// certificate need not say it is a CA, so CheckSignatureFrom would refuse it.
func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

func (t *tunnel) logOnce(msg string, certs []*x509.Certificate) {
	t.mu.Lock()
	first := !t.checked
	t.checked = true
	t.mu.Unlock()
	if first {
		t.log.Info("agent TLS tunnel: "+msg, "chain", describeChain(certs))
	}
}

// odcaShape checks an ODCA chain as rpc-go does (internal/certs/lmsTls.go,
// spec/network.md §7): 4 or 6 certificates, leaf CN "iAMT CSME IDevID RCFG"
// or "AMT RCFG", certificate 3 a ROM CA whose issuer OU starts with an ODCA
// prefix. It returns what differs, or "".
func odcaShape(certs []*x509.Certificate) string {
	if n := len(certs); n != 4 && n != 6 {
		return fmt.Sprintf("%d certificates, rpc-go expects 4 or 6", n)
	}
	if cn := certs[0].Subject.CommonName; cn != "iAMT CSME IDevID RCFG" && cn != "AMT RCFG" {
		return fmt.Sprintf("leaf CN %q", cn)
	}
	rom := certs[3]
	if cn := rom.Subject.CommonName; !strings.Contains(cn, "ROM CA") && !strings.Contains(cn, "ROM DE") {
		return fmt.Sprintf("certificate 3 CN %q is no ROM CA", cn)
	}
	for _, ou := range rom.Issuer.OrganizationalUnit {
		if strings.HasPrefix(ou, "ODCA 2 CSME") || strings.HasPrefix(ou, "On Die CSME") {
			return ""
		}
	}
	return fmt.Sprintf("ROM CA issuer OU %q has no ODCA prefix", rom.Issuer.OrganizationalUnit)
}

// describeChain says what a device presented, for logs and errors.
func describeChain(certs []*x509.Certificate) string {
	if len(certs) == 0 {
		return "no certificate"
	}
	leaf, top := certs[0], certs[len(certs)-1]
	sum := sha256.Sum256(leaf.Raw)
	return fmt.Sprintf("%d certificate(s), leaf %q, top issuer %q, leaf SHA-256 %s", len(certs),
		leaf.Subject.String(), top.Issuer.String(), hex.EncodeToString(sum[:8]))
}

// recordConn carries one TLS connection's records over the agent's
// WebSocket as tls_data messages.
type recordConn struct {
	t        *tunnel
	deadline time.Time
	out      bytes.Buffer
	in       []byte
	got      bool // bytes of this TLS connection arrived
	sentApp  bool // an application-data record went out: AMT may have the request
	closed   atomic.Bool
	reading  sync.WaitGroup
	once     sync.Once
}

func (c *recordConn) Write(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	return c.out.Write(p)
}

// flush sends what TLS wrote since the last read.
func (c *recordConn) flush() error {
	for c.out.Len() > 0 {
		chunk := c.out.Next(maxTLSDataChunk)
		if hasAppData(chunk) {
			c.sentApp = true
		}
		if err := c.t.s.send(c.t.s.srv.TLSData(chunk)); err != nil {
			return err
		}
	}
	return nil
}

// hasAppData reports whether b holds a TLS application-data record (walking
// the record headers; a torn record counts as none).
func hasAppData(b []byte) bool {
	for len(b) >= 5 {
		if b[0] == 0x17 {
			return true
		}
		n := 5 + (int(b[3])<<8 | int(b[4]))
		if n > len(b) {
			return false
		}
		b = b[n:]
	}
	return false
}

func (c *recordConn) Read(p []byte) (int, error) {
	c.reading.Add(1)
	defer c.reading.Done()
	for len(c.in) == 0 {
		if c.closed.Load() {
			return 0, net.ErrClosed
		}
		if err := c.flush(); err != nil {
			return 0, err
		}
		deadline := c.deadline
		if deadline.IsZero() {
			deadline = time.Now().Add(exchangeTimeout)
		}
		m, err := c.t.s.recv(deadline)
		if err != nil {
			return 0, err
		}
		switch m.Method {
		case rps.MethodTLSData:
			b, err := m.PayloadBytes()
			if err != nil {
				return 0, err
			}
			if !c.got && len(b) > 0 && b[0] == 0x17 {
				// Application data before any handshake bytes belongs to an
				// earlier connection (RPS drops it the same way).
				c.t.log.Debug("agent TLS tunnel: stale application data dropped", "bytes", len(b))
				continue
			}
			c.got = c.got || len(b) > 0
			c.in = b
		case rps.MethodConnectionReset:
			c.t.event("connection-reset")
			reason := rps.ConnectionReset(m)
			if c.sentApp {
				return 0, fmt.Errorf("%w (%s) after the request went out: the device may have acted on it", errLMSReset, reason)
			}
			return 0, fmt.Errorf("%w (%s)", errLMSReset, reason)
		default:
			return 0, fmt.Errorf("agent sent %q while amtd waited for AMT's TLS records", m.Method)
		}
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}

// abandon ends the connection without a TLS alert; the tunnel is released
// by whoever owns it.
func (c *recordConn) abandon() {
	c.closed.Store(true)
}

func (c *recordConn) Close() error {
	c.closed.Store(true)
	return nil
}

func (c *recordConn) LocalAddr() net.Addr                { return agentAddr{} }
func (c *recordConn) RemoteAddr() net.Addr               { return agentAddr{} }
func (c *recordConn) SetDeadline(t time.Time) error      { c.deadline = t; return nil }
func (c *recordConn) SetReadDeadline(t time.Time) error  { c.deadline = t; return nil }
func (c *recordConn) SetWriteDeadline(t time.Time) error { return nil }

// tlsTunnelConn is the TLS connection handed to the WS-Man client. Close
// drops it without close_notify (see above) and, if it was in use, frees
// the tunnel once no read is in progress; a read blocked on the WebSocket
// is cut short. Keep hands it back for the next request and frees the
// tunnel.
type tlsTunnelConn struct {
	*tls.Conn
	rc *recordConn
	// reused and held are the dialer's: the connection carried an earlier
	// request; it holds the tunnel's sem.
	reused, held bool
}

func (c *tlsTunnelConn) Reused() bool { return c.reused }

func (c *tlsTunnelConn) Keep() {
	t := c.rc.t
	c.rc.sentApp = false // the next request has not gone out yet
	t.mu.Lock()
	old := t.kept
	t.kept, t.keptAt = c, time.Now()
	t.mu.Unlock()
	if old != nil && old != c {
		old.Close()
	}
	if c.held {
		c.held = false
		t.release()
	}
}

func (c *tlsTunnelConn) Close() error {
	c.rc.once.Do(func() {
		c.rc.closed.Store(true)
		held := c.held
		c.held = false
		if !held {
			return // kept, idle: nothing reads and the sem is someone else's
		}
		_ = c.rc.t.s.ws.SetReadDeadline(time.Now())
		go func() {
			c.rc.reading.Wait()
			c.rc.t.release()
		}()
	})
	return nil
}
