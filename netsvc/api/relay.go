package api

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/websocket"

	"amtd/amt/redir"
	"amtd/netsvc/cira"
	"amtd/store"
)

// The MPS-compatible redirection relay (spec/redirection.md §6): a console
// (Open AMT's UI, MeshCentral's amt-redir, or any client) asks
// GET /api/v1/authorize/redirection/{guid} for a token, then opens
// wss://amtd/relay/webrelay.ashx?p=2&host=GUID&port=16994&tls=0&tls1only=0&mode=kvm
// with the token as its WebSocket subprotocol. amtd opens an APF channel to
// the device's redirection port over its CIRA link and relays binary frames
// both ways, injecting the AMT credentials (relay_intercept.go): the console
// never holds the AMT password.
//
// WebSocket: golang.org/x/net/websocket (already a dependency for the
// provisioning agent). Its Server lets the handshake select the subprotocol
// the 101 echoes (RFC 6455 §4.2.2), and its Conn.Read hands out a frame in
// pieces no larger than the caller's buffer, so a huge frame costs no more
// memory than a small one.

const relayPath = "/relay/webrelay.ashx"

// Redirection ports (spec/redirection.md §1).
const (
	redirPort    = 16994
	redirTLSPort = 16995
)

const (
	// relayBuf is each direction's read buffer, one WebSocket frame at
	// most. The CIRA channel's window is larger (80 KiB, netsvc/cira); a
	// read takes what has arrived up to this, and an 80 KiB buffer showed
	// no clear gain in BenchmarkRelayKVM (issue 6).
	relayBuf = 16 << 10
	// relayDialTimeout bounds opening the channel (and the inner TLS on
	// 16995) before the upgrade; the CIRA service waits up to 30 s for a
	// busy device's slot.
	relayDialTimeout = 30 * time.Second
	// relayAuthTimeout bounds the redirection handshake (start, digest):
	// a console that upgrades and says nothing must not hold the device's
	// mode slot and a channel for ever.
	relayAuthTimeout = 60 * time.Second
)

// relayModes maps the query's mode to the session type the console must
// start (spec/redirection.md §2).
var relayModes = map[string]redir.SessionType{"kvm": redir.SessionKVM, "sol": redir.SessionSOL, "ider": redir.SessionIDER}

// RelayState is what the relay keeps between calls: the token key, the
// tokens issued and the sessions open. The daemon may hand one to every
// Service it builds (Options.Relays) so a reload keeps tokens valid and open
// sessions counted; without one, the Service makes its own and ends its
// sessions on Close.
type RelayState struct {
	tokens *tokenIssuer

	mu     sync.Mutex
	active map[relayKey]*relaySession
	closed bool
	wg     sync.WaitGroup
}

type relayKey struct{ uuid, mode string }

// NewRelayState returns an empty state with a fresh random token key.
func NewRelayState() *RelayState {
	return &RelayState{tokens: newTokenIssuer(), active: map[relayKey]*relaySession{}}
}

// Close ends every open session and waits for their pumps to finish.
func (rs *RelayState) Close() {
	rs.mu.Lock()
	rs.closed = true
	open := make([]*relaySession, 0, len(rs.active))
	for _, s := range rs.active {
		open = append(open, s)
	}
	rs.mu.Unlock()
	for _, s := range open {
		s.end("amtd", "amtd is shutting down")
	}
	rs.wg.Wait()
}

// maxRelaysPerDevice bounds a device's relay sessions. AMT serves about
// three APF channels at a time (spec/apf.md §7, netsvc/cira's per-device
// cap); each session holds one, so two leave one for WS-Man: power
// actions and the /amt routes keep working while a console is open.
const maxRelaysPerDevice = 2

// Why reserve refused.
const (
	reserveOK = iota
	reserveModeTaken
	reserveDeviceFull
	reserveShuttingDown
)

