package cira

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"amtd/amt/apf"
	"amtd/secret"
)

const (
	devA = "01020304-0506-0708-090a-0b0c0d0e0f10"
	devB = "11020304-0506-0708-090a-0b0c0d0e0f10"
)

var amtPorts = []uint32{16993, 16992, 664, 623, 16995, 16994, 5900}

// TestLinkLifecycle: a device logs in, forwards its ports, is asked for
// keep-alives, keeps the link up with them, and is dropped when it falls
// silent for IdleTimeout; the store sees each state in a batch.
func TestLinkLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := newFakeDir()
		dir.add(devA, "amtuser0123456", "Pa55word!")
		s := newPipeService(t, testConfig(), dir)
		c := s.dial(t)
		c.login(strings.ToUpper(devA), "amtuser0123456", "Pa55word!")
		c.forward(amtPorts...)
		// 5900 is the last port of AMT's order: the keep-alive request
		// follows at once, with the configured interval and idle limit.
		c.expect(apf.KeepaliveOptionsRequest{Interval: 30, Timeout: 90})
		c.mustSend(apf.KeepaliveOptionsReply{Interval: 30, Timeout: 90})
		synctest.Wait()
		if n := s.ConnectedDevices(); n != 1 {
			t.Fatalf("ConnectedDevices = %d, want 1", n)
		}
		if g := s.reg.gauge.Value(); g != 1 {
			t.Errorf("amtd_cira_connected_devices = %v, want 1", g)
		}
		if got := s.Status(); got != "1 device connected" {
			t.Errorf("Status = %q", got)
		}
		if err := s.flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		l, ok := dir.link(devA)
		if !ok || !l.Connected || len(l.BoundPorts) != len(amtPorts) || l.Owner != "amtd.corp.example.com" || l.ConnectedSince.IsZero() {
			t.Fatalf("stored link after connect: %+v", l)
		}

		// Ten minutes of keep-alives every 30 s: the link stays.
		for i := range uint32(20) {
			time.Sleep(30 * time.Second)
			c.mustSend(apf.KeepaliveRequest{Cookie: i})
			c.expect(apf.KeepaliveReply{Cookie: i})
		}
		if n := s.ConnectedDevices(); n != 1 {
			t.Fatalf("link dropped while keep-alives flowed")
		}
		if got := s.keepalives.Value(); got != 20 {
			t.Errorf("keepalives counted %v, want 20", got)
		}
		if err := s.flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		l2, _ := dir.link(devA)
		if !l2.LastSeen.After(l.LastSeen) {
			t.Errorf("last seen not advanced by keep-alives: %v then %v", l.LastSeen, l2.LastSeen)
		}

		// Silence: after IdleTimeout the server closes.
		start := time.Now()
		if _, err := c.read(); err == nil {
			t.Fatal("read a message from a server that should have closed")
		}
		if idle := time.Since(start); idle != 90*time.Second {
			t.Errorf("dropped after %v of silence, want IdleTimeout=90s", idle)
		}
		synctest.Wait()
		if n := s.ConnectedDevices(); n != 0 {
			t.Fatalf("ConnectedDevices = %d after the idle drop", n)
		}
		if g := s.reg.gauge.Value(); g != 0 {
			t.Errorf("amtd_cira_connected_devices = %v after the drop", g)
		}
		if s.ended(endIdle) != 1 {
			t.Errorf("idle disconnects = %v, want 1", s.ended(endIdle))
		}
		if err := s.flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		l3, _ := dir.link(devA)
		if l3.Connected || l3.LastDisconnected.IsZero() || len(l3.BoundPorts) != 0 {
			t.Fatalf("stored link after the drop: %+v", l3)
		}
	})
}

// TestKeepaliveAfterQuietPeriod: newer firmware forwards fewer ports and
// never 5900; the keep-alive request comes after a quiet period.
func TestKeepaliveAfterQuietPeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := newFakeDir()
		dir.add(devA, "u", "p")
		s := newPipeService(t, testConfig(), dir)
		c := s.dial(t)
		c.login(devA, "u", "p")
		c.forward(16993, 16995)
		start := time.Now()
		c.expect(apf.KeepaliveOptionsRequest{Interval: 30, Timeout: 90})
		if d := time.Since(start); d != keepaliveQuiet {
			t.Errorf("keep-alive request after %v, want %v", d, keepaliveQuiet)
		}
	})
}

