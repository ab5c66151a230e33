package cira

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"amtd/amt/apf"
	"amtd/metrics"
	"amtd/netsvc"
	"amtd/secret"
)

// TestHostileListener: connected devices keep working (keep-alives
// answered, a channel opened and used, no link dropped) while the listener
// is hit by thousands of half-open TLS handshakes, slow writers sending a
// byte a second, APF messages announcing oversize lengths and floods of
// failed logins; afterwards the server's goroutines and fds are back where
// they were and every kind of refusal was counted.
func TestHostileListener(t *testing.T) {
	const (
		nDevices = 4
		halfOpen = 2000 // > maxUnauthTotal: the admission gate fills
		slow     = 8
	)
	_, cert := testPKI(t)
	dir := newFakeDir()
	devs := make([]string, nDevices)
	for i := range devs {
		devs[i] = fmt.Sprintf("%08x-0506-0708-090a-0b0c0d0e0f10", 0xd0+i)
		dir.add(devs[i], "u", "p")
	}
	dir.add(devB, "u", "right")
	s, err := New(testConfig(), netsvc.Deps{Metrics: metrics.NewRegistry(), Listeners: netsvc.NewListeners(nil),
		Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s.dir, s.cert = dir, cert
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	addr := s.ln.Addr().String()
	result := func(r string) float64 { return s.results.With(r).Value() }

	// The devices, from 127.0.0.1.
	var devices []*hostileDevice
	for _, u := range devs {
		d := newHostileDevice(t, addr, u)
		devices = append(devices, d)
		t.Cleanup(d.stop)
	}
	waitFor(t, "devices connected", func() bool { return s.ConnectedDevices() == nDevices })
	// They work: keep-alives answered, a channel each.
	exercise := func(phase string) {
		t.Helper()
		for _, d := range devices {
			d.exercise(t, s, phase)
		}
		if n := s.ConnectedDevices(); n != nDevices {
			t.Fatalf("%s: %d devices connected, want %d", phase, n, nDevices)
		}
	}
	exercise("before the attack")
	runtime.GC()
	g0, fd0 := runtime.NumGoroutine(), openFDs(t)

	// Phase 1: slow writers take a few places in the admission gate, then
	// half-open handshakes from many sources fill it; oversize lengths and
	// failed logins try too.
	var attackers []net.Conn
	var amu sync.Mutex
	keep := func(c net.Conn) {
		amu.Lock()
		attackers = append(attackers, c)
		amu.Unlock()
	}
	dialFrom := func(src net.IP) (net.Conn, error) {
		d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: src}}
		return d.Dial("tcp", addr)
	}
	// The first bytes of a 200-byte ClientHello record; the rest never comes.
	partialHello := []byte{0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00}
	stopSlow := make(chan struct{})
	var slowWG sync.WaitGroup
	for i := range slow {
		c, err := dialFrom(net.IPv4(127, 3, 1, byte(1+i)))
		if err != nil {
			t.Fatal(err)
		}
		keep(c)
		slowWG.Go(func() {
			tk := time.NewTicker(time.Second)
			defer tk.Stop()
			for _, b := range append(partialHello, make([]byte, 200)...) {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				select {
				case <-tk.C:
				case <-stopSlow:
					return
				}
			}
		})
	}
	gateTotal := func() int {
		s.gate.mu.Lock()
		defer s.gate.mu.Unlock()
		return s.gate.total
	}
	waitFor(t, "the slow writers admitted", func() bool { return gateTotal() == slow })
	for i := range halfOpen {
		c, err := dialFrom(net.IPv4(127, 2, byte(i/250), byte(1+i%250)))
		if err != nil {
			t.Fatalf("half-open %d: %v", i, err)
		}
		keep(c)
		_, _ = c.Write(partialHello)
	}
	flood := func(round int) {
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				src := net.IPv4(127, 4, byte(round), byte(1+w))
				for j := range 8 {
					c, err := dialFrom(src)
					if err != nil {
						continue
					}
					hostileLogin(t, c, j)
				}
			})
		}
		wg.Wait()
	}
	waitFor(t, "the admission gate full", func() bool { return result("too_many") > 0 })
	flood(0)
	exercise("gate full")

	// Phase 2: the half-open handshakes go; floods and oversize lengths
	// reach the APF reader, many connections from one source meet the
	// per-source cap, while the slow writers keep dribbling.
	amu.Lock()
	for _, c := range attackers[slow:] {
		c.Close()
	}
	amu.Unlock()
	waitFor(t, "the gate emptied", func() bool { return gateTotal() <= slow })
	for range 2 * maxUnauthPerSource {
		c, err := dialFrom(net.IPv4(127, 5, 0, 1))
		if err != nil {
			t.Fatal(err)
		}
		keep(c)
		_, _ = c.Write(partialHello)
	}
	for round := 1; ; round++ {
		flood(round)
		if result(resultProtocolError) > 0 && result(resultBadPassword) > 0 && result(resultBackoff) > 0 &&
			result(resultUnknownUUID) > 0 && result("too_many_from_source") > 0 {
			break
		}
		if round > 50 {
			t.Fatalf("refusals not all seen after %d rounds: protocol_error %v bad_password %v backoff %v unknown_uuid %v "+
				"too_many_from_source %v", round, result(resultProtocolError), result(resultBadPassword), result(resultBackoff),
				result(resultUnknownUUID), result("too_many_from_source"))
		}
	}
	exercise("floods")

	// The attack ends: everything it made is gone, the devices are still
	// there, none was dropped.
	close(stopSlow)
	slowWG.Wait()
	amu.Lock()
	for _, c := range attackers {
		c.Close()
	}
	amu.Unlock()
	waitFor(t, "goroutines and fds back to the baseline", func() bool {
		return runtime.NumGoroutine() <= g0 && openFDs(t) <= fd0
	})
	exercise("after the attack")
	for _, why := range []string{endPeer, endIdle, endReplaced, endProtocol, endShutdown} {
		if n := s.ends.With(why).Value(); n != 0 {
			t.Errorf("%v device links ended (%s) during the attack", n, why)
		}
	}
	for _, d := range devices {
		if err := d.failed(); err != nil {
			t.Errorf("device %s: %v", d.uuid, err)
		}
	}
	if n := dir.checkCount(); n == 0 {
		t.Error("no password was checked: the floods never reached authentication")
	}
	t.Logf("refusals: too_many %v, too_many_from_source %v, tls_error %v, timeout %v, closed %v, protocol_error %v, "+
		"bad_password %v, backoff %v, unknown_uuid %v; password checks %d", result("too_many"), result("too_many_from_source"),
		result(resultTLSError), result(resultTimeout), result(resultClosed), result(resultProtocolError),
		result(resultBadPassword), result(resultBackoff), result(resultUnknownUUID), dir.checkCount())
}