// reserve takes the device's slot for mode, unless that mode is open or
// the device has maxRelaysPerDevice sessions already.
func (rs *RelayState) reserve(k relayKey, s *relaySession) int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.closed {
		return reserveShuttingDown
	}
	if _, taken := rs.active[k]; taken {
		return reserveModeTaken
	}
	n := 0
	for o := range rs.active {
		if o.uuid == k.uuid {
			n++
		}
	}
	if n >= maxRelaysPerDevice {
		return reserveDeviceFull
	}
	rs.active[k] = s
	rs.wg.Add(1)
	return reserveOK
}

func (rs *RelayState) release(k relayKey, s *relaySession) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.active[k] == s {
		delete(rs.active, k)
		rs.wg.Done()
	}
}

func (rs *RelayState) connected(uuid, mode string) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	_, ok := rs.active[relayKey{uuid, mode}]
	return ok
}

// relaySession is one console's session to one device.
type relaySession struct {
	key relayKey

	mu    sync.Mutex
	ended bool
	// closedBy and why are set by the first end.
	closedBy, why string
	stop          func() // closes both connections; nil until the pumps run

	toDevice, toConsole atomic.Int64
}

// end records who ended the session (the first caller wins) and closes
// both sides, which ends both pumps.
func (rs *relaySession) end(by, why string) {
	rs.mu.Lock()
	if rs.ended {
		rs.mu.Unlock()
		return
	}
	rs.ended, rs.closedBy, rs.why = true, by, why
	stop := rs.stop
	rs.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// setStop installs how to close the session; when it already ended (amtd
// shutting down meanwhile) it closes at once.
func (rs *relaySession) setStop(stop func()) {
	rs.mu.Lock()
	rs.stop = stop
	ended := rs.ended
	rs.mu.Unlock()
	if ended {
		stop()
	}
}

func (rs *relaySession) closer() (by, why string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.closedBy, rs.why
}

// authorizeRedirection is GET /api/v1/authorize/redirection/{guid}: a token
// for one relay session to that device (spec/redirection.md §7.1).
func (s *Service) authorizeRedirection(w http.ResponseWriter, r *http.Request) (string, int) {
	u, err := store.NormalizeUUID(r.PathValue("guid"))
	if err != nil {
		return "relay", writeError(w, http.StatusBadRequest, "guid: "+truncate(err.Error(), 200))
	}
	obj := "device/" + u
	if _, err := s.deps.Store.Devices().Get(r.Context(), u); errors.Is(err, store.ErrNotFound) {
		return obj, writeError(w, http.StatusNotFound, "Device ID "+u+" not found")
	} else if err != nil {
		return obj, s.internal(w, "reading device "+u, err)
	}
	k, _ := r.Context().Value(keyCtx{}).(store.APIKey)
	tok, err := s.relays.tokens.issue(u, k.ID, s.now())
	if err != nil {
		return obj, writeError(w, http.StatusServiceUnavailable, err.Error()+"; each is spent by one relay session or expires after 5 minutes")
	}
	return obj, writeJSON(w, http.StatusOK, map[string]string{"token": tok})
}

// redirectStatus is GET /api/v1/devices/redirectstatus/{guid} (swagger:
// redirectStatus): which relay sessions are open to the device
// (spec/redirection.md §7.1).
func (s *Service) redirectStatus(w http.ResponseWriter, r *http.Request) (string, int) {
	u, err := store.NormalizeUUID(r.PathValue("guid"))
	if err != nil {
		return "devices", writeError(w, http.StatusBadRequest, "guid: "+truncate(err.Error(), 200))
	}
	obj := "device/" + u
	if _, err := s.deps.Store.Devices().Get(r.Context(), u); errors.Is(err, store.ErrNotFound) {
		return obj, writeError(w, http.StatusNotFound, "Device ID "+u+" not found")
	} else if err != nil {
		return obj, s.internal(w, "reading device "+u, err)
	}
	return obj, writeJSON(w, http.StatusOK, map[string]bool{
		"isKVMConnected":  s.relays.connected(u, "kvm"),
		"isSOLConnected":  s.relays.connected(u, "sol"),
		"isIDERConnected": s.relays.connected(u, "ider"),
	})
}

// isUpgrade reports whether r asks for a WebSocket.
func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(strings.TrimSpace(r.Header.Get("Upgrade")), "websocket")
}

