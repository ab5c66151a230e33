package amtsim

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"amtd/amt/apf"
)

// testMPS is a minimal APF server (spec/apf.md §4) for tests and the
// benchmark: it authenticates one user/password, accepts every forward,
// asks for keep-alives, and opens channels on request.
type testMPS struct {
	ln       net.Listener
	user     string
	pass     string
	interval uint32
	root     *x509.Certificate

	mu       sync.Mutex
	devices  map[string]*mpsConn
	authed   atomic.Int64
	kaSeen   atomic.Int64
	failures atomic.Int64
}

type mpsConn struct {
	s     *testMPS
	c     net.Conn
	wmu   sync.Mutex
	ports []uint32
	mu    sync.Mutex
	chans map[uint32]*mpsChan
	next  uint32
	opens map[uint32]chan apf.Message
}

// newTestMPS serves TLS with a leaf for dnsName signed by a fresh root.
func newTestMPS(t testing.TB, dnsName, user, pass string, interval uint32) *testMPS {
	t.Helper()
	s, err := newMPSServer(dnsName, user, pass, interval)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.ln.Close() })
	return s
}

func newMPSServer(dnsName, user, pass string, interval uint32) (*testMPS, error) {
	var t testing.TB // keys are shared test keys; nothing here fails a test
	now := time.Now()
	rootT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "MPSRoot-test"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.AddDate(1, 0, 0), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootT, rootT, &key(t, 0).PublicKey, key(t, 0))
	if err != nil {
		return nil, err
	}
	root, _ := x509.ParseCertificate(rootDER)
	leafT := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: dnsName}, DNSNames: []string{dnsName},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if ip := net.ParseIP(dnsName); ip != nil {
		leafT.IPAddresses = []net.IP{ip}
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafT, root, &key(t, 1).PublicKey, key(t, 0))
	if err != nil {
		return nil, err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER, rootDER}, PrivateKey: key(t, 1)}},
		MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	s := &testMPS{ln: ln, user: user, pass: pass, interval: interval, root: root, devices: map[string]*mpsConn{}}
	go s.serve()
	return s, nil
}

func (s *testMPS) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.handle(c)
	}
}

func (m *mpsConn) send(msg apf.Message) error {
	b, err := apf.Marshal(msg)
	if err != nil {
		return err
	}
	m.wmu.Lock()
	defer m.wmu.Unlock()
	_, err = m.c.Write(b)
	return err
}

func (s *testMPS) handle(c net.Conn) {
	defer c.Close()
	m := &mpsConn{s: s, c: c, chans: map[uint32]*mpsChan{}, next: 4, opens: map[uint32]chan apf.Message{}}
	r := apf.NewReader(c, apf.Limits{})
	var uuid string
	fail := func() { s.failures.Add(1) }
	for {
		msg, err := r.ReadMessage()
		if err != nil {
			if uuid != "" {
				s.mu.Lock()
				if s.devices[uuid] == m {
					delete(s.devices, uuid)
				}
				s.mu.Unlock()
			}
			m.mu.Lock()
			for _, ch := range m.chans {
				ch.closeRemote()
			}
			m.mu.Unlock()
			return
		}
		switch v := msg.(type) {
		case apf.ProtocolVersion:
			uuid = v.UUID.String()
		case apf.ServiceRequest:
			_ = m.send(apf.ServiceAccept(v))
		case apf.UserauthRequest:
			if v.User != s.user || v.Password.RevealString() != s.pass {
				fail()
				_ = m.send(apf.UserauthFailure{Methods: "password"})
				return
			}
			_ = m.send(apf.UserauthSuccess{})
		case apf.TCPIPForward:
			m.ports = append(m.ports, v.Port)
			_ = m.send(apf.RequestSuccess{HasPort: true, Port: v.Port})
			if v.Port == 5900 {
				_ = m.send(apf.KeepaliveOptionsRequest{Interval: s.interval})
				s.mu.Lock()
				s.devices[uuid] = m
				s.mu.Unlock()
				s.authed.Add(1)
			}
		case apf.KeepaliveRequest:
			s.kaSeen.Add(1)
			_ = m.send(apf.KeepaliveReply(v))
		case apf.KeepaliveOptionsReply:
		case apf.ChannelOpenConfirmation, apf.ChannelOpenFailure:
			var id uint32
			if cf, ok := v.(apf.ChannelOpenConfirmation); ok {
				id = cf.RecipientChannel
			} else {
				id = v.(apf.ChannelOpenFailure).RecipientChannel
			}
			m.mu.Lock()
			ch := m.opens[id]
			delete(m.opens, id)
			m.mu.Unlock()
			if ch != nil {
				ch <- msg
			}
		case apf.ChannelData:
			m.mu.Lock()
			ch := m.chans[v.RecipientChannel]
			m.mu.Unlock()
			if ch != nil {
				ch.deliver(v.Data)
			}
		case apf.ChannelWindowAdjust:
			m.mu.Lock()
			ch := m.chans[v.RecipientChannel]
			m.mu.Unlock()
			if ch != nil {
				ch.credit(v.BytesToAdd)
			}
		case apf.ChannelClose:
			m.mu.Lock()
			ch := m.chans[v.RecipientChannel]
			delete(m.chans, v.RecipientChannel)
			m.mu.Unlock()
			if ch != nil {
				ch.closeRemote()
			}
		}
	}
}

