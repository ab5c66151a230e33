package ciraload

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"amtd/amt/apf"
	"amtd/amt/guid"
	"amtd/secret"
)

// The client role: one process plays COUNT devices, FIRST onwards, each a
// goroutine that logs in over TLS, forwards AMT's ports, answers the
// keep-alive options and then sends a KEEPALIVE_REQUEST every interval, as
// AMT does (spec/apf.md §4). A device that loses its link or fails to log
// in reconnects after a backoff with full jitter (reconnectBackoff). The
// process prints one "stat" line a second; it ends when stdin closes.

// devicePorts is AMT's forward order (spec/apf.md §4 step 6).
var devicePorts = []uint32{16993, 16992, 664, 623, 16995, 16994, 5900}

// Reconnect policy of the simulated devices: after a failure or a drop, wait
// a uniformly random time in [0, min(backoffCap, backoffBase·2^k)), k the
// failures since the last login. AMT's own schedule is not documented
// beyond "a few retries, then a long wait" (spec/apf.md §10); this one is
// the usual full-jitter exponential backoff, so the storm figure measures
// the server, not a synchronised herd.
const (
	backoffBase = time.Second
	backoffCap  = 16 * time.Second
	loginLimit  = 90 * time.Second // a whole login attempt, server's queue included
)

func reconnectBackoff(k int) time.Duration {
	d := min(backoffCap, backoffBase<<min(k, 10))
	return rand.N(d)
}

type clientStats struct {
	up       atomic.Int64 // links authenticated now
	logins   atomic.Int64 // USERAUTH_SUCCESS seen, in all
	fails    atomic.Int64 // attempts that ended before USERAUTH_SUCCESS
	drops    atomic.Int64 // authenticated links that ended
	kaReply  atomic.Int64 // KEEPALIVE_REPLY received
	kaOption atomic.Int64 // KEEPALIVE_OPTIONS_REQUEST received
}

func (s *clientStats) line() string {
	return fmt.Sprintf("stat up=%d logins=%d fails=%d drops=%d kareply=%d kaoption=%d", s.up.Load(), s.logins.Load(),
		s.fails.Load(), s.drops.Load(), s.kaReply.Load(), s.kaOption.Load())
}

// deviceUUID is device i's UUID; the server's store holds the same.
func deviceUUID(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }

// deviceSource gives device i its own loopback address, as a fleet has one
// address per device: the listener limits unauthenticated connections per
// source (16), which would otherwise throttle the whole fleet.
func deviceSource(i int) net.IP {
	return net.IPv4(127, byte(1+i/62500), byte(i/250%250), byte(1+i%250))
}

func runClient() int {
	env := func(k string) string { return os.Getenv(k) }
	first, err1 := strconv.Atoi(env("CIRALOAD_FIRST"))
	count, err2 := strconv.Atoi(env("CIRALOAD_COUNT"))
	spread, err3 := time.ParseDuration(env("CIRALOAD_SPREAD"))
	if err := errors.Join(err1, err2, err3); err != nil {
		fmt.Fprintln(os.Stderr, "ciraload client:", err)
		return 2
	}
	pem, err := os.ReadFile(env("CIRALOAD_CA"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "ciraload client:", err)
		return 2
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		fmt.Fprintln(os.Stderr, "ciraload client: no certificate in", env("CIRALOAD_CA"))
		return 2
	}
	tc := &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
	if env("CIRALOAD_TLS12") != "" {
		// As AMT: TLS 1.2, ECDHE on P-256 (a hello a tenth the size of Go's
		// TLS 1.3 one with its X25519MLKEM768 key share).
		tc.MaxVersion, tc.CurvePreferences = tls.VersionTLS12, []tls.CurveID{tls.CurveP256}
	}
	cl := &loadClient{addr: env("CIRALOAD_ADDR"), user: env("CIRALOAD_USER"), pass: env("CIRALOAD_PASSWORD"),
		tls: tc, stop: make(chan struct{})}
	var wg sync.WaitGroup
	for i := first; i < first+count; i++ {
		wg.Go(func() { cl.device(i, spread) })
	}
	done := make(chan struct{})
	go func() {
		// Stdin closing (the parent ended or went away) stops the devices.
		_, _ = bufio.NewReader(os.Stdin).ReadString(0)
		close(cl.stop)
		cl.mu.Lock()
		for c := range cl.conns {
			c.Close()
		}
		cl.mu.Unlock()
		wg.Wait()
		close(done)
	}()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			fmt.Println(cl.stats.line())
			return 0
		case <-t.C:
			fmt.Println(cl.stats.line())
		}
	}
}

type loadClient struct {
	addr, user, pass string
	tls              *tls.Config
	stats            clientStats
	stop             chan struct{}

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (cl *loadClient) stopped() bool {
	select {
	case <-cl.stop:
		return true
	default:
		return false
	}
}

func (cl *loadClient) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-cl.stop:
		return false
	}
}

func (cl *loadClient) track(c net.Conn, on bool) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.conns == nil {
		cl.conns = map[net.Conn]struct{}{}
	}
	if on {
		if cl.stopped() {
			return false
		}
		cl.conns[c] = struct{}{}
	} else {
		delete(cl.conns, c)
	}
	return true
}

