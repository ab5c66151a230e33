package cira

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"amtd/amt/apf"
)

// maxChannelData bounds a CHANNEL_DATA payload the reader accepts, and so
// the reader's buffer (apf.Limits.MaxMessageLen); it is the receive window
// amtd grants each channel it opens (chanWindow), so no legal CHANNEL_DATA
// is longer.
const maxChannelData = chanWindow

// keepaliveQuiet is how long after the last tcpip-forward amtd waits for
// port 5900 before asking for keep-alives anyway (spec/apf.md §4 step 7):
// newer firmware may not forward every port.
const keepaliveQuiet = 2 * time.Second

// lastForwardPort is the last port of AMT's observed forward order
// (spec/apf.md §4 step 6); seeing it means the forwards are done.
const lastForwardPort = 5900

// session is one authenticated, or authenticating, APF connection.
type session struct {
	svc    *Service
	conn   net.Conn
	src    netip.Addr
	remote string
	tlsVer uint16
	suite  uint16

	uuid  string // set once PROTOCOLVERSION is accepted
	user  string
	since time.Time

	wmu sync.Mutex // serialises writes
	wb  []byte

	mu         sync.Mutex // guards the fields below
	seen       time.Time
	seenQueued time.Time // seen as last queued for the store (registry.heard)
	ports      []uint16
	kaSent     bool
	kaTimer    *time.Timer
	kicked     bool
	kickWhy    string
	interval   uint32 // keep-alive interval AMT accepted, 0 until it replied

	ch *chans // channels amtd opened on this link
}

// state is the session's link state for the store.
func (s *session) stateLocked() linkState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return linkState{connected: true, since: s.since, seen: s.seen, ports: slices.Clone(s.ports), remote: s.remote}
}

// send writes one message, bounded by writeTimeout.
func (s *session) send(m apf.Message) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	b, err := m.AppendBinary(s.wb[:0])
	if err != nil {
		return err
	}
	if cap(b) <= 256 {
		s.wb = b
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err = s.conn.Write(b)
	return err
}

// kick tells the device to go with DISCONNECT(reason) and closes the link;
// the session's reader then ends. why names it in the metrics.
func (s *session) kick(reason apf.DisconnectReason, why string) {
	s.mu.Lock()
	if s.kicked {
		s.mu.Unlock()
		return
	}
	s.kicked, s.kickWhy = true, why
	if s.kaTimer != nil {
		s.kaTimer.Stop()
	}
	s.mu.Unlock()
	// A write in progress (a keep-alive, a forward's answer) is cut to
	// kickTimeout rather than skipping the DISCONNECT; the DISCONNECT then
	// goes out under the same bound and the link is closed. It runs in the
	// background, so a peer that stopped reading costs the caller nothing
	// and many kicks at shutdown run side by side.
	_ = s.conn.SetWriteDeadline(time.Now().Add(kickTimeout))
	go func() {
		s.wmu.Lock()
		if b, err := (apf.Disconnect{Reason: reason}).AppendBinary(nil); err == nil {
			_ = s.conn.SetWriteDeadline(time.Now().Add(kickTimeout))
			_, _ = s.conn.Write(b)
		}
		s.wmu.Unlock()
		_ = s.conn.Close()
	}()
}

// kickTimeout bounds the DISCONNECT written to a link being closed.
const kickTimeout = 2 * time.Second

// Why a connection was refused or ended, for metrics and logs.
const (
	resultAuthenticated = "authenticated"
	resultUnknownUUID   = "unknown_uuid"
	resultBadUser       = "bad_user"
	resultBadPassword   = "bad_password"
	resultBackoff       = "backoff"
	resultGarbage       = "garbage"
	resultHTTP          = "http"
	resultTLSError      = "tls_error"
	resultProtocolError = "protocol_error"
	resultTimeout       = "timeout"
	resultStoreError    = "store_error"
	resultClosed        = "closed" // the device went away before authenticating

	endPeer     = "peer"
	endIdle     = "idle"
	endReplaced = "replaced"
	endProtocol = "protocol_error"
	endShutdown = "shutdown"
)

