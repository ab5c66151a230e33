package amtsim

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"amtd/amt/apf"
	"amtd/secret"
)

// CIRAOptions tune the device's CIRA client. Zero values take defaults.
type CIRAOptions struct {
	// DialAddr, when set, is dialled instead of AddMpServer's
	// AccessInfo:Port (a test MPS on loopback); the certificate is still
	// checked against AccessInfo/CN.
	DialAddr string
	// LocalAddr binds the outgoing connection (one loopback address per
	// device).
	LocalAddr string
	// Keepalive is the interval before the server sends
	// KEEPALIVE_OPTIONS_REQUEST. Dell AMT 15 defaulted to 90 s (spec/apf.md
	// §4 step 7); the default here is that.
	Keepalive time.Duration
	// BackoffMin and BackoffMax bound the reconnect delay, doubling per
	// failure. AMT "backs off for a long time" after a few tries
	// (spec/apf.md §10); the numbers are guesses.
	BackoffMin, BackoffMax time.Duration
	// Window is the receive window per channel (spec/apf.md §7.2).
	Window uint32
	// UserInitiated connects even without a periodic rule, as if the user
	// pressed the CIRA hot-key (policy trigger 0).
	UserInitiated bool
}

func (o CIRAOptions) norm() CIRAOptions {
	if o.Keepalive <= 0 {
		o.Keepalive = 90 * time.Second
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = time.Second
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = max(2*time.Minute, o.BackoffMin)
	}
	if o.Window == 0 {
		o.Window = 8192
	}
	return o
}

// ciraState is one device's CIRA client. No goroutine runs while idle
// except the reader of the open connection; keep-alives and reconnects are
// timers.
type ciraState struct {
	d   *Device
	opt CIRAOptions

	mu        sync.Mutex
	conn      net.Conn
	connected bool // authenticated and forwarding
	stopped   bool
	dialing   bool
	failures  int
	retry     *time.Timer
	retryAt   time.Time
	keepalive *time.Timer
	interval  time.Duration
	cookie    uint32
	chans     map[uint32]*channel
	nextChan  uint32
	wbuf      []byte
	ports     []uint32
}

// CIRAStats counts CIRA events, for load tests.
type CIRAStats struct {
	Connects, Failures, KeepalivesSent int64
}

// EnableCIRA attaches the CIRA client; it connects whenever the settings
// call for it (ciraReconcile).
func (d *Device) EnableCIRA(opt CIRAOptions) {
	d.mu.Lock()
	if d.cira == nil {
		d.cira = &ciraState{d: d, opt: opt.norm(), chans: map[uint32]*channel{}}
	}
	d.mu.Unlock()
	d.ciraReconcile()
}