// device runs device i until the process stops: connect, hold, reconnect.
func (cl *loadClient) device(i int, spread time.Duration) {
	if spread > 0 && !cl.sleep(rand.N(spread)) {
		return
	}
	k := 0
	for !cl.stopped() {
		authed, err := cl.link(i)
		if cl.stopped() {
			return
		}
		if authed {
			k = 0
			if n := cl.stats.drops.Add(1); n <= 20 {
				fmt.Fprintf(os.Stderr, "device %d: link lost: %v\n", i, err)
			}
		} else {
			cl.stats.fails.Add(1)
		}
		if !cl.sleep(reconnectBackoff(k)) {
			return
		}
		k++
	}
}

// link is one connection of device i, to its end. It reports whether the
// device got as far as USERAUTH_SUCCESS.
func (cl *loadClient) link(i int) (bool, error) {
	d := net.Dialer{Timeout: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: deviceSource(i)}}
	raw, err := d.Dial("tcp", cl.addr)
	if err != nil {
		return false, err
	}
	if !cl.track(raw, true) {
		raw.Close()
		return false, net.ErrClosed
	}
	defer cl.track(raw, false)
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(loginLimit))
	tc := tls.Client(raw, cl.tls)
	if err := tc.Handshake(); err != nil {
		return false, err
	}
	u, err := guid.Parse(deviceUUID(i))
	if err != nil {
		return false, err
	}
	r := apf.NewReader(tc, apf.Limits{})
	var wmu sync.Mutex
	send := func(ms ...apf.Message) error {
		var b []byte
		for _, m := range ms {
			var err error
			if b, err = m.AppendBinary(b); err != nil {
				return err
			}
		}
		wmu.Lock()
		defer wmu.Unlock()
		_ = raw.SetWriteDeadline(time.Now().Add(30 * time.Second))
		_, err := tc.Write(b)
		return err
	}
	expect := func(want apf.Message) error {
		m, err := r.ReadMessage()
		if err != nil {
			return err
		}
		if m.String() != want.String() {
			return fmt.Errorf("got %s, want %s", m, want)
		}
		return nil
	}
	if err := send(apf.ProtocolVersion{Major: 1, Minor: 0, Trigger: apf.TriggerPeriodic, UUID: u},
		apf.ServiceRequest{Service: apf.ServiceAuth}); err != nil {
		return false, err
	}
	if err := expect(apf.ServiceAccept{Service: apf.ServiceAuth}); err != nil {
		return false, err
	}
	if err := send(apf.UserauthRequest{User: cl.user, Service: apf.ServicePortForward, Method: apf.MethodPassword,
		Password: secret.FromString(cl.pass)}); err != nil {
		return false, err
	}
	if err := expect(apf.UserauthSuccess{}); err != nil {
		return false, err
	}
	cl.stats.logins.Add(1)
	cl.stats.up.Add(1)
	defer cl.stats.up.Add(-1)
	_ = raw.SetReadDeadline(time.Time{})
	if err := send(apf.ServiceRequest{Service: apf.ServicePortForward}); err != nil {
		return true, err
	}
	if err := expect(apf.ServiceAccept{Service: apf.ServicePortForward}); err != nil {
		return true, err
	}
	// Keep-alives run on a timer (no goroutine while idle) once the server
	// asks for them; handle answers everything the server may send.
	var ka *time.Timer
	var cookie uint32
	defer func() {
		wmu.Lock()
		if ka != nil {
			ka.Stop()
		}
		wmu.Unlock()
	}()
	handle := func(m apf.Message) error {
		switch m := m.(type) {
		case apf.KeepaliveOptionsRequest:
			cl.stats.kaOption.Add(1)
			if err := send(apf.KeepaliveOptionsReply(m)); err != nil {
				return err
			}
			every := time.Duration(m.Interval) * time.Second
			var tick func()
			tick = func() {
				cookie++
				if send(apf.KeepaliveRequest{Cookie: cookie}) != nil {
					raw.Close()
					return
				}
				wmu.Lock()
				ka = time.AfterFunc(every, tick)
				wmu.Unlock()
			}
			wmu.Lock()
			if ka == nil {
				// A random phase, as a fleet's devices are not in step.
				ka = time.AfterFunc(rand.N(every)+time.Millisecond, tick)
			}
			wmu.Unlock()
		case apf.KeepaliveReply:
			cl.stats.kaReply.Add(1)
		case apf.ChannelOpen:
			return send(apf.ChannelOpenFailure{RecipientChannel: m.SenderChannel, Reason: apf.OpenConnectFailed})
		case apf.Disconnect:
			return fmt.Errorf("server sent %s", m)
		default:
			return fmt.Errorf("unexpected %s", m)
		}
		return nil
	}
	// Forwards one by one, each answered before the next. The server asks
	// for keep-alives once 5900 is forwarded, or after a quiet period
	// (spec/apf.md §4 step 7), which a loaded machine can hit between two
	// forwards: that request is answered in passing.
	for _, p := range devicePorts {
		if err := send(apf.TCPIPForward{WantReply: true, Address: "load.example", Port: p}); err != nil {
			return true, err
		}
		for {
			m, err := r.ReadMessage()
			if err != nil {
				return true, err
			}
			if rs, ok := m.(apf.RequestSuccess); ok {
				if rs.Port != p {
					return true, fmt.Errorf("forward %d answered with %s", p, m)
				}
				break
			}
			if err := handle(m); err != nil {
				return true, fmt.Errorf("forward %d: %w", p, err)
			}
		}
	}
	for {
		m, err := r.ReadMessage()
		if err != nil {
			return true, err
		}
		if err := handle(m); err != nil {
			return true, err
		}
	}
}