// serve runs one accepted connection up to authentication. It returns
// the authenticated link's run, for the caller to call on a goroutine of
// its choice, or nil when the connection was refused and closed.
func (sv *Service) serve(ctx context.Context, raw net.Conn) (link func()) {
	src := addrOf(raw.RemoteAddr())
	if blocked, _ := sv.bySource.blocked(src); blocked {
		sv.refuse(resultBackoff)
		raw.Close()
		return nil
	}
	if ok, why := sv.gate.enter(src); !ok {
		sv.refuse(why)
		raw.Close()
		return nil
	}
	authed := false
	defer func() {
		if !authed {
			sv.gate.leave(src)
		}
	}()
	deadline := time.Now().Add(preAuthTimeout)
	_ = raw.SetDeadline(time.Now().Add(handshakeTimeout))
	br := bufio.NewReaderSize(raw, 64)
	first, err := br.Peek(sniffLen)
	if err != nil {
		sv.refuse(ioResult(err, resultGarbage))
		raw.Close()
		return nil
	}
	switch classify(first) {
	case kindHTTPGet, kindHTTPHead:
		head := classify(first) == kindHTTPHead
		endOfHeader(br)
		answerHTTP(raw, head)
		sv.refuse(resultHTTP)
		raw.Close()
		return nil
	case kindGarbage:
		sv.refuse(resultGarbage)
		raw.Close()
		return nil
	}
	tc := tls.Server(&peekedConn{Conn: raw, r: br}, sv.tlsConfig.Load())
	if err := tc.HandshakeContext(ctx); err != nil {
		sv.refuse(ioResult(err, resultTLSError))
		sv.log.Debug("cira: TLS handshake failed", "remote", raw.RemoteAddr().String(), "err", err)
		raw.Close()
		return nil
	}
	_ = raw.SetDeadline(deadline)
	cs := tc.ConnectionState()
	s := &session{svc: sv, conn: tc, src: src, remote: raw.RemoteAddr().String(), tlsVer: cs.Version, suite: cs.CipherSuite, ch: newChans()}
	if !sv.setSession(raw, s) {
		tc.Close()
		return nil
	}
	r := apf.NewReader(tc, apf.Limits{MaxData: maxChannelData})
	actx, cancel := context.WithDeadline(ctx, deadline)
	res := s.authenticate(actx, r)
	cancel()
	if res != resultAuthenticated {
		sv.refuse(res)
		tc.Close()
		return nil
	}
	authed = true
	sv.gate.leave(src)
	sv.refuse(resultAuthenticated)
	return func() { s.run(r) }
}

// addrOf is the address of a net.Addr, or the zero Addr.
func addrOf(a net.Addr) netip.Addr {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// ioResult names a read error: a deadline is a timeout, an early close is
// closed, anything else is what the caller says.
func ioResult(err error, other string) string {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return resultTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return resultClosed
	}
	return other
}

// ctxResult names why an authentication's context ended: its deadline
// (preAuthTimeout) or the service closing.
func ctxResult(ctx context.Context) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return resultTimeout
	}
	return resultClosed
}