// hostileLogin is one attacker's try on c, by j: an oversize APF length
// before or after the UUID, a wrong password for a known device, or an
// unknown UUID. Errors are the server refusing, as it should.
func hostileLogin(t *testing.T, raw net.Conn, j int) {
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := dialTLS(t, raw)
	if err != nil {
		return
	}
	var b []byte
	switch j % 4 {
	case 0: // SERVICE_REQUEST announcing a 2 GiB name
		b = []byte{byte(apf.TypeServiceRequest), 0x7f, 0xff, 0xff, 0xff, 'a', 'u', 't', 'h'}
	case 1: // a known UUID, then USERAUTH_REQUEST announcing a 4 GiB user
		b, _ = apf.ProtocolVersion{Major: 1, UUID: uuidOf(devB)}.AppendBinary(nil)
		b, _ = apf.ServiceRequest{Service: apf.ServiceAuth}.AppendBinary(b)
		b = append(b, byte(apf.TypeUserauthRequest), 0xff, 0xff, 0xff, 0x00, 'u')
	case 2: // a wrong password
		b, _ = apf.ProtocolVersion{Major: 1, UUID: uuidOf(devB)}.AppendBinary(nil)
		b, _ = apf.ServiceRequest{Service: apf.ServiceAuth}.AppendBinary(b)
		b, _ = apf.UserauthRequest{User: "u", Service: apf.ServicePortForward, Method: apf.MethodPassword,
			Password: secret.FromString("wrong")}.AppendBinary(b)
	case 3: // a device the site does not have
		b, _ = apf.ProtocolVersion{Major: 1, UUID: uuidOf("deadbeef-0506-0708-090a-0b0c0d0e0f10")}.AppendBinary(nil)
	}
	if _, err := c.conn.Write(b); err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, c.conn) // until the server closes
}

