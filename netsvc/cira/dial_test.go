package cira

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"amtd/amt/apf"
	"amtd/amt/wsman"
	"amtd/amtsim"
	"amtd/secret"
)

// adminPass is the AMT admin password site.device sets.
const adminPass = "P@ssw0rd1"

// wsmanOver is a WS-Man client that reaches the device through Service.Dial
// to port 16992, as amtd's console and maintenance calls will.
func wsmanOver(s *site, uuid string) *wsman.Client {
	return wsman.NewClient(func(ctx context.Context) (net.Conn, error) { return s.svc.Dial(ctx, uuid, 16992) },
		wsman.Credentials{Host: uuid + ":16992", Username: "admin", Password: secret.FromString(adminPass)})
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// connected starts a simulated device and waits for its link.
func connected(t *testing.T, s *site, n int, opt amtsim.CIRAOptions) (*amtsim.Device, string) {
	t.Helper()
	uuid := newUUID(t, fmt.Sprintf("4c4c4544-0042-3510-8052-b4c04f4e%04d", n))
	user, pass := fmt.Sprintf("amtuserdial%05d", n), fmt.Sprintf("Dial!Pass-%04d", n)
	s.addDevice(uuid, user, pass)
	d := s.deviceOpts(uuid, "16", user, pass, opt)
	waitFor(t, "the device's link", func() bool {
		sess := s.svc.reg.get(uuid.String())
		if sess == nil || !d.CIRAConnected() {
			return false
		}
		sess.mu.Lock()
		defer sess.mu.Unlock()
		return len(sess.ports) == len(d.Version.CIRAPorts())
	})
	return d, uuid.String()
}

// TestDialWSMan: WS-Man over a channel amtd opens, with digest as the
// device's admin; a large Enumerate crosses several windows both ways.
func TestDialWSMan(t *testing.T) {
	s := newSite(t, nil)
	s.svc.window = 1024 // several windows per response
	d, uuid := connected(t, s, 1, amtsim.CIRAOptions{Window: 512})
	ctx := ctxT(t)
	c := wsmanOver(s, uuid)
	var gs wsman.Instance
	if err := c.Get(ctx, "AMT_GeneralSettings", &gs); err != nil {
		t.Fatal(err)
	}
	if got := gs.Value("DigestRealm"); got != d.Realm() {
		t.Fatalf("AMT_GeneralSettings over CIRA: DigestRealm %q, want %q", got, d.Realm())
	}
	before := s.svc.adjusts.Load()
	items, err := c.Enumerate(ctx, "CIM_SoftwareIdentity")
	if err != nil || len(items) != 11 {
		t.Fatalf("Enumerate over CIRA: %d items, %v", len(items), err)
	}
	if n := s.svc.adjusts.Load() - before; n < 3 {
		t.Fatalf("Enumerate sent %d WINDOW_ADJUSTs; the responses should cross several 1 KiB windows", n)
	}
	t.Logf("Enumerate: %d WINDOW_ADJUSTs sent", s.svc.adjusts.Load()-before)
	// Every channel was closed and freed: all slots are back.
	sess := s.svc.reg.get(uuid)
	waitFor(t, "the channels freed", func() bool {
		sess.ch.mu.Lock()
		defer sess.ch.mu.Unlock()
		return len(sess.ch.byID) == 0 && len(sess.ch.slots) == 0
	})
	if v := s.svc.chanResults.With("opened").Value(); v < 3 {
		t.Fatalf("%v channels counted as opened", v)
	}
}

// TestDialConcurrent: two WS-Man clients share the link at once; beyond
// maxOpenChannels a Dial waits for a channel to close instead of failing.
func TestDialConcurrent(t *testing.T) {
	s := newSite(t, nil)
	s.svc.window = 2048
	_, uuid := connected(t, s, 2, amtsim.CIRAOptions{Window: 1024})
	ctx := ctxT(t)

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
			c := wsmanOver(s, uuid)
			for range 3 {
				items, err := c.Enumerate(ctx, "CIM_SoftwareIdentity")
				if err == nil && len(items) != 11 {
					err = fmt.Errorf("%d items", len(items))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Hold every slot with idle channels (the device's WS-Man server waits
	// for a request on each).
	held := make([]net.Conn, maxOpenChannels)
	for i := range held {
		c, err := s.svc.Dial(ctx, uuid, 16992)
		if err != nil {
			t.Fatal(err)
		}
		held[i] = c
	}
	sess := s.svc.reg.get(uuid)
	type result struct {
		c   net.Conn
		err error
	}
	queued := make(chan result, 1)
	go func() {
		c, err := s.svc.Dial(ctx, uuid, 16992)
		queued <- result{c, err}
	}()
	waitFor(t, "the fourth Dial queued", func() bool {
		sess.ch.mu.Lock()
		defer sess.ch.mu.Unlock()
		return sess.ch.waiting == 1
	})
	select {
	case r := <-queued:
		t.Fatalf("a fourth channel while three are open: %v, %v", r.c, r.err)
	default:
	}
	held[0].Close()
	r := <-queued
	if r.err != nil {
		t.Fatalf("queued Dial: %v", r.err)
	}
	// The queued channel works: one WS-Man round trip by hand.
	req := "POST /wsman HTTP/1.1\r\nHost: " + uuid + ":16992\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	if _, err := r.c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	_ = r.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(r.c)
	if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 401") {
		t.Fatalf("unauthenticated request over the queued channel: %q, %v", b, err)
	}
	r.c.Close()
	for _, c := range held[1:] {
		c.Close()
	}

	// A cancelled wait gives up with the context's error.
	for range maxOpenChannels {
		c, err := s.svc.Dial(ctx, uuid, 16992)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.svc.Dial(cctx, uuid, 16992); !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial with a cancelled context and no free slot: %v", err)
	}
}

// TestDialLinkDrop: when the device's link closes, reads and writes on its
// open channels fail at once and queued Dials give up.
func TestDialLinkDrop(t *testing.T) {
	s := newSite(t, nil)
	_, uuid := connected(t, s, 3, amtsim.CIRAOptions{})
	ctx := ctxT(t)
	var open []net.Conn
	for range maxOpenChannels {
		c, err := s.svc.Dial(ctx, uuid, 16994) // redirection: waits for the client
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		open = append(open, c)
	}
	sess := s.svc.reg.get(uuid)
	readErr := make(chan error, 1)
	go func() {
		_, err := open[0].Read(make([]byte, 16))
		readErr <- err
	}()
	dialErr := make(chan error, 1)
	go func() {
		_, err := s.svc.Dial(ctx, uuid, 16992)
		dialErr <- err
	}()
	waitFor(t, "the queued Dial", func() bool {
		sess.ch.mu.Lock()
		defer sess.ch.mu.Unlock()
		return sess.ch.waiting == 1
	})
	sess.conn.Close()
	if err := <-readErr; !errors.Is(err, errLinkClosed) {
		t.Fatalf("read on a channel of a dropped link: %v", err)
	}
	if err := <-dialErr; !errors.Is(err, errLinkClosed) {
		t.Fatalf("queued Dial on a dropped link: %v", err)
	}
	if _, err := open[1].Write([]byte("x")); !errors.Is(err, errLinkClosed) {
		t.Fatalf("write on a channel of a dropped link: %v", err)
	}
}

// TestDialNotConnected: a device without a link, or a port it did not
// forward, is a clear error, and nothing is sent.
func TestDialNotConnected(t *testing.T) {
	s := newSite(t, nil)
	ctx := ctxT(t)
	const absent = "4c4c4544-0042-3510-8052-b4c04f4e9999"
	_, err := s.svc.Dial(ctx, absent, 16992)
	if !errors.Is(err, ErrNotConnected) || !strings.Contains(err.Error(), absent) {
		t.Fatalf("Dial to a device without a link: %v", err)
	}
	if _, err := s.svc.Dial(ctx, "not-a-uuid", 16992); err == nil || !strings.Contains(err.Error(), "not-a-uuid") {
		t.Fatalf("Dial with a malformed UUID: %v", err)
	}
	_, uuid := connected(t, s, 4, amtsim.CIRAOptions{})
	// The UUID as a person types it: upper case.
	c, err := s.svc.Dial(ctx, strings.ToUpper(uuid), 16992)
	if err != nil {
		t.Fatalf("Dial with an upper-case UUID: %v", err)
	}
	c.Close()
	if _, err := s.svc.Dial(ctx, uuid, 8080); err == nil || !strings.Contains(err.Error(), "did not forward") {
		t.Fatalf("Dial to a port the device did not forward: %v", err)
	}
}

// next reads the device's next message, skipping the keep-alive options
// the service sends on its own.
func next(t *testing.T, c *client) apf.Message {
	t.Helper()
	for {
		m, err := c.read()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m.(apf.KeepaliveOptionsRequest); !ok {
			return m
		}
	}
}

// TestDialRefused: a device that answers CHANNEL_OPEN_FAILURE gives
// ErrChannelRefused with the reason; busy answers are retried; a stray
// confirmation or close for another id changes nothing.
func TestDialRefused(t *testing.T) {
	dir := newFakeDir()
	const uuid = "4c4c4544-0042-3510-8052-b4c04f4e0005"
	dir.add(uuid, "amtuserrefused05", "Refused!Pass-05")
	s := newPipeService(t, testConfig(), dir)
	c := s.dial(t)
	defer c.conn.Close()
	c.login(uuid, "amtuserrefused05", "Refused!Pass-05")
	c.forward(16992)
	ctx := ctxT(t)

	dialErr := make(chan error, 1)
	go func() {
		_, err := s.Dial(ctx, uuid, 16992)
		dialErr <- err
	}()
	var open apf.ChannelOpen
	for {
		m, err := c.read()
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := m.(apf.ChannelOpen); ok {
			open = o
			break
		}
	}
	if open.ChannelType != apf.ChannelForwardedTCPIP || open.ConnectedPort != 16992 || open.Reserved != apf.ChannelOpenReserved {
		t.Fatalf("CHANNEL_OPEN %+v", open)
	}
	c.mustSend(apf.ChannelOpenFailure{RecipientChannel: open.SenderChannel, Reason: apf.OpenAdministrativelyProhibited})
	err := <-dialErr
	if !errors.Is(err, ErrChannelRefused) || !strings.Contains(err.Error(), uuid) {
		t.Fatalf("refused open: %v", err)
	}

	// Resource shortage is retried with a new id; the second try works.
	type result struct {
		c   net.Conn
		err error
	}
	got := make(chan result, 1)
	go func() {
		ch, err := s.Dial(ctx, uuid, 16992)
		got <- result{ch, err}
	}()
	ids := map[uint32]bool{open.SenderChannel: true}
	var last apf.ChannelOpen
	for i := range 2 {
		for {
			m, err := c.read()
			if err != nil {
				t.Fatal(err)
			}
			if o, ok := m.(apf.ChannelOpen); ok {
				last = o
				break
			}
		}
		if ids[last.SenderChannel] {
			t.Fatalf("channel id %d reused", last.SenderChannel)
		}
		ids[last.SenderChannel] = true
		if i == 0 {
			c.mustSend(apf.ChannelOpenFailure{RecipientChannel: last.SenderChannel, Reason: apf.OpenResourceShortage})
		}
	}
	c.mustSend(apf.ChannelClose{RecipientChannel: 999}, // stray: dropped
		apf.ChannelOpenConfirmation{RecipientChannel: last.SenderChannel, SenderChannel: 77, InitialWindow: 100, Reserved: apf.ChannelOpenReserved},
		apf.ChannelData{RecipientChannel: last.SenderChannel, Data: []byte("hello")})
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	b := make([]byte, 5)
	if _, err := io.ReadFull(r.c, b); err != nil || string(b) != "hello" {
		t.Fatalf("read %q, %v", b, err)
	}
	// A write larger than the device's credits stops at them until a
	// WINDOW_ADJUST.
	wrote := make(chan error, 1)
	go func() {
		_, err := r.c.Write(make([]byte, 150))
		wrote <- err
	}()
	m := next(t, c)
	if d, ok := m.(apf.ChannelData); !ok || d.RecipientChannel != 77 || len(d.Data) != 100 {
		t.Fatalf("first data: %v", m)
	}
	c.mustSend(apf.ChannelWindowAdjust{RecipientChannel: last.SenderChannel, BytesToAdd: 50})
	m = next(t, c)
	if d, ok := m.(apf.ChannelData); !ok || len(d.Data) != 50 {
		t.Fatalf("data after the adjust: %v", m)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	// The device closes: amtd answers once, then reads end with EOF.
	c.mustSend(apf.ChannelClose{RecipientChannel: last.SenderChannel})
	if m := next(t, c); m.String() != (apf.ChannelClose{RecipientChannel: 77}).String() {
		t.Fatalf("answer to the device's close: %v", m)
	}
	if _, err := r.c.Read(b); err != io.EOF {
		t.Fatalf("read after the device's close: %v", err)
	}
	if err := r.c.Close(); err != nil {
		t.Fatal(err)
	}
	if v := s.chanResults.With("refused").Value(); v != 1 {
		t.Fatalf("refused opens counted %v, want 1", v)
	}
}

// TestDialOverrun: a device that sends more than the window is dropped
// with DISCONNECT(protocol error).
func TestDialOverrun(t *testing.T) {
	dir := newFakeDir()
	const uuid = "4c4c4544-0042-3510-8052-b4c04f4e0006"
	dir.add(uuid, "amtuseroverrun06", "Overrun!Pass-06")
	s := newPipeService(t, testConfig(), dir)
	s.window = 64
	c := s.dial(t)
	defer c.conn.Close()
	c.login(uuid, "amtuseroverrun06", "Overrun!Pass-06")
	c.forward(16992)
	ctx := ctxT(t)
	got := make(chan net.Conn, 1)
	go func() {
		ch, _ := s.Dial(ctx, uuid, 16992)
		got <- ch
	}()
	var open apf.ChannelOpen
	for {
		m, err := c.read()
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := m.(apf.ChannelOpen); ok {
			open = o
			break
		}
	}
	if open.InitialWindow != 64 {
		t.Fatalf("window %d", open.InitialWindow)
	}
	c.mustSend(apf.ChannelOpenConfirmation{RecipientChannel: open.SenderChannel, SenderChannel: 9, InitialWindow: 100, Reserved: apf.ChannelOpenReserved})
	ch := <-got
	if ch == nil {
		t.Fatal("no channel")
	}
	defer ch.Close()
	c.mustSend(apf.ChannelData{RecipientChannel: open.SenderChannel, Data: make([]byte, 40)},
		apf.ChannelData{RecipientChannel: open.SenderChannel, Data: make([]byte, 40)})
	ms := c.expectEnd()
	if len(ms) == 0 || ms[len(ms)-1].String() != (apf.Disconnect{Reason: apf.DisconnectProtocolError}).String() {
		t.Fatalf("after an overrun: %v", ms)
	}
	if _, err := io.ReadAll(ch); !errors.Is(err, errLinkClosed) {
		t.Fatalf("channel after the overrun: %v", err)
	}
}