// authenticate runs the handshake up to USERAUTH_SUCCESS (spec/apf.md §4
// steps 2–4) and registers the link. ctx ends at the connection's
// preAuthTimeout, which also bounds the wait for a password check. It returns resultAuthenticated or why
// the connection is refused; on refusal the caller closes the connection.
func (s *session) authenticate(ctx context.Context, r *apf.Reader) string {
	sv := s.svc
	read := func() (apf.Message, string) {
		m, err := r.ReadMessage()
		if err != nil {
			return nil, ioResult(err, resultProtocolError)
		}
		return m, ""
	}
	protoErr := func(m apf.Message, want string) string {
		sv.log.Debug("cira: protocol error before authentication", "remote", s.remote, "got", m.String(), "want", want)
		_ = s.send(apf.Disconnect{Reason: apf.DisconnectProtocolError})
		return resultProtocolError
	}

	// PROTOCOLVERSION: the UUID must be a device of the site. It is not
	// answered (MPS and MeshCentral never do).
	m, why := read()
	if why != "" {
		return why
	}
	pv, ok := m.(apf.ProtocolVersion)
	if !ok {
		return protoErr(m, "PROTOCOLVERSION")
	}
	s.uuid = pv.UUID.String() // lower case, spec/apf.md §6
	known, err := sv.dir.Known(ctx, s.uuid)
	if err != nil && ctx.Err() != nil {
		return ctxResult(ctx)
	}
	if err != nil {
		sv.log.Warn("cira: device lookup failed", "dev", s.uuid, "err", err)
		_ = s.send(apf.Disconnect{Reason: apf.DisconnectTemporarilyUnavailable})
		return resultStoreError
	}
	if !known {
		sv.bySource.fail(s.src)
		sv.log.Info("cira: refused an unknown device", "dev", s.uuid, "remote", s.remote)
		_ = s.send(apf.Disconnect{Reason: apf.DisconnectHostNotAllowedToConnect})
		return resultUnknownUUID
	}

	// SERVICE_REQUEST auth@amt.intel.com.
	if m, why = read(); why != "" {
		return why
	}
	if sr, ok := m.(apf.ServiceRequest); !ok || sr.Service != apf.ServiceAuth {
		return protoErr(m, "SERVICE_REQUEST "+apf.ServiceAuth)
	}
	if err := s.send(apf.ServiceAccept{Service: apf.ServiceAuth}); err != nil {
		return ioResult(err, resultClosed)
	}

	// USERAUTH_REQUEST with a password, for pfwd@amt.intel.com.
	if m, why = read(); why != "" {
		return why
	}
	ua, ok := m.(apf.UserauthRequest)
	if !ok {
		return protoErr(m, "USERAUTH_REQUEST")
	}
	defer ua.Password.Wipe()
	fail := func(res string) string {
		_ = s.send(apf.UserauthFailure{Methods: apf.MethodPassword})
		return res // the caller closes: spec/apf.md §4 step 4
	}
	if ua.Method != apf.MethodPassword || ua.Service != apf.ServicePortForward {
		sv.log.Info("cira: refused an authentication method", "dev", s.uuid, "method", ua.Method, "service", ua.Service)
		return fail(resultBadUser)
	}
	// The UUID backoff is per UUID and source: a stranger who knows a
	// device's UUID cannot keep the device itself out by failing logins
	// from elsewhere. Guessing across sources gains nothing against a
	// random 16-character password behind argon2id.
	key := uuidSource{s.uuid, s.src}
	if blocked, until := sv.byUUID.blocked(key); blocked {
		sv.log.Info("cira: device is backing off after failed logins", "dev", s.uuid, "remote", s.remote, "until", until)
		return fail(resultBackoff)
	}
	userOK, pwOK, err := sv.checkCredentials(ctx, s.uuid, ua.User, ua.Password.Reveal())
	if err != nil && ctx.Err() != nil {
		// preAuthTimeout passed while the check waited its turn (or the
		// service is closing): the device has been told nothing and gave
		// up or will; checking now would spend an argon2id hash on nobody.
		return ctxResult(ctx)
	}
	if err != nil {
		sv.log.Warn("cira: credential check failed", "dev", s.uuid, "err", err)
		return fail(resultStoreError)
	}
	if !userOK || !pwOK {
		sv.bySource.fail(s.src)
		sv.byUUID.fail(key)
		res := resultBadPassword
		if !userOK {
			res = resultBadUser
		}
		sv.log.Warn("cira: login refused", "dev", s.uuid, "remote", s.remote, "reason", res)
		return fail(res)
	}
	sv.bySource.succeed(s.src)
	sv.byUUID.succeed(key)
	if err := s.send(apf.UserauthSuccess{}); err != nil {
		return ioResult(err, resultClosed)
	}
	s.user = ua.User
	now := sv.now()
	s.since, s.seen = now, now
	if old := sv.reg.add(s); old != nil {
		sv.log.Info("cira: a newer connection replaces the device's link", "dev", s.uuid, "old", old.remote, "new", s.remote)
		sv.ends.With(endReplaced).Inc()
		old.kick(apf.DisconnectByApplication, endReplaced)
	}
	sv.log.Info("cira: device connected", "dev", s.uuid, "remote", s.remote, "tls", tls.VersionName(s.tlsVer),
		"suite", tls.CipherSuiteName(s.suite), "trigger", pv.Trigger.String(), "apf", fmt.Sprintf("%d.%d", pv.Major, pv.Minor))
	return resultAuthenticated
}

