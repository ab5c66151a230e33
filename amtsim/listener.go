package amtsim

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"amtd/secret"
)

// Listeners are a device's LAN ports. Each device listens on its own
// address:port: many loopback addresses (127.x.y.z) with AMT's real port
// numbers, or one address with distinct ports (spec/network.md §6 for which
// ports exist per version).
type Listeners struct {
	TLS       net.Addr // 16993
	Plain     net.Addr // 16992, nil when the version has it closed
	RedirTLS  net.Addr // 16995
	Redir     net.Addr // 16994, nil when closed
	listeners []net.Listener
	wg        sync.WaitGroup
}

// ListenAddrs names where to listen; an empty entry is not opened.
type ListenAddrs struct {
	TLS, Plain, RedirTLS, Redir string
}

// LoopbackAddrs gives AMT's real ports on one address.
func LoopbackAddrs(ip string) ListenAddrs {
	return ListenAddrs{TLS: net.JoinHostPort(ip, "16993"), Plain: net.JoinHostPort(ip, "16992"),
		RedirTLS: net.JoinHostPort(ip, "16995"), Redir: net.JoinHostPort(ip, "16994")}
}

// setupOpen reports whether the remote configuration session is possible:
// pre-provisioning with remote configuration enabled.
func (d *Device) setupOpen() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.s.ControlMode == ModePreProvisioning && d.s.RemoteConfigEnabled
}

// TLSConfig is the 16993 server configuration: the version's TLS range
// (spec/network.md §6), the committed TLS certificate or the self-signed
// one, and in setup mode a request for the client's provisioning chain,
// checked by the firmware rules (spec/activation.md §3 step 3, §12). A bad
// chain fails the handshake; no chain gives an ordinary session.
func (d *Device) TLSConfig() *tls.Config {
	minV, maxV := d.Version.TLSVersions()
	return &tls.Config{
		MinVersion: minV,
		MaxVersion: maxV,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return d.listenerCertificate()
		},
		ClientAuth: tls.RequestClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !d.setupOpen() {
				return nil
			}
			chain := make([]*x509.Certificate, 0, len(raw))
			for _, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return fmt.Errorf("amtsim: client certificate: %w", err)
				}
				chain = append(chain, c)
			}
			if _, err := d.ChainCheck().Verify(chain); err != nil {
				d.log.Warn("setup session refused", "err", err)
				return err
			}
			return nil
		},
	}
}

// Listen opens the device's LAN listeners and serves them until Close.
func (d *Device) Listen(a ListenAddrs) (*Listeners, error) {
	l := &Listeners{}
	open := func(addr string) (net.Listener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("amtsim: device %s listen %s: %w", d.UUID, addr, err)
		}
		l.listeners = append(l.listeners, ln)
		return ln, nil
	}
	nonTLS := d.Version.NonTLSRemote()
	if a.TLS != "" {
		ln, err := open(a.TLS)
		if err != nil {
			return nil, err
		}
		l.TLS = ln.Addr()
		l.serve(ln, func(c net.Conn) { d.serveTLS(c, d.ServeWSMan) })
	}
	if a.Plain != "" && nonTLS {
		ln, err := open(a.Plain)
		if err != nil {
			return nil, err
		}
		l.Plain = ln.Addr()
		l.serve(ln, func(c net.Conn) { d.servePlain(c) })
	}
	if a.RedirTLS != "" {
		ln, err := open(a.RedirTLS)
		if err != nil {
			return nil, err
		}
		l.RedirTLS = ln.Addr()
		l.serve(ln, func(c net.Conn) {
			d.serveTLS(c, func(c net.Conn, _ Session) { d.ServeRedirection(c) })
		})
	}
	if a.Redir != "" && nonTLS {
		ln, err := open(a.Redir)
		if err != nil {
			return nil, err
		}
		l.Redir = ln.Addr()
		l.serve(ln, d.ServeRedirection)
	}
	return l, nil
}

func (l *Listeners) serve(ln net.Listener, handle func(net.Conn)) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				time.Sleep(10 * time.Millisecond) // EMFILE and friends: back off, keep serving
				continue
			}
			go handle(c)
		}
	}()
}

// Close stops the listeners (connections in progress end on their own or
// with a Reboot).
func (l *Listeners) Close() error {
	for _, ln := range l.listeners {
		ln.Close()
	}
	l.wg.Wait()
	return nil
}

func (d *Device) serveTLS(c net.Conn, next func(net.Conn, Session)) {
	tc := tls.Server(c, d.TLSConfig())
	_ = tc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := tc.Handshake(); err != nil {
		d.log.Debug("tls handshake", "peer", c.RemoteAddr(), "err", err)
		c.Close()
		return
	}
	_ = tc.SetDeadline(time.Time{})
	sess := Session{Setup: d.setupOpen() && len(tc.ConnectionState().PeerCertificates) > 0}
	next(tc, sess)
}

// LocalSystemUser is the local system account the host side (LMS) uses
// before activation, with the password HECI hands the OS.
const LocalSystemUser = "$$OsAdmin"

// LocalSystemAccount is what the host reads over HECI: the local system
// account and its password (rpc-go sends them in its payload,
// spec/rpc-protocol.md §5).
func (d *Device) LocalSystemAccount() (string, secret.Value) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return LocalSystemUser, secret.FromString(d.s.LSAPassword)
}

// ServeLocal serves one connection from the host side (LMS on
// 127.0.0.1:16992), where the local system account works: what rpc-go
// relays to.
func (d *Device) ServeLocal(c net.Conn) { d.ServeWSMan(c, Session{Local: true}) }

// servePlain serves 16992 while TLS is off or non-TLS connections are still
// accepted (TLS modes 2 and 4; spec/activation.md §9 step 5).
func (d *Device) servePlain(c net.Conn) {
	d.mu.Lock()
	ok := !d.s.ActiveTLS.Enabled || d.s.ActiveTLS.AcceptNonSecure
	d.mu.Unlock()
	if !ok {
		c.Close()
		return
	}
	d.ServeWSMan(c, Session{})
}