// dial opens a channel to port on the device's tunnel.
func (s *testMPS) dial(uuid string, port uint32) (net.Conn, error) {
	s.mu.Lock()
	m := s.devices[uuid]
	s.mu.Unlock()
	if m == nil {
		return nil, errors.New("device not connected")
	}
	const window = 16384
	m.mu.Lock()
	m.next++
	id := m.next
	done := make(chan apf.Message, 1)
	m.opens[id] = done
	ch := &mpsChan{m: m, id: id, window: window}
	ch.cond = sync.NewCond(&ch.mu)
	m.chans[id] = ch
	m.mu.Unlock()
	if err := m.send(apf.ChannelOpen{ChannelType: apf.ChannelForwardedTCPIP, SenderChannel: id, InitialWindow: window,
		Reserved: apf.ChannelOpenReserved, ConnectedPort: port, OriginatorAddress: "1.2.3.4", OriginatorPort: 1024}); err != nil {
		return nil, err
	}
	select {
	case msg := <-done:
		cf, ok := msg.(apf.ChannelOpenConfirmation)
		if !ok {
			return nil, errors.New("channel open failed: " + msg.String())
		}
		ch.peer, ch.credits = cf.SenderChannel, cf.InitialWindow
		return ch, nil
	case <-time.After(5 * time.Second):
		return nil, errors.New("channel open timed out")
	}
}

// mpsChan is the server's end of a channel, with the flow control of
// spec/apf.md §7.2.
type mpsChan struct {
	m                 *mpsConn
	id, peer, window  uint32
	mu                sync.Mutex
	cond              *sync.Cond
	buf               []byte
	credits, consumed uint32
	closed, sentClose bool
}

func (c *mpsChan) deliver(b []byte) {
	c.mu.Lock()
	c.buf = append(c.buf, b...)
	c.cond.Broadcast()
	c.mu.Unlock()
}

func (c *mpsChan) credit(n uint32) {
	c.mu.Lock()
	c.credits += n
	c.cond.Broadcast()
	c.mu.Unlock()
}

func (c *mpsChan) closeRemote() {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
}

func (c *mpsChan) Read(p []byte) (int, error) {
	c.mu.Lock()
	for len(c.buf) == 0 && !c.closed {
		c.cond.Wait()
	}
	if len(c.buf) == 0 {
		c.mu.Unlock()
		return 0, io.EOF
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	c.consumed += uint32(n)
	var adj uint32
	if c.consumed > c.window/2 {
		adj, c.consumed = c.consumed, 0
	}
	c.mu.Unlock()
	if adj > 0 {
		_ = c.m.send(apf.ChannelWindowAdjust{RecipientChannel: c.peer, BytesToAdd: adj})
	}
	return n, nil
}

func (c *mpsChan) Write(p []byte) (int, error) {
	w := 0
	for len(p) > 0 {
		c.mu.Lock()
		for c.credits == 0 && !c.closed {
			c.cond.Wait()
		}
		if c.closed {
			c.mu.Unlock()
			return w, net.ErrClosed
		}
		n := min(len(p), 4096, int(c.credits))
		c.credits -= uint32(n)
		c.mu.Unlock()
		if err := c.m.send(apf.ChannelData{RecipientChannel: c.peer, Data: p[:n]}); err != nil {
			return w, err
		}
		w += n
		p = p[n:]
	}
	return w, nil
}

func (c *mpsChan) Close() error {
	c.mu.Lock()
	send := !c.sentClose
	c.sentClose, c.closed = true, true
	c.cond.Broadcast()
	c.mu.Unlock()
	if send {
		return c.m.send(apf.ChannelClose{RecipientChannel: c.peer})
	}
	return nil
}

func (c *mpsChan) LocalAddr() net.Addr                { return chanAddr{"mps"} }
func (c *mpsChan) RemoteAddr() net.Addr               { return chanAddr{"amt"} }
func (c *mpsChan) SetDeadline(t time.Time) error      { return nil }
func (c *mpsChan) SetReadDeadline(t time.Time) error  { return nil }
func (c *mpsChan) SetWriteDeadline(t time.Time) error { return nil }