// TestNewestWins: a second connection of the same UUID takes over; the
// first is told DISCONNECT and closed, and its end does not unregister the
// new link.
func TestNewestWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := newFakeDir()
		dir.add(devA, "u", "p")
		s := newPipeService(t, testConfig(), dir)
		old := s.dial(t)
		old.login(devA, "u", "p")
		old.forward(16992)
		oldEnd := make(chan []apf.Message)
		go func() { oldEnd <- old.expectEnd() }()
		c := s.dial(t)
		c.login(devA, "u", "p")
		got := <-oldEnd
		if !slices.ContainsFunc(got, func(m apf.Message) bool {
			return m.String() == apf.Disconnect{Reason: apf.DisconnectByApplication}.String()
		}) {
			t.Errorf("old connection got %v, want a DISCONNECT", got)
		}
		synctest.Wait()
		if n := s.ConnectedDevices(); n != 1 {
			t.Fatalf("ConnectedDevices = %d, want 1", n)
		}
		if s.reg.get(devA) == nil || s.ended(endReplaced) != 1 {
			t.Fatalf("new link not registered, or replacement not counted (%v)", s.ended(endReplaced))
		}
		c.forward(16993)
		if err := s.flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		if l, _ := dir.link(devA); !l.Connected || !slices.Equal(l.BoundPorts, []uint16{16993}) {
			t.Fatalf("stored link is not the new connection's: %+v", l)
		}
	})
}

// TestRefusals: what does not authenticate is refused, counted, and costs
// no password check where none is due.
func TestRefusals(t *testing.T) {
	type step func(t *testing.T, s *pipeService)
	tests := []struct {
		name   string
		run    step
		result string
	}{
		{"unknown uuid", func(t *testing.T, s *pipeService) {
			c := s.dial(t)
			c.mustSend(apf.ProtocolVersion{Major: 1, UUID: uuidOf(devB)})
			if got := c.expectEnd(); len(got) != 1 || got[0].String() != (apf.Disconnect{Reason: apf.DisconnectHostNotAllowedToConnect}).String() {
				t.Errorf("got %v", got)
			}
		}, resultUnknownUUID},
		{"wrong password", func(t *testing.T, s *pipeService) {
			c := s.dial(t)
			c.mustSend(apf.ProtocolVersion{Major: 1, UUID: uuidOf(devA)}, apf.ServiceRequest{Service: apf.ServiceAuth})
			c.expect(apf.ServiceAccept{Service: apf.ServiceAuth})
			c.mustSend(apf.UserauthRequest{User: "u", Service: apf.ServicePortForward, Method: apf.MethodPassword, Password: secret.FromString("wrong")})
			c.expect(apf.UserauthFailure{Methods: apf.MethodPassword})
			if got := c.expectEnd(); len(got) != 0 {
				t.Errorf("after failure got %v, want the connection closed", got)
			}
		}, resultBadPassword},
		{"wrong user", func(t *testing.T, s *pipeService) {
			c := s.dial(t)
			c.mustSend(apf.ProtocolVersion{Major: 1, UUID: uuidOf(devA)}, apf.ServiceRequest{Service: apf.ServiceAuth})
			c.expect(apf.ServiceAccept{Service: apf.ServiceAuth})
			c.mustSend(apf.UserauthRequest{User: "x", Service: apf.ServicePortForward, Method: apf.MethodPassword, Password: secret.FromString("p")})
			c.expect(apf.UserauthFailure{Methods: apf.MethodPassword})
			c.expectEnd()
		}, resultBadUser},
		{"method none", func(t *testing.T, s *pipeService) {
			c := s.dial(t)
			c.mustSend(apf.ProtocolVersion{Major: 1, UUID: uuidOf(devA)}, apf.ServiceRequest{Service: apf.ServiceAuth})
			c.expect(apf.ServiceAccept{Service: apf.ServiceAuth})
			c.mustSend(apf.UserauthRequest{User: "u", Service: apf.ServicePortForward, Method: apf.MethodNone})
			c.expect(apf.UserauthFailure{Methods: apf.MethodPassword})
			c.expectEnd()
		}, resultBadUser},
		{"auth before version", func(t *testing.T, s *pipeService) {
			c := s.dial(t)
			c.mustSend(apf.ServiceRequest{Service: apf.ServiceAuth})
			if got := c.expectEnd(); len(got) != 1 || got[0].String() != (apf.Disconnect{Reason: apf.DisconnectProtocolError}).String() {
				t.Errorf("got %v", got)
			}
		}, resultProtocolError},
		{"oversize string", func(t *testing.T, s *pipeService) {
			c := s.dial(t)
			c.mustSend(apf.ProtocolVersion{Major: 1, UUID: uuidOf(devA)})
			// SERVICE_REQUEST announcing a 4 GiB name: refused from the
			// length alone, nothing allocated or awaited.
			if _, err := c.conn.Write([]byte{5, 0xff, 0xff, 0xff, 0xff}); err != nil {
				t.Fatal(err)
			}
			c.expectEnd()
		}, resultProtocolError},
		{"garbage", func(t *testing.T, s *pipeService) {
			raw := s.dialRaw()
			_, _ = raw.Write([]byte("\x00\x01\x02\x03hello"))
			if n, _ := io.ReadAll(raw); len(n) != 0 {
				t.Errorf("answered garbage with %q", n)
			}
		}, resultGarbage},
		{"silent", func(t *testing.T, s *pipeService) {
			raw := s.dialRaw()
			start := time.Now()
			_, _ = io.ReadAll(raw)
			if d := time.Since(start); d != handshakeTimeout {
				t.Errorf("silent connection closed after %v, want %v", d, handshakeTimeout)
			}
		}, resultTimeout},
		{"silent after TLS", func(t *testing.T, s *pipeService) {
			start := time.Now()
			c := s.dial(t)
			c.expectEnd()
			if d := time.Since(start); d != preAuthTimeout {
				t.Errorf("connection silent after its handshake closed after %v, want %v", d, preAuthTimeout)
			}
		}, resultTimeout},
		{"http", func(t *testing.T, s *pipeService) {
			raw := s.dialRaw()
			go func() { _, _ = raw.Write([]byte("GET / HTTP/1.1\r\nHost: amtd\r\n\r\n")) }()
			b, _ := io.ReadAll(raw)
			if !strings.HasPrefix(string(b), "HTTP/1.1 200 OK\r\n") || !strings.Contains(string(b), "Intel AMT CIRA endpoint") {
				t.Errorf("HTTP answer %q", b)
			}
		}, resultHTTP},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dir := newFakeDir()
				dir.add(devA, "u", "p")
				s := newPipeService(t, testConfig(), dir)
				tc.run(t, s)
				synctest.Wait()
				if got := s.result(tc.result); got != 1 {
					t.Errorf("result %q counted %v times, want 1", tc.result, got)
				}
				if s.ConnectedDevices() != 0 || s.result(resultAuthenticated) != 0 {
					t.Error("refused connection counted as connected")
				}
				if n := len(s.conns); n != 0 {
					t.Errorf("%d connections still tracked", n)
				}
			})
		})
	}
}