// run serves an authenticated link until it ends (spec/apf.md §4 steps 5–8).
func (s *session) run(r *apf.Reader) {
	sv := s.svc
	_ = s.conn.SetDeadline(time.Time{})
	end := endPeer
	defer func() {
		s.mu.Lock()
		if s.kaTimer != nil {
			s.kaTimer.Stop()
		}
		if s.kicked {
			end = s.kickWhy
		}
		s.mu.Unlock()
		s.conn.Close()
		s.failChannels()
		sv.reg.remove(s, sv.now())
		if end != endReplaced { // counted when it was replaced
			sv.ends.With(end).Inc()
		}
		sv.log.Info("cira: device disconnected", "dev", s.uuid, "remote", s.remote, "why", end)
	}()
	for {
		_ = s.conn.SetReadDeadline(time.Now().Add(sv.settings.Load().idle))
		// handle consumes m before the next read (deliver copies the data
		// into the channel), so the reader's buffer need not be copied.
		m, err := r.ReadMessageNoCopy()
		if err != nil {
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				end = endIdle
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrUnexpectedEOF):
				end = endPeer
			default:
				var pe *apf.ParseError
				if errors.As(err, &pe) {
					end = endProtocol
					sv.log.Info("cira: undecodable message", "dev", s.uuid, "err", err)
					_ = s.send(apf.Disconnect{Reason: apf.DisconnectProtocolError})
				}
			}
			return
		}
		s.mu.Lock()
		s.seen = sv.now()
		s.mu.Unlock()
		if err := s.handle(m); err != nil {
			if errors.Is(err, errProtocol) {
				end = endProtocol
				sv.log.Info("cira: protocol error", "dev", s.uuid, "err", err)
				_ = s.send(apf.Disconnect{Reason: apf.DisconnectProtocolError})
			}
			return
		}
	}
}

var errProtocol = errors.New("protocol error")