// hostileDevice is a connected device that answers channels by echoing and
// counts keep-alive replies.
type hostileDevice struct {
	uuid    string
	c       *client
	replies atomic.Int64
	done    chan struct{}
	stopped atomic.Bool
	err     atomic.Value // error that ended the reader early
}

func newHostileDevice(t *testing.T, addr, uuid string) *hostileDevice {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c, err := dialTLS(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	c.login(uuid, "u", "p")
	c.forward(amtPorts...)
	c.expect(apfKeepaliveOptions)
	d := &hostileDevice{uuid: uuid, c: c, done: make(chan struct{})}
	go d.read()
	return d
}

func (d *hostileDevice) read() {
	defer close(d.done)
	peers := map[uint32]uint32{} // our channel id → amtd's
	next := uint32(100)
	for {
		m, err := d.c.read()
		if err != nil {
			if !d.stopped.Load() {
				d.err.Store(fmt.Errorf("link ended: %w", err))
			}
			return
		}
		var out apf.Message
		switch m := m.(type) {
		case apf.KeepaliveReply:
			d.replies.Add(1)
		case apf.ChannelOpen:
			next++
			peers[next] = m.SenderChannel
			out = apf.ChannelOpenConfirmation{RecipientChannel: m.SenderChannel, SenderChannel: next, InitialWindow: 32768,
				Reserved: apf.ChannelOpenReserved}
		case apf.ChannelData:
			out = apf.ChannelData{RecipientChannel: peers[m.RecipientChannel], Data: m.Data}
		case apf.ChannelClose:
			if p, ok := peers[m.RecipientChannel]; ok {
				delete(peers, m.RecipientChannel)
				out = apf.ChannelClose{RecipientChannel: p}
			}
		case apf.ChannelWindowAdjust:
		default:
			d.err.Store(fmt.Errorf("unexpected %s", m))
		}
		if out != nil {
			if err := d.c.send(out); err != nil {
				d.err.Store(fmt.Errorf("send %s: %w", out.Type(), err))
				return
			}
		}
	}
}

// exercise checks the device works: three keep-alives answered and a
// channel that echoes.
func (d *hostileDevice) exercise(t *testing.T, s *Service, phase string) {
	t.Helper()
	if err := d.failed(); err != nil {
		t.Fatalf("%s: device %s: %v", phase, d.uuid, err)
	}
	want := d.replies.Load() + 3
	for i := range 3 {
		if err := d.c.send(apf.KeepaliveRequest{Cookie: uint32(i)}); err != nil {
			t.Fatalf("%s: device %s keep-alive: %v", phase, d.uuid, err)
		}
	}
	waitFor(t, phase+": keep-alives answered", func() bool { return d.replies.Load() >= want })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ch, err := s.Dial(ctx, d.uuid, 16992)
	if err != nil {
		t.Fatalf("%s: device %s: %v", phase, d.uuid, err)
	}
	defer ch.Close()
	_ = ch.SetDeadline(time.Now().Add(30 * time.Second))
	msg := []byte("ping " + phase)
	if _, err := ch.Write(msg); err != nil {
		t.Fatalf("%s: device %s channel write: %v", phase, d.uuid, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(ch, got); err != nil || string(got) != string(msg) {
		t.Fatalf("%s: device %s channel echo %q, %v", phase, d.uuid, got, err)
	}
}

func (d *hostileDevice) failed() error {
	if err, ok := d.err.Load().(error); ok {
		return err
	}
	return nil
}

func (d *hostileDevice) stop() {
	d.stopped.Store(true)
	d.c.raw.Close()
	<-d.done
}

// openFDs counts this process's open files.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