// TestBackoff: after a wrong password the UUID must wait before the next
// check, and a source with many failures is refused before TLS.
func TestBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := newFakeDir()
		dir.add(devA, "u", "p")
		dir.add(devB, "u", "p")
		s := newPipeService(t, testConfig(), dir)
		attempt := func(uuid, pass string) apf.Message {
			c := s.dial(t)
			c.mustSend(apf.ProtocolVersion{Major: 1, UUID: uuidOf(uuid)}, apf.ServiceRequest{Service: apf.ServiceAuth})
			c.expect(apf.ServiceAccept{Service: apf.ServiceAuth})
			c.mustSend(apf.UserauthRequest{User: "u", Service: apf.ServicePortForward, Method: apf.MethodPassword, Password: secret.FromString(pass)})
			m, err := c.read()
			if err != nil {
				t.Fatal(err)
			}
			c.raw.Close()
			return m
		}
		if m := attempt(devA, "bad"); m.Type() != apf.TypeUserauthFailure {
			t.Fatalf("bad password: %s", m)
		}
		synctest.Wait()
		checks := dir.checkCount()
		// Right password, too soon: refused without a check.
		if m := attempt(devA, "p"); m.Type() != apf.TypeUserauthFailure {
			t.Fatalf("during backoff: %s", m)
		}
		synctest.Wait()
		if dir.checkCount() != checks || s.result(resultBackoff) != 1 {
			t.Fatalf("backoff: %d checks (want %d), %v refusals", dir.checkCount(), checks, s.result(resultBackoff))
		}
		// Another device from the same source is not held up by it.
		if m := attempt(devB, "p"); m.Type() != apf.TypeUserauthSuccess {
			t.Fatalf("other device: %s", m)
		}
		time.Sleep(backoffMin)
		if m := attempt(devA, "p"); m.Type() != apf.TypeUserauthSuccess {
			t.Fatalf("after the backoff: %s", m)
		}

		// A source that keeps failing (here with unknown UUIDs) is refused
		// before the TLS handshake once past its free failures.
		for range sourceFreeFailures + 1 {
			c := s.dial(t)
			c.mustSend(apf.ProtocolVersion{Major: 1, UUID: uuidOf("99999999-0506-0708-090a-0b0c0d0e0f10")})
			c.expectEnd()
		}
		synctest.Wait()
		if _, err := dialTLS(t, s.dialRaw()); err == nil {
			t.Fatal("TLS handshake completed for a source in backoff")
		}
		synctest.Wait()
		if s.result(resultBackoff) != 2 {
			t.Fatalf("source backoff refusals %v, want 2 in all", s.result(resultBackoff))
		}
	})
}