// relayRefusal answers a relay request before the upgrade, counts and
// audits it (failures through the same rate limit as bad API keys).
func (s *Service) relayRefusal(w http.ResponseWriter, r *http.Request, actor, obj string, status int, msg string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="amtd relay"`)
	}
	writeError(w, status, msg)
	s.requests.With("relay", strconv.Itoa(status)).Inc()
	if !s.failAudit.allow(s.now()) {
		s.auditDropped.Inc()
		return
	}
	s.audit(r, store.AuditEntry{Actor: actor, Action: "relay.refuse", Object: obj,
		Result: strconv.Itoa(status) + " " + printable(truncate(msg, 200))})
}

// serveRelay is GET /relay/webrelay.ashx. Every check that can fail runs
// before the upgrade, so a console gets an HTTP status and a JSON reason
// rather than a WebSocket that closes at once.
func (s *Service) serveRelay(w http.ResponseWriter, r *http.Request) {
	anon := "api:anonymous"
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		s.relayRefusal(w, r, anon, "relay", http.StatusMethodNotAllowed, "the relay is a WebSocket upgrade: GET "+relayPath)
		return
	}
	q := r.URL.Query()
	if p := q.Get("p"); p != "2" {
		s.relayRefusal(w, r, anon, "relay", http.StatusBadRequest, "p="+printable(truncate(p, 16))+
			": amtd relays redirection only (p=2); the WS-Man interceptor (p=1) is not supported, use the /api/v1/amt routes")
		return
	}
	if v := q.Get("tls"); v != "" && v != "0" {
		s.relayRefusal(w, r, anon, "relay", http.StatusBadRequest, "tls="+printable(truncate(v, 16))+
			": the console side is already TLS (wss); amtd speaks TLS to the device itself when it binds only 16995. Send tls=0")
		return
	}
	if v := q.Get("tls1only"); v != "" && v != "0" {
		s.relayRefusal(w, r, anon, "relay", http.StatusBadRequest, "tls1only="+printable(truncate(v, 16))+" is not supported; send tls1only=0")
		return
	}
	if v := q.Get("port"); v != strconv.Itoa(redirPort) && v != strconv.Itoa(redirTLSPort) {
		s.relayRefusal(w, r, anon, "relay", http.StatusBadRequest, "port="+printable(truncate(v, 16))+
			": the relay reaches AMT redirection only, port=16994 (amtd uses 16995 when the device binds only that)")
		return
	}
	modeName := q.Get("mode")
	mode, ok := relayModes[modeName]
	if !ok {
		s.relayRefusal(w, r, anon, "relay", http.StatusBadRequest, "mode="+printable(truncate(modeName, 16))+": want kvm, sol or ider")
		return
	}
	u, err := store.NormalizeUUID(q.Get("host"))
	if err != nil {
		s.relayRefusal(w, r, anon, "relay", http.StatusBadRequest, "host: want the device GUID: "+printable(truncate(err.Error(), 120)))
		return
	}
	obj := "device/" + u
	if !isUpgrade(r) || r.Header.Get("Sec-WebSocket-Key") == "" {
		s.relayRefusal(w, r, anon, obj, http.StatusBadRequest, "the relay is a WebSocket: send Upgrade: websocket with Sec-WebSocket-Key and Version 13")
		return
	}
	offered := strings.TrimSpace(r.Header.Get("Sec-WebSocket-Protocol"))
	if offered == "" {
		s.relayRefusal(w, r, anon, obj, http.StatusUnauthorized,
			"send the token from GET /api/v1/authorize/redirection/"+u+" as the WebSocket subprotocol (Sec-WebSocket-Protocol)")
		return
	}
	if strings.Contains(offered, ",") {
		s.relayRefusal(w, r, anon, obj, http.StatusUnauthorized, "offer one subprotocol, the redirection token")
		return
	}
	claims, err := s.relays.tokens.redeem(offered, u, s.now())
	if err != nil {
		s.relayRefusal(w, r, anon, obj, http.StatusUnauthorized, err.Error())
		return
	}
	actor := "api:key:" + claims.Sub
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), relayDialTimeout)
	defer cancel()
	dev, err := s.deps.Store.Devices().Get(ctx, u)
	if errors.Is(err, store.ErrNotFound) {
		s.relayRefusal(w, r, actor, obj, http.StatusNotFound, "Device ID "+u+" not found")
		return
	} else if err != nil {
		s.log.Error("api: relay: reading a device", "device", u, "err", err)
		s.relayRefusal(w, r, actor, obj, http.StatusInternalServerError, "reading device "+u+" failed; see amtd's log")
		return
	}
	if s.opts.Devices == nil {
		s.relayRefusal(w, r, actor, obj, http.StatusNotFound, notConnected+": [CIRA] is off in amtd.conf, so amtd reaches no device")
		return
	}
	sess := &relaySession{key: relayKey{u, modeName}}
	switch s.relays.reserve(sess.key, sess) {
	case reserveShuttingDown:
		s.relayRefusal(w, r, actor, obj, http.StatusServiceUnavailable, "amtd is shutting down")
		return
	case reserveModeTaken:
		s.relayRefusal(w, r, actor, obj, http.StatusConflict, "a "+modeName+" session to device "+u+
			" is already open through amtd (one per mode per device; see GET /api/v1/devices/redirectstatus/"+u+")")
		return
	case reserveDeviceFull:
		s.relayRefusal(w, r, actor, obj, http.StatusConflict, fmt.Sprintf("%d redirection sessions to device %s are open through amtd; "+
			"AMT serves about 3 channels at a time and amtd keeps one for management (power, WS-Man): close a session first "+
			"(see GET /api/v1/devices/redirectstatus/%s)", maxRelaysPerDevice, u, u))
		return
	}
	reserved := true
	defer func() {
		if reserved {
			s.relays.release(sess.key, sess)
		}
	}()
	pw, err := s.deps.Store.Secrets().Current(ctx, u, store.AMTAdmin)
	if errors.Is(err, store.ErrNotFound) {
		s.relayRefusal(w, r, actor, obj, http.StatusConflict, "amtd holds no AMT admin password for device "+u+
			"; it manages the devices it activated (amtd devices show UUID says how this one got here)")
		return
	} else if err != nil {
		s.log.Error("api: relay: reading the AMT password", "device", u, "err", err)
		s.relayRefusal(w, r, actor, obj, http.StatusInternalServerError, "reading the device's AMT password failed; see amtd's log")
		return
	}
	x := newInterceptor(mode, pw)
	defer x.wipe()
	conn, port, err := s.dialRedirection(ctx, u, dev.CIRA.BoundPorts)
	if err != nil {
		st, msg := http.StatusBadGateway, "opening AMT redirection on device "+u+" failed: "+truncate(err.Error(), 300)
		if errors.Is(err, cira.ErrNotConnected) {
			st, msg = http.StatusNotFound, notConnected+": device "+u+" has no CIRA link to this amtd"
		}
		s.relayRefusal(w, r, actor, obj, st, msg)
		return
	}
	// From here the session is the WebSocket's: it releases the slot.
	reserved = false
	hw := &hijackRecorder{ResponseWriter: w}
	srv := websocket.Server{
		Handshake: func(c *websocket.Config, _ *http.Request) error {
			c.Protocol = []string{offered} // RFC 6455 §4.2.2: echo the one selected
			return nil
		},
		Handler: func(ws *websocket.Conn) {
			hw.served = true
			s.runRelay(r, actor, obj, ws, hw.conn, conn, port, x, sess)
		},
	}
	s.requests.With("relay", "101").Inc()
	srv.ServeHTTP(hw, r)
	if hw.conn == nil || !hw.served {
		// The handshake failed after the checks above (a malformed key):
		// x/net/websocket answered it.
		conn.Close()
		s.relays.release(sess.key, sess)
	}
}

// hijackRecorder keeps the raw connection x/net/websocket hijacks, so the
// relay can clear the deadlines net/http left on it and close it without a
// second close frame.
type hijackRecorder struct {
	http.ResponseWriter
	conn   net.Conn
	served bool
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	h.conn = c
	return c, rw, err
}

// DevicePorts gives the ports a device's live CIRA link forwards: the CIRA
// service's BoundPorts. The relay asks for it on the DeviceDialer it is
// given, so the daemon's wiring is unchanged; false when the device has no
// link.
type DevicePorts interface {
	BoundPorts(uuid string) ([]uint16, bool)
}

// dialRedirection opens a channel to the device's redirection port: 16994
// when the device forwards it, else 16995 with amtd as the TLS client inside
// the channel (CSME 16.1+ forwards only TLS ports; spec/redirection.md §1,
// spec/apf.md §4 step 6). The bound ports come from the live link when the
// DeviceDialer can tell (DevicePorts), else from the device row (stored),
// which the CIRA service writes every few seconds and so lags a link that
// just came up; with none known amtd tries 16994.
func (s *Service) dialRedirection(ctx context.Context, uuid string, stored []uint16) (net.Conn, uint16, error) {
	bound := stored
	if dp, ok := s.opts.Devices.(DevicePorts); ok {
		if live, ok := dp.BoundPorts(uuid); ok {
			bound = live
		}
	}
	port := uint16(redirPort)
	if !slices.Contains(bound, redirPort) && slices.Contains(bound, redirTLSPort) {
		port = redirTLSPort
	}
	c, err := s.opts.Devices.Dial(ctx, uuid, port)
	if err != nil {
		return nil, port, err
	}
	if port == redirTLSPort {
		// The channel runs inside the device's authenticated CIRA link,
		// which already tells amtd who is at the other end (as for WS-Man
		// on 16992 over CIRA); this TLS is what the firmware requires on
		// 16995, not a second identity check. AMT's certificate there is
		// self-signed or from the profile, so it is not verified.
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // see above
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, port, fmt.Errorf("TLS to AMT on 16995 inside the CIRA channel: %w", err)
		}
		c = tc
	}
	return c, port, nil
}

// WebSocket close codes the relay sends (RFC 6455 §7.4).
const (
	wsCloseNormal   = 1000
	wsCloseProtocol = 1002
	wsClosePolicy   = 1008
	wsCloseGoingOff = 1001
)

// runRelay pumps one session until either side closes.
func (s *Service) runRelay(r *http.Request, actor, obj string, ws *websocket.Conn, raw, dev net.Conn, port uint16, x *interceptor, sess *relaySession) {
	ws.PayloadType = websocket.BinaryFrame
	// net/http leaves its read and write deadlines on a hijacked
	// connection; the handshake gets relayAuthTimeout, the session none.
	authDeadline := time.Now().Add(relayAuthTimeout)
	_ = raw.SetDeadline(authDeadline)
	_ = dev.SetDeadline(authDeadline)
	mode := sess.key.mode
	// Frames to the console: the AMT pump's data and, once, the close
	// frame with its status and reason.
	out := &wsWriter{ws: ws, code: wsCloseNormal}
	sess.setStop(func() {
		out.close()
		raw.Close()
		dev.Close()
	})
	s.relayActive.With(mode).Add(1)
	defer s.relayActive.With(mode).Add(-1)
	s.relaySessions.With(mode).Inc()
	start := s.now()
	s.log.Info("relay session started", "device", sess.key.uuid, "mode", mode, "port", port)
	s.audit(r, store.AuditEntry{Actor: actor, Action: "relay.start", Object: obj,
		Result: store.ResultOK + " mode=" + mode + " port=" + strconv.Itoa(int(port))})

	fail := func(by string, code int, err error) {
		out.setReason(code, err.Error())
		sess.end(by, err.Error())
	}
	var wg sync.WaitGroup
	wg.Add(1)
	clearOnce := sync.OnceFunc(func() {
		_ = raw.SetDeadline(time.Time{})
		_ = dev.SetDeadline(time.Time{})
	})
	// AMT → console.
	go func() {
		defer wg.Done()
		buf := make([]byte, relayBuf)
		toCon := s.relayBytes.With(mode, "to_console")
		for {
			n, err := dev.Read(buf)
			if n > 0 {
				b, xerr := x.fromAMT(buf[:n])
				if len(b) > 0 {
					if werr := out.write(b); werr != nil {
						sess.end("console", "writing to the console: "+werr.Error())
						return
					}
					sess.toConsole.Add(int64(len(b)))
					toCon.Add(float64(len(b)))
				}
				if errors.Is(xerr, errPasswordRefused) {
					s.log.Warn("api: relay: AMT refused the stored admin password", "device", sess.key.uuid)
					fail("device", wsClosePolicy, errors.New("device "+sess.key.uuid+" refused the AMT admin password amtd holds; if it was changed outside amtd, set it back in MEBx or deactivate and re-activate the device"))
					return
				}
				if xerr != nil {
					fail("amtd", wsCloseProtocol, xerr)
					return
				}
				if x.isDirect() {
					clearOnce()
				}
			}
			if err != nil {
				why := "the device closed the channel"
				if !errors.Is(err, io.EOF) {
					why = "reading from the device: " + err.Error()
				}
				fail("device", wsCloseGoingOff, errors.New(why))
				return
			}
		}
	}()
	// Console → AMT, on this goroutine.
	buf := make([]byte, relayBuf)
	toDev := s.relayBytes.With(mode, "to_device")
	for {
		n, err := ws.Read(buf)
		if n > 0 {
			b, xerr := x.fromConsole(buf[:n])
			if xerr != nil {
				fail("amtd", wsCloseProtocol, xerr)
				break
			}
			if len(b) > 0 {
				if _, werr := dev.Write(b); werr != nil {
					sess.end("device", "writing to the device: "+werr.Error())
					break
				}
				sess.toDevice.Add(int64(len(b)))
				toDev.Add(float64(len(b)))
			}
		}
		if err != nil {
			why := "the console closed the WebSocket"
			if !errors.Is(err, io.EOF) {
				why = "reading from the console: " + err.Error()
			}
			sess.end("console", why)
			break
		}
	}
	wg.Wait()
	x.wipe()
	s.relays.release(sess.key, sess)
	result := store.ResultOK
	if !x.authorized {
		result = "not authenticated"
	}
	d := s.now().Sub(start).Round(time.Millisecond)
	by, why := sess.closer()
	s.log.Info("relay session ended", "device", sess.key.uuid, "mode", mode, "closed_by", by,
		"to_device", sess.toDevice.Load(), "to_console", sess.toConsole.Load(), "duration", d)
	s.audit(r, store.AuditEntry{Actor: actor, Action: "relay.end", Object: obj,
		Result: printable(truncate(fmt.Sprintf("%s mode=%s closed_by=%s (%s) to_device=%d to_console=%d duration=%s",
			result, mode, by, why, sess.toDevice.Load(), sess.toConsole.Load(), d), 400))})
}

// wsWriter serialises the frames the relay sends the console. x/net/websocket
// sends a close frame with a status but no reason; the relay's reasons
// ("device ... refused the AMT admin password") are what a console shows,
// so the close frame is written here as a frame of its own, after which
// nothing more is sent (RFC 6455 §5.5.1).
type wsWriter struct {
	ws *websocket.Conn

	mu     sync.Mutex
	closed bool
	code   int
	reason string
}

var errWSClosed = errors.New("the relay closed the WebSocket")

func (w *wsWriter) write(b []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errWSClosed
	}
	_, err := w.ws.Write(b)
	return err
}

// setReason sets the close status and reason, once.
func (w *wsWriter) setReason(code int, reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.reason == "" {
		w.code = code
		// A control frame's payload is at most 125 bytes: 2 for the code.
		w.reason = strings.ToValidUTF8(truncate(reason, 120), "?")
	}
}

func (w *wsWriter) close() {
	// A console that stopped reading may hold the data pump in Write with
	// the lock; the deadline frees it.
	_ = w.ws.SetWriteDeadline(time.Now().Add(2 * time.Second))
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.closed = true
	payload := binary.BigEndian.AppendUint16(nil, uint16(w.code))
	w.ws.PayloadType = websocket.CloseFrame
	_, _ = w.ws.Write(append(payload, w.reason...))
}
