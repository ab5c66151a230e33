package wsman

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"amtd/amt/digest"
	"amtd/secret"
)

// keepPool is a Dialer that hands out KeepAliveConns and keeps the one the
// client gives back, as the agent's TLS tunnel does.
type keepPool struct {
	addr string
	mu   sync.Mutex
	idle *keptConn
}

type keptConn struct {
	net.Conn
	p      *keepPool
	reused bool
}

func (c *keptConn) Reused() bool { return c.reused }

func (c *keptConn) Keep() {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	if c.p.idle != nil {
		c.p.idle.Close()
	}
	c.p.idle = c
}

func (p *keepPool) dial(ctx context.Context) (net.Conn, error) {
	p.mu.Lock()
	if c := p.idle; c != nil {
		p.idle = nil
		p.mu.Unlock()
		c.reused = true
		return c, nil
	}
	p.mu.Unlock()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	return &keptConn{Conn: nc, p: p}, nil
}

// newKeepAliveAMT starts a fake AMT that counts the TCP connections it
// accepted, and a client that dials it through a keepPool.
func newKeepAliveAMT(t *testing.T) (*fakeAMT, *httptest.Server, *Client, *atomic.Int32) {
	f := &fakeAMT{t: t, fx: fixtureDir(t), dig: digest.NewServer(testRealm), now: time.Unix(1_800_000_000, 0)}
	f.creds = digest.PasswordCredentials("admin", testRealm, secret.FromString("P@ssw0rd1"))
	srv := httptest.NewUnstartedServer(f)
	conns := &atomic.Int32{}
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	p := &keepPool{addr: srv.Listener.Addr().String()}
	c := NewClient(p.dial, Credentials{Host: "4c4c4544-0042-3010-8051-b4c04f4b4e32:16993", Username: "admin", Password: secret.FromString("P@ssw0rd1")}, WithChunked())
	return f, srv, c, conns
}

func TestClientKeepAlive(t *testing.T) {
	amt, _, c, conns := newKeepAliveAMT(t)
	ctx := context.Background()
	in := SetupInput{NetAdminPassEncryptionType: 2, NetworkAdminPassword: secret.FromString("f73b2c17b1ecbd7a235ec37d66cbed71")}
	// The first request is answered 401 and resent on the same connection,
	// even a method that must not be repeated: AMT did not act on it.
	if err := c.Invoke(ctx, "IPS_HostBasedSetupService", "Setup", in.Params(), &SetupOutput{}); err != nil {
		t.Fatal(err)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("401 and Setup took %d connections, want 1", n)
	}
	// Reads ride the kept connection, with the digest nonce reused.
	var gs AMTGeneralSettings
	for range 3 {
		if err := c.Get(ctx, "AMT_GeneralSettings", &gs); err != nil {
			t.Fatal(err)
		}
	}
	items, err := c.Enumerate(ctx, "CIM_SoftwareIdentity")
	if err != nil || len(items) != 11 {
		t.Fatalf("enumerate: %d items, %v", len(items), err)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("3 Gets and an enumeration after Setup took %d connections in all, want the one kept", n)
	}
	if n := amt.n401.Load(); n != 1 {
		t.Fatalf("%d 401s, want only the first challenge", n)
	}
	// A method call rides the kept connection too (RPS's persistent
	// tunnel sends everything on one connection).
	if err := c.Invoke(ctx, "IPS_HostBasedSetupService", "Setup", in.Params(), &SetupOutput{}); err != nil {
		t.Fatal(err)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("Setup after the reads took a new connection (%d in all, want 1)", n)
	}
}

// A method call whose kept connection breaks after it went out is not sent
// again: AMT may have acted on it.
func TestClientKeepAliveNoRepeat(t *testing.T) {
	amt, srv, c, conns := newKeepAliveAMT(t)
	ctx := context.Background()
	var gs AMTGeneralSettings
	if err := c.Get(ctx, "AMT_GeneralSettings", &gs); err != nil {
		t.Fatal(err)
	}
	seen := len(amt.seen)
	srv.CloseClientConnections()
	in := SetupInput{NetAdminPassEncryptionType: 2, NetworkAdminPassword: secret.FromString("f73b2c17b1ecbd7a235ec37d66cbed71")}
	if err := c.Invoke(ctx, "IPS_HostBasedSetupService", "Setup", in.Params(), &SetupOutput{}); err == nil {
		t.Fatal("Setup on a dead kept connection succeeded: it was sent again")
	}
	if n := conns.Load(); n != 1 || len(amt.seen) != seen {
		t.Fatalf("Setup was repeated on a new connection (%d connections, %d requests seen)", n, len(amt.seen))
	}
	// The next call starts a fresh connection.
	if err := c.Invoke(ctx, "IPS_HostBasedSetupService", "Setup", in.Params(), &SetupOutput{}); err != nil {
		t.Fatal(err)
	}
}

// A kept connection AMT closed while idle: a read is sent again on a fresh
// one.
func TestClientKeepAliveClosedWhileIdle(t *testing.T) {
	_, srv, c, conns := newKeepAliveAMT(t)
	ctx := context.Background()
	var gs AMTGeneralSettings
	if err := c.Get(ctx, "AMT_GeneralSettings", &gs); err != nil {
		t.Fatal(err)
	}
	srv.CloseClientConnections()
	if err := c.Get(ctx, "AMT_GeneralSettings", &gs); err != nil {
		t.Fatalf("Get after the kept connection closed: %v", err)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
	if err := c.Get(ctx, "AMT_GeneralSettings", &gs); err != nil {
		t.Fatal(err)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("the retry's connection was not kept (%d connections, want 2)", n)
	}
}

// Connection: close from AMT ends the connection: every request dials.
func TestClientKeepAliveRefused(t *testing.T) {
	amt, _, c, conns := newKeepAliveAMT(t)
	amt.closeAfter.Store(true)
	ctx := context.Background()
	var gs AMTGeneralSettings
	for range 3 {
		if err := c.Get(ctx, "AMT_GeneralSettings", &gs); err != nil {
			t.Fatal(err)
		}
	}
	// 401 + 3 answers, each closing.
	if n := conns.Load(); n != 4 {
		t.Fatalf("%d connections, want 4 (one per response)", n)
	}
}

// Without a KeepAliveConn the client asks for Connection: close, as before.
func TestClientConnectionClose(t *testing.T) {
	var seen []string
	var mu sync.Mutex
	amt, srv := newFakeAMT(t)
	inner := srv.Config.Handler
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Connection"))
		mu.Unlock()
		inner.ServeHTTP(w, r)
	})
	_ = amt
	var gs AMTGeneralSettings
	if err := newTestClient(srv, "P@ssw0rd1").Get(context.Background(), "AMT_GeneralSettings", &gs); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, v := range seen {
		if v != "close" {
			t.Fatalf("Connection headers %q, want close", seen)
		}
	}
}