// TestUnauthenticatedCap: a source cannot hold more than
// maxUnauthPerSource connections that have not logged in.
func TestUnauthenticatedCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newPipeService(t, testConfig(), newFakeDir())
		for range maxUnauthPerSource {
			s.dialRaw() // silent: held until preAuthTimeout
		}
		synctest.Wait()
		extra := s.dialRaw()
		if b, _ := io.ReadAll(extra); len(b) != 0 {
			t.Fatal("answered over the cap")
		}
		if s.result("too_many_from_source") != 1 {
			t.Fatalf("too_many_from_source = %v", s.result("too_many_from_source"))
		}
		time.Sleep(preAuthTimeout)
		synctest.Wait()
		if s.result(resultTimeout) != maxUnauthPerSource {
			t.Fatalf("timeouts %v", s.result(resultTimeout))
		}
		// The slots are free again.
		c := s.dial(t)
		c.conn.Close()
	})
}

// TestRequests: unknown global requests with want_reply get
// REQUEST_FAILURE, channels opened by AMT are refused, cancel-tcpip-forward
// removes the port.
func TestRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := newFakeDir()
		dir.add(devA, "u", "p")
		s := newPipeService(t, testConfig(), dir)
		c := s.dial(t)
		c.login(devA, "u", "p")
		c.forward(16992, 16993, 5900)
		c.expect(apf.KeepaliveOptionsRequest{Interval: 30, Timeout: 90})
		c.mustSend(apf.GlobalRequest{Name: "no-such-request@example.com", WantReply: true})
		c.expect(apf.RequestFailure{})
		c.mustSend(apf.GlobalRequest{Name: "quiet@example.com", WantReply: false})
		c.mustSend(apf.UDPSendTo{WantReply: true, Address: "a", Port: 1, OriginatorAddress: "b", OriginatorPort: 2, Data: []byte("x")})
		c.expect(apf.RequestFailure{})
		c.mustSend(apf.ChannelOpen{ChannelType: apf.ChannelDirectTCPIP, SenderChannel: 7, InitialWindow: 4096, Reserved: apf.ChannelOpenReserved,
			ConnectedAddress: "x", ConnectedPort: 80, OriginatorAddress: "y", OriginatorPort: 1})
		c.expect(apf.ChannelOpenFailure{RecipientChannel: 7, Reason: apf.OpenUnknownChannelType})
		c.mustSend(apf.ChannelData{RecipientChannel: 99, Data: []byte("stray")}) // dropped
		// The bare REQUEST_SUCCESS of a cancel is told from the port-carrying
		// one by the next message's type byte, so one must follow it.
		c.mustSend(apf.CancelTCPIPForward{WantReply: true, Address: "dev", Port: 16992}, apf.KeepaliveRequest{Cookie: 5})
		c.expect(apf.RequestSuccess{})
		c.expect(apf.KeepaliveReply{Cookie: 5})
		synctest.Wait()
		if l := s.reg.get(devA); l == nil || !slices.Equal(l.stateLocked().ports, []uint16{16993, 5900}) {
			t.Fatal("cancel-tcpip-forward did not remove the port")
		}
	})
}