// CIRAConnected reports whether the tunnel is up.
func (d *Device) CIRAConnected() bool {
	d.mu.Lock()
	c := d.cira
	d.mu.Unlock()
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

// StopCIRA closes the tunnel for good (shutdown).
func (d *Device) StopCIRA() {
	d.mu.Lock()
	c := d.cira
	d.mu.Unlock()
	if c == nil {
		return
	}
	c.mu.Lock()
	c.stopped = true
	conn := c.conn
	if c.retry != nil {
		c.retry.Stop()
	}
	c.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
}

// ciraTarget returns the MPS to use when the settings call for a tunnel:
// provisioned, outside the enterprise (spec/network.md §5), an MPS and a
// periodic rule (or a user-initiated one and the user asked).
func (d *Device) ciraTarget(userInit bool) (MPServer, *x509.CertPool, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.s.ControlMode == ModePreProvisioning || len(d.s.MPServers) == 0 || d.insideEnterpriseLocked() {
		return MPServer{}, nil, false
	}
	for _, r := range d.s.PolicyRules {
		if r.Trigger == 2 || (r.Trigger == 0 && userInit) {
			i := slices.IndexFunc(d.s.MPServers, func(m MPServer) bool { return m.Name == r.MpServer })
			if i >= 0 {
				return d.s.MPServers[i], d.rootPoolLocked(), true
			}
		}
	}
	return MPServer{}, nil, false
}

// rootPools shares one CertPool among devices trusting the same roots, so
// a fleet of 100,000 devices holds one pool, not 100,000.
var rootPools sync.Map // [32]byte → *x509.CertPool

func (d *Device) rootPoolLocked() *x509.CertPool {
	h := sha256.New()
	for _, c := range d.s.Certs {
		if c.TrustedRoot {
			h.Write(c.DER)
		}
	}
	var k [32]byte
	copy(k[:], h.Sum(nil))
	if p, ok := rootPools.Load(k); ok {
		return p.(*x509.CertPool)
	}
	p, _ := rootPools.LoadOrStore(k, d.trustedRootsLocked())
	return p.(*x509.CertPool)
}

// ciraReconcile connects or disconnects to match the settings.
func (d *Device) ciraReconcile() {
	d.mu.Lock()
	c := d.cira
	d.mu.Unlock()
	if c == nil {
		return
	}
	_, _, want := d.ciraTarget(c.opt.UserInitiated)
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	if !want {
		conn := c.conn
		c.mu.Unlock()
		if conn != nil {
			conn.Close()
		}
		return
	}
	start := c.conn == nil && !c.dialing && (c.retry == nil || !c.retryPending())
	if start {
		c.dialing = true
	}
	c.mu.Unlock()
	if start {
		go c.run()
	}
}

func (c *ciraState) retryPending() bool { return c.retry != nil && c.retryAt.After(time.Now()) }

// ciraRestart drops the tunnel after a reboot; it comes back by itself.
func (d *Device) ciraRestart() {
	d.mu.Lock()
	c := d.cira
	d.mu.Unlock()
	if c == nil {
		return
	}
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		conn.Close() // the reader schedules the reconnect
	} else {
		d.ciraReconcile()
	}
}

// run dials, runs the handshake and reads until the connection ends, then
// schedules the next attempt.
func (c *ciraState) run() {
	d := c.d
	mps, pool, ok := d.ciraTarget(c.opt.UserInitiated)
	if !ok {
		c.mu.Lock()
		c.dialing = false
		c.mu.Unlock()
		return
	}
	err := c.session(mps, pool)
	c.mu.Lock()
	c.dialing = false
	c.conn, c.connected = nil, false
	if c.keepalive != nil {
		c.keepalive.Stop()
	}
	for _, ch := range c.chans {
		ch.abort()
	}
	clear(c.chans)
	if err != nil {
		c.failures++
	} else {
		c.failures = 0
	}
	delay := c.opt.BackoffMin << min(c.failures, 16)
	delay = min(delay, c.opt.BackoffMax)
	j, _ := rand.Int(rand.Reader, big.NewInt(int64(delay/4)+1))
	delay += time.Duration(j.Int64())
	stopped := c.stopped
	if !stopped {
		c.retryAt = time.Now().Add(delay)
		c.retry = time.AfterFunc(delay, func() {
			c.mu.Lock()
			c.retryAt = time.Time{}
			c.mu.Unlock()
			d.ciraReconcile()
		})
	}
	c.mu.Unlock()
	if err != nil && !stopped {
		d.log.Info("cira: connection ended", "err", err, "retry_in", delay.Round(time.Millisecond).String())
	}
}