// handle answers one message of an authenticated link.
func (s *session) handle(m apf.Message) error {
	sv := s.svc
	switch m := m.(type) {
	case apf.ServiceRequest:
		if m.Service != apf.ServicePortForward {
			_ = s.send(apf.Disconnect{Reason: apf.DisconnectServiceNotAvailable})
			return fmt.Errorf("%w: service %q requested after authentication", errProtocol, m.Service)
		}
		if err := s.send(apf.ServiceAccept{Service: apf.ServicePortForward}); err != nil {
			return err
		}
		s.mu.Lock()
		s.armKeepaliveLocked(false) // in case no forward follows
		s.mu.Unlock()
		return nil
	case apf.TCPIPForward:
		s.mu.Lock()
		if p := uint16(m.Port); uint32(p) == m.Port && !slices.Contains(s.ports, p) && len(s.ports) < 64 {
			s.ports = append(s.ports, p)
		}
		s.mu.Unlock()
		sv.reg.touch(s)
		if m.WantReply {
			if err := s.send(apf.RequestSuccess{HasPort: true, Port: m.Port}); err != nil {
				return err
			}
		}
		// Armed after the reply, so that AMT sees its answer first.
		s.mu.Lock()
		s.armKeepaliveLocked(m.Port == lastForwardPort)
		s.mu.Unlock()
		return nil
	case apf.CancelTCPIPForward:
		s.mu.Lock()
		s.ports = slices.DeleteFunc(s.ports, func(p uint16) bool { return uint32(p) == m.Port })
		s.mu.Unlock()
		sv.reg.touch(s)
		if m.WantReply {
			return s.send(apf.RequestSuccess{})
		}
		return nil
	case apf.UDPSendTo:
		// Parsed, then ignored (spec/apf.md §3).
		if m.WantReply {
			return s.send(apf.RequestFailure{})
		}
		return nil
	case apf.GlobalRequest:
		// Unknown request: REQUEST_FAILURE when a reply is wanted; MPS and
		// MeshCentral stay silent, which leaves AMT waiting (spec/apf.md §3).
		if m.WantReply {
			return s.send(apf.RequestFailure{})
		}
		return nil
	case apf.KeepaliveRequest:
		sv.keepalives.Inc()
		sv.reg.heard(s)
		return s.send(apf.KeepaliveReply(m))
	case apf.KeepaliveReply:
		sv.reg.heard(s)
		return nil
	case apf.KeepaliveOptionsReply:
		s.mu.Lock()
		s.interval = m.Interval
		s.mu.Unlock()
		return nil
	case apf.ChannelOpen:
		// Channels opened by AMT are refused everywhere (spec/apf.md §7.4).
		return s.send(apf.ChannelOpenFailure{RecipientChannel: m.SenderChannel, Reason: apf.OpenUnknownChannelType})
	case apf.ChannelOpenConfirmation, apf.ChannelOpenFailure, apf.ChannelWindowAdjust, apf.ChannelData, apf.ChannelClose:
		return s.dispatch(m)
	case apf.Disconnect:
		sv.log.Info("cira: device sent DISCONNECT", "dev", s.uuid, "reason", m.Reason.String())
		return io.EOF
	case apf.ProtocolVersion, apf.UserauthRequest:
		return fmt.Errorf("%w: %s after authentication", errProtocol, m.Type())
	}
	// Server-to-device messages (SERVICE_ACCEPT, USERAUTH_*, REQUEST_*,
	// KEEPALIVE_OPTIONS_REQUEST) have no business coming from AMT.
	return fmt.Errorf("%w: unexpected %s", errProtocol, m.Type())
}

// armKeepaliveLocked schedules KEEPALIVE_OPTIONS_REQUEST: at once when the
// last expected port was forwarded, else after a quiet period with no more
// forwards (spec/apf.md §4 step 7). It is sent once per link.
func (s *session) armKeepaliveLocked(now bool) {
	if s.kaSent || s.kicked {
		return
	}
	if s.kaTimer != nil {
		s.kaTimer.Stop()
	}
	d := keepaliveQuiet
	if now {
		d = 0
	}
	s.kaTimer = time.AfterFunc(d, s.sendKeepaliveOptions)
}

func (s *session) sendKeepaliveOptions() {
	s.mu.Lock()
	if s.kaSent || s.kicked {
		s.mu.Unlock()
		return
	}
	s.kaSent = true
	s.mu.Unlock()
	set := s.svc.settings.Load()
	// Timeout's meaning is unverified; Console's 90 is the server's idle
	// limit, which is what amtd sends (spec/apf.md §4 step 7).
	if err := s.send(apf.KeepaliveOptionsRequest{Interval: uint32(set.keepAlive / time.Second), Timeout: uint32(set.idle / time.Second)}); err != nil {
		_ = s.conn.Close()
	}
}

// uuidSource keys the per-device login backoff.
type uuidSource struct {
	uuid string
	src  netip.Addr
}