// TestProtocolErrorAfterAuth: a second PROTOCOLVERSION ends the link.
func TestProtocolErrorAfterAuth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := newFakeDir()
		dir.add(devA, "u", "p")
		s := newPipeService(t, testConfig(), dir)
		c := s.dial(t)
		c.login(devA, "u", "p")
		c.mustSend(apf.ProtocolVersion{Major: 1, UUID: uuidOf(devA)})
		got := c.expectEnd()
		if len(got) != 1 || got[0].Type() != apf.TypeDisconnect {
			t.Fatalf("got %v", got)
		}
		synctest.Wait()
		if s.ended(endProtocol) != 1 || s.ConnectedDevices() != 0 {
			t.Fatalf("protocol ends %v, connected %d", s.ended(endProtocol), s.ConnectedDevices())
		}
	})
}

// TestFlushRetries: link state that failed to reach the store is written
// at the next flush.
func TestFlushRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := newFakeDir()
		dir.add(devA, "u", "p")
		s := newPipeService(t, testConfig(), dir)
		c := s.dial(t)
		c.login(devA, "u", "p")
		synctest.Wait()
		dir.mu.Lock()
		dir.fail = errNoStore
		dir.mu.Unlock()
		if err := s.flush(t.Context()); err == nil {
			t.Fatal("flush hid a store error")
		}
		if s.storeErrors.Value() != 1 {
			t.Errorf("store errors %v", s.storeErrors.Value())
		}
		dir.mu.Lock()
		dir.fail = nil
		dir.mu.Unlock()
		if err := s.flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		if l, ok := dir.link(devA); !ok || !l.Connected {
			t.Fatalf("link not written after the retry: %+v", l)
		}
	})
}

func TestGateAndBackoffBounds(t *testing.T) {
	g := newGate()
	var admitted int
	for i := range maxUnauthTotal + 10 {
		src := addrN(i)
		if ok, _ := g.enter(src); ok {
			admitted++
		}
	}
	if admitted != maxUnauthTotal {
		t.Fatalf("admitted %d, want %d", admitted, maxUnauthTotal)
	}
	g.leave(addrN(0))
	if ok, _ := g.enter(addrN(99999)); !ok {
		t.Fatal("slot not freed")
	}

	now := time.Unix(0, 0)
	b := newBackoff[string](0, func() time.Time { return now })
	for i := range 3 * backoffEntries {
		b.fail(string(binary.BigEndian.AppendUint32(nil, uint32(i))))
	}
	if n := b.len(); n > backoffEntries {
		t.Fatalf("backoff table grew to %d entries", n)
	}
	b.fail("x")
	b.fail("x")
	if blocked, until := b.blocked("x"); !blocked || until.Sub(now) != 2*backoffMin {
		t.Fatalf("two failures: blocked %v until +%v, want +%v", blocked, until.Sub(now), 2*backoffMin)
	}
	now = now.Add(backoffForget + time.Second)
	if blocked, _ := b.blocked("x"); blocked {
		t.Fatal("failures not forgotten")
	}
}

func addrN(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

// TestLegacyRSAKeyExchange: a TLS 1.2 client that offers only RSA key
// exchange (the suites Console adds for AMT) is refused by default and
// served with LegacyTLS=yes. TLS 1.0/1.1 is TestAMTSimLegacyTLS's.
func TestLegacyRSAKeyExchange(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			cfg := testConfig()
			cfg.CIRA.LegacyTLS = legacy
			dir := newFakeDir()
			dir.add(devA, "u", "p")
			s := newPipeService(t, cfg, dir)
			ca, _ := testPKI(t)
			pool := x509.NewCertPool()
			pool.AddCert(ca.Root())
			raw := s.dialRaw()
			tc := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "amtd.corp.example.com", Time: func() time.Time { return caNow },
				MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}})
			err := tc.Handshake()
			if legacy && err != nil {
				t.Fatalf("LegacyTLS=yes refused RSA key exchange: %v", err)
			}
			if !legacy && err == nil {
				t.Fatal("RSA key exchange accepted without LegacyTLS")
			}
			raw.Close()
			synctest.Wait()
			if !legacy && s.result(resultTLSError) != 1 {
				t.Errorf("tls_error counted %v", s.result(resultTLSError))
			}
		})
	}
}