func (c *ciraState) session(mps MPServer, pool *x509.CertPool) error {
	d := c.d
	addr := c.opt.DialAddr
	if addr == "" {
		addr = net.JoinHostPort(mps.AccessInfo, strconv.Itoa(mps.Port))
	}
	// AMT checks the MPS certificate against the root added with
	// AddTrustedRootCertificate and the configured name: AccessInfo when it
	// is an FQDN, else CN (spec/apf.md §8).
	name := mps.AccessInfo
	if mps.InfoFormat != 201 {
		name = mps.CN
	}
	minV, maxV := d.Version.TLSVersions()
	dl := &net.Dialer{Timeout: 15 * time.Second}
	if c.opt.LocalAddr != "" {
		dl.LocalAddr = &net.TCPAddr{IP: net.ParseIP(c.opt.LocalAddr)}
	}
	raw, err := dl.Dial("tcp", addr)
	if err != nil {
		return fmt.Errorf("cira: dial %s: %w", addr, err)
	}
	conn := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: name, MinVersion: minV, MaxVersion: maxV})
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := conn.Handshake(); err != nil {
		raw.Close()
		return fmt.Errorf("cira: TLS to %s (%s): %w", addr, name, err)
	}
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		conn.Close()
		return nil
	}
	c.conn = conn
	c.mu.Unlock()
	tc := d.track(conn)
	defer d.untrack(tc)

	r := apf.NewReader(conn, apf.Limits{MaxData: int(c.opt.Window)})
	expect := func(want apf.MsgType) (apf.Message, error) {
		m, err := r.ReadMessage()
		if err != nil {
			return nil, err
		}
		if m.Type() != want {
			return m, fmt.Errorf("cira: got %s, want %s", m, want)
		}
		return m, nil
	}
	// Handshake, device side (spec/apf.md §4): PROTOCOLVERSION, auth,
	// pfwd, one tcpip-forward per port, each awaited as the MPS simulator
	// does.
	if err := c.send(apf.ProtocolVersion{Major: 1, Minor: 0, Trigger: apf.TriggerPeriodic, UUID: d.UUID}); err != nil {
		return err
	}
	if err := c.send(apf.ServiceRequest{Service: apf.ServiceAuth}); err != nil {
		return err
	}
	if _, err := expect(apf.TypeServiceAccept); err != nil {
		return err
	}
	if err := c.send(apf.UserauthRequest{User: mps.Username, Service: apf.ServicePortForward, Method: apf.MethodPassword,
		Password: secret.FromString(mps.Password)}); err != nil {
		return err
	}
	if _, err := expect(apf.TypeUserauthSuccess); err != nil {
		return fmt.Errorf("cira: MPS refused user %q: %w", mps.Username, err)
	}
	if err := c.send(apf.ServiceRequest{Service: apf.ServicePortForward}); err != nil {
		return err
	}
	if _, err := expect(apf.TypeServiceAccept); err != nil {
		return err
	}
	d.mu.Lock()
	host := d.s.HostName
	d.mu.Unlock()
	var bound []uint32
	for _, p := range d.Version.CIRAPorts() {
		if err := c.send(apf.TCPIPForward{WantReply: true, Address: host, Port: p}); err != nil {
			return err
		}
		m, err := r.ReadMessage()
		if err != nil {
			return err
		}
		if m.Type() == apf.TypeRequestSuccess {
			bound = append(bound, p)
		}
	}
	_ = conn.SetDeadline(time.Time{})
	c.mu.Lock()
	c.connected, c.ports, c.interval = true, bound, c.opt.Keepalive
	c.armKeepaliveLocked()
	c.mu.Unlock()
	d.log.Debug("cira: connected", "ports", bound)
	for {
		m, err := r.ReadMessage()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if err := c.handle(m); err != nil {
			return err
		}
	}
}

// send marshals and writes one message; writes are serialised.
func (c *ciraState) send(m apf.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sendLocked(m)
}

func (c *ciraState) sendLocked(m apf.Message) error {
	if c.conn == nil {
		return net.ErrClosed
	}
	b, err := m.AppendBinary(c.wbuf[:0])
	if err != nil {
		return err
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err = c.conn.Write(b)
	if cap(b) <= 256 {
		c.wbuf = b // keep only a small scratch buffer between writes
	}
	return err
}

func (c *ciraState) armKeepaliveLocked() {
	if c.keepalive != nil {
		c.keepalive.Stop()
	}
	if c.interval <= 0 {
		return
	}
	c.keepalive = time.AfterFunc(c.interval, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.connected {
			return
		}
		c.cookie++
		if err := c.sendLocked(apf.KeepaliveRequest{Cookie: c.cookie}); err != nil {
			c.conn.Close()
			return
		}
		c.armKeepaliveLocked()
	})
}

