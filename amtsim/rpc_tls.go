package amtsim

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"time"

	"amtd/amt/rps"
)

// TLSEnforced reports whether the firmware enforces TLS on its local ports:
// HECI IsChangeToAMTEnabled bit 0x40, set from CSME 19 (spec/activation.md
// §8, spec/network.md §6). rpc-go then sends tlsEnforced and talks to LMS's
// 16993 only.
func (d *Device) TLSEnforced() bool { return d.Version.Major >= 19 }

// ServeLocalTLS serves one connection to the host-side TLS port (LMS on
// 127.0.0.1:16993) of an AMT 19+ device. Before provisioning the device
// presents its On-Die CA chain from o (spec/network.md §7); once activated,
// the certificate amtd committed, else its self-signed one (what CSME 19
// presents after the transition is unverified: RPS accepts a self-signed
// certificate then). The session is the host side, where the local system
// account works.
func (d *Device) ServeLocalTLS(c net.Conn, o *ODCA) {
	minV, maxV := d.Version.TLSVersions()
	cfg := &tls.Config{MinVersion: minV, MaxVersion: maxV,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if d.ControlMode() == ModePreProvisioning {
				return o.Chain(d)
			}
			return d.listenerCertificate()
		}}
	tc := tls.Server(c, cfg)
	_ = tc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := tc.Handshake(); err != nil {
		d.log.Debug("local tls handshake", "err", err)
		c.Close()
		return
	}
	_ = tc.SetDeadline(time.Time{})
	d.ServeWSMan(tc, Session{Local: true})
}

// lmsTunnel is rpc-go's relay in TLS-tunnel mode (internal/rps/executor.go,
// internal/lm/service.go): one LMS connection kept across tls_data messages,
// closed and reopened when a message starts with a ClientHello; each message
// is written to LMS, then AMT's bytes are read until the line is quiet for
// idle or AMT closes, and sent back as one tls_data. Nothing read (a quiet
// round) sends nothing; AMT closing with nothing to send, or a failed write
// or read, sends connection_reset.
type lmsTunnel struct {
	d         *Device
	odca      *ODCA
	firstByte time.Duration
	idle      time.Duration
	conn      net.Conn
}

// rpc-go's LMS timeouts in TLS-tunnel mode: 2 s for the first byte and
// between bytes (lm.tlsFirstByteTimeout).
const rpcTLSFirstByte = 2 * time.Second

func (t *lmsTunnel) close() {
	if t.conn != nil {
		t.conn.Close()
		t.conn = nil
	}
}

// relay handles one tls_data payload and returns what rpc-go sends back:
// the method (tls_data or connection_reset) and its payload, or "" for a
// quiet round.
func (t *lmsTunnel) relay(payload []byte) (string, []byte) {
	if rps.IsClientHello(payload) {
		t.close() // executor.go: a new handshake gets a fresh LMS connection
	}
	if t.conn == nil {
		a, b := net.Pipe()
		go t.d.ServeLocalTLS(b, t.odca)
		t.conn = a
	}
	c := t.conn
	// A socket write returns once the kernel has the bytes; a pipe's only
	// when the far end reads them, so write aside and report a failure as
	// the reset a real socket would give on the next read.
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		werr <- err
	}()
	var buf []byte
	tmp := make([]byte, 16<<10)
	wait := t.firstByte
	for {
		_ = c.SetReadDeadline(time.Now().Add(wait))
		n, err := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err == nil {
			wait = t.idle
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if len(buf) == 0 {
				select {
				case err := <-werr:
					if err != nil {
						c.Close()
						return rps.MethodConnectionReset, []byte(rps.ResetConnectionClosed)
					}
				default:
				}
				return "", nil // quiet round
			}
			return rps.MethodTLSData, buf
		}
		// AMT closed the connection (or the pipe broke). rpc-go keeps the
		// dead handle until the next ClientHello: a write before then
		// fails and is reported as a reset.
		c.Close()
		if len(buf) > 0 {
			return rps.MethodTLSData, buf
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) {
			return rps.MethodConnectionReset, []byte(rps.ResetConnectionClosed)
		}
		return rps.MethodConnectionReset, []byte(rps.ResetLMSError)
	}
}