// TestKeepalivesDebounced: keep-alives alone do not write the device's row
// at every flush (spec/apf.md §10: the heaviest load on the store at
// scale); its last-seen time is written once it is seenWriteInterval old,
// and a disconnect writes the exact time.
func TestKeepalivesDebounced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := newFakeDir()
		dir.add(devA, "u", "p")
		s := newPipeService(t, testConfig(), dir)
		c := s.dial(t)
		c.login(devA, "u", "p")
		c.forward(amtPorts...)
		c.expect(apfKeepaliveOptions)
		synctest.Wait()
		if err := s.flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		first, _ := dir.link(devA)
		rows := dir.rowCount()
		if rows != 1 || !first.Connected {
			t.Fatalf("after connect: %d rows written, link %+v", rows, first)
		}
		// Keep-alives for less than seenWriteInterval: nothing to write.
		var cookie uint32
		ka := func() {
			t.Helper()
			time.Sleep(30 * time.Second)
			cookie++
			c.mustSend(apf.KeepaliveRequest{Cookie: cookie})
			c.expect(apf.KeepaliveReply{Cookie: cookie})
			if err := s.flush(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		for range seenWriteInterval/(30*time.Second) - 1 {
			ka()
		}
		if got := dir.rowCount(); got != rows {
			t.Fatalf("keep-alives within %v wrote %d rows", seenWriteInterval, got-rows)
		}
		if got := s.linkWrites.Value(); got != float64(rows) {
			t.Errorf("amtd_cira_link_writes_total = %v, want %d", got, rows)
		}
		// The next one is seenWriteInterval after the write: it goes out.
		ka()
		second, _ := dir.link(devA)
		if got := dir.rowCount(); got != rows+1 || !second.LastSeen.After(first.LastSeen) || !second.Connected {
			t.Fatalf("after %v of keep-alives: %d rows written, last seen %v then %v", seenWriteInterval, got-rows, first.LastSeen, second.LastSeen)
		}
		// One more keep-alive, then the device goes: the disconnect row has
		// the last keep-alive's time, not the last written one.
		ka()
		last := time.Now()
		c.raw.Close()
		synctest.Wait()
		if err := s.flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		gone, _ := dir.link(devA)
		if gone.Connected || !gone.LastSeen.Equal(last) {
			t.Fatalf("after the disconnect: %+v, want last seen %v", gone, last)
		}
	})
}

// blockingDir is a fakeDir whose password checks wait for release.
type blockingDir struct {
	*fakeDir
	release chan struct{}
}

func (b blockingDir) CheckCredentials(ctx context.Context, uuid, user string, pw []byte) (bool, bool, error) {
	<-b.release
	return b.fakeDir.CheckCredentials(ctx, uuid, user, pw)
}

// TestAuthQueueBoundedByPreAuthTimeout: a login waiting for one of the
// maxAuthChecks password-check slots gives up at preAuthTimeout without
// the check ever running (in a reconnect storm the queue can be longer than
// a device waits; checking for a device that left wastes an argon2id hash).
func TestAuthQueueBoundedByPreAuthTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := blockingDir{fakeDir: newFakeDir(), release: make(chan struct{})}
		dir.add(devA, "u", "p")
		s := newPipeService(t, testConfig(), dir)
		start := func() *client {
			c := s.dial(t)
			c.mustSend(apf.ProtocolVersion{Major: 1, UUID: uuidOf(devA)}, apf.ServiceRequest{Service: apf.ServiceAuth})
			c.expect(apf.ServiceAccept{Service: apf.ServiceAuth})
			c.mustSend(apf.UserauthRequest{User: "u", Service: apf.ServicePortForward, Method: apf.MethodPassword,
				Password: secret.FromString("p")})
			return c
		}
		var held []*client
		for range maxAuthChecks {
			held = append(held, start())
		}
		synctest.Wait() // every slot is taken by a check that waits
		late := start()
		time.Sleep(preAuthTimeout)
		synctest.Wait()
		if got := s.result(resultTimeout); got != 1 {
			t.Fatalf("timeouts = %v, want the queued login's 1", got)
		}
		if ms := late.expectEnd(); len(ms) != 0 {
			t.Errorf("the queued login got %v", ms)
		}
		close(dir.release)
		synctest.Wait()
		if n := dir.checkCount(); n != maxAuthChecks {
			t.Errorf("%d password checks ran, want the %d that held a slot", n, maxAuthChecks)
		}
		for _, c := range held {
			c.raw.Close()
		}
	})
}