func (c *ciraState) handle(m apf.Message) error {
	switch m := m.(type) {
	case apf.KeepaliveOptionsRequest:
		// AMT takes the server's interval (spec/apf.md §4 step 7).
		c.mu.Lock()
		c.interval = time.Duration(m.Interval) * time.Second
		c.armKeepaliveLocked()
		err := c.sendLocked(apf.KeepaliveOptionsReply(m))
		c.mu.Unlock()
		return err
	case apf.KeepaliveRequest:
		return c.send(apf.KeepaliveReply(m))
	case apf.KeepaliveReply:
		return nil
	case apf.ChannelOpen:
		return c.open(m)
	case apf.ChannelData:
		return c.data(m)
	case apf.ChannelWindowAdjust:
		c.mu.Lock()
		ch := c.chans[m.RecipientChannel]
		c.mu.Unlock()
		if ch != nil {
			ch.credit(m.BytesToAdd)
		}
		return nil
	case apf.ChannelClose:
		c.mu.Lock()
		ch := c.chans[m.RecipientChannel]
		delete(c.chans, m.RecipientChannel)
		c.mu.Unlock()
		if ch != nil {
			ch.remoteClosed()
		}
		return nil
	case apf.Disconnect:
		return fmt.Errorf("cira: MPS disconnected: %s", m.Reason)
	case apf.GlobalRequest, apf.RequestSuccess, apf.RequestFailure:
		return nil
	}
	return nil
}

// maxChannels bounds a device's open channels; AMT answers resource
// shortage beyond a few (spec/apf.md §7.6; GWM caps at 6).
const maxChannels = 6

func (c *ciraState) open(m apf.ChannelOpen) error {
	d := c.d
	c.mu.Lock()
	bound := slices.Contains(c.ports, m.ConnectedPort)
	full := len(c.chans) >= maxChannels
	var ch *channel
	if bound && !full && m.ChannelType == apf.ChannelForwardedTCPIP {
		c.nextChan++
		ch = newChannel(c, c.nextChan, m.SenderChannel, m.InitialWindow)
		c.chans[ch.id] = ch
	}
	c.mu.Unlock()
	switch {
	case m.ChannelType != apf.ChannelForwardedTCPIP:
		return c.send(apf.ChannelOpenFailure{RecipientChannel: m.SenderChannel, Reason: apf.OpenUnknownChannelType})
	case !bound:
		return c.send(apf.ChannelOpenFailure{RecipientChannel: m.SenderChannel, Reason: apf.OpenConnectFailed})
	case full:
		return c.send(apf.ChannelOpenFailure{RecipientChannel: m.SenderChannel, Reason: apf.OpenResourceShortage})
	}
	if err := c.send(apf.ChannelOpenConfirmation{RecipientChannel: m.SenderChannel, SenderChannel: ch.id, InitialWindow: c.opt.Window,
		Reserved: apf.ChannelOpenReserved}); err != nil {
		return err
	}
	switch m.ConnectedPort {
	case 16992:
		go d.ServeWSMan(ch, Session{})
	case 16993:
		go d.serveTLS(ch, d.ServeWSMan)
	case 16994:
		go d.ServeRedirection(ch)
	case 16995:
		go d.serveTLS(ch, func(c net.Conn, _ Session) { d.ServeRedirection(c) })
	default: // 623, 664, 5900: accepted, nothing answers (not simulated)
		go func() { _, _ = io.Copy(io.Discard, ch); ch.Close() }()
	}
	return nil
}

func (c *ciraState) data(m apf.ChannelData) error {
	c.mu.Lock()
	ch := c.chans[m.RecipientChannel]
	c.mu.Unlock()
	if ch == nil {
		return nil // a channel we already closed; the peer's data is late
	}
	if !ch.deliver(m.Data) {
		return fmt.Errorf("cira: MPS overran channel %d's window of %d bytes", ch.id, c.opt.Window)
	}
	return nil
}

// errDeadline is a channel read or write past its deadline.
var errDeadline = os.ErrDeadlineExceeded
