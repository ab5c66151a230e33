package cira

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"amtd/amt/apf"
	"amtd/amt/guid"
	"amtd/daemon/config"
	"amtd/metrics"
	"amtd/netsvc"
	"amtd/pki"
	"amtd/secret"
	"amtd/store"
)

// The test CA and server certificate are made once, with the real clock:
// RSA key generation is slow, and synctest bubbles start in the year 2000.
var (
	caOnce   sync.Once
	testCA   *pki.CA
	testCert *pki.ServerCert
	caNow    = time.Now()
)

func testPKI(t testing.TB) (*pki.CA, *pki.ServerCert) {
	t.Helper()
	caOnce.Do(func() {
		var err error
		if testCA, err = pki.New(caNow, "test"); err != nil {
			panic(err)
		}
		testCert, err = pki.NewServerCert(testCA, []string{"amtd.corp.example.com"}, []netip.Addr{netip.MustParseAddr("127.0.0.1")},
			func() time.Time { return caNow })
		if err != nil {
			panic(err)
		}
	})
	return testCA, testCert
}

// fakeDir is a Directory in memory.
type fakeDir struct {
	mu      sync.Mutex
	devs    map[string][2]string // uuid → user, password
	links   map[string]store.CIRALink
	fail    error // returned by PutLinks when set
	checks  int
	release int
	rows    int // link rows PutLinks took
}

func newFakeDir() *fakeDir {
	return &fakeDir{devs: map[string][2]string{}, links: map[string]store.CIRALink{}}
}

func (f *fakeDir) add(uuid, user, pass string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.devs[uuid] = [2]string{user, pass}
}

func (f *fakeDir) Known(_ context.Context, uuid string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.devs[uuid]
	return ok, nil
}

func (f *fakeDir) CheckCredentials(_ context.Context, uuid, user string, pw []byte) (bool, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks++
	d := f.devs[uuid]
	return d[0] == user, d[1] == string(pw), nil
}

func (f *fakeDir) PutLinks(_ context.Context, links []store.CIRALink) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	for _, l := range links {
		f.links[l.UUID] = l
	}
	f.rows += len(links)
	return nil
}

func (f *fakeDir) Release(context.Context, string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.release++
	return 0, nil
}

func (f *fakeDir) link(uuid string) (store.CIRALink, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.links[uuid]
	return l, ok
}

func (f *fakeDir) rowCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rows
}

func (f *fakeDir) checkCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.checks
}

func testConfig() *config.Config {
	return &config.Config{
		Site: config.Site{Hostname: "amtd.corp.example.com", Domains: []string{"corp.example.com"}, Addresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")}},
		CIRA: config.CIRA{Enable: true, Listen: "127.0.0.1:0", KeepAlive: 30 * time.Second, IdleTimeout: 90 * time.Second},
	}
}

// pipeService is a service fed net.Pipe connections by dial, with a fake
// directory: for synctest, where real sockets are not allowed.
type pipeService struct {
	*Service
	ctx context.Context
}

func newPipeService(t *testing.T, cfg *config.Config, dir Directory) *pipeService {
	t.Helper()
	_, cert := testPKI(t)
	log := slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(cfg, netsvc.Deps{Metrics: metrics.NewRegistry(), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	s.dir, s.cert = dir, cert
	s.tlsConfig.Store(newTLSConfig(s.settings.Load(), cert))
	ctx, cancel := context.WithCancel(context.Background())
	s.running, s.cancel, s.ln = true, cancel, closedListener{}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return &pipeService{Service: s, ctx: ctx}
}

// tWriter sends log lines to the test's log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// closedListener stands in for the socket of a pipe-fed service.
type closedListener struct{}

func (closedListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (closedListener) Close() error              { return nil }
func (closedListener) Addr() net.Addr            { return &net.TCPAddr{} }

// dialRaw hands the service the server end of a pipe, as accept does.
func (s *pipeService) dialRaw() net.Conn {
	client, server := net.Pipe()
	if !s.trackConn(server) {
		server.Close()
		return client
	}
	s.wg.Add(1)
	go s.handleConn(s.ctx, server)
	return client
}

// dial connects over TLS.
func (s *pipeService) dial(t testing.TB) *client {
	t.Helper()
	c, err := dialTLS(t, s.dialRaw())
	if err != nil {
		t.Fatalf("TLS: %v", err)
	}
	return c
}

func (s *pipeService) result(r string) float64 { return s.results.With(r).Value() }
func (s *pipeService) ended(r string) float64  { return s.ends.With(r).Value() }

// client is a device's end of a CIRA link, as amtsim speaks it.
type client struct {
	t    testing.TB
	raw  net.Conn // under TLS; closing it skips close_notify
	conn net.Conn
	r    *apf.Reader
}

func dialTLS(t testing.TB, raw net.Conn) (*client, error) {
	ca, _ := testPKI(t)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Root())
	tc := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "amtd.corp.example.com", Time: func() time.Time { return caNow },
		MinVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		raw.Close()
		return nil, err
	}
	return &client{t: t, raw: raw, conn: tc, r: apf.NewReader(tc, apf.Limits{})}, nil
}

// send writes the messages in one write: over an unbuffered pipe, a second
// write would wait for a server that is busy writing its answer to the first.
func (c *client) send(ms ...apf.Message) error {
	var b []byte
	for _, m := range ms {
		var err error
		if b, err = m.AppendBinary(b); err != nil {
			c.t.Fatal(err)
		}
	}
	_, err := c.conn.Write(b)
	return err
}

func (c *client) mustSend(ms ...apf.Message) {
	c.t.Helper()
	if err := c.send(ms...); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *client) read() (apf.Message, error) { return c.r.ReadMessage() }

func (c *client) expect(want apf.Message) {
	c.t.Helper()
	m, err := c.read()
	if err != nil {
		c.t.Fatalf("want %s, got error %v", want, err)
	}
	if m.String() != want.String() {
		c.t.Fatalf("got %s, want %s", m, want)
	}
}

// expectEnd reads until the server closes, and returns the messages seen.
func (c *client) expectEnd() []apf.Message {
	c.t.Helper()
	var ms []apf.Message
	for {
		m, err := c.read()
		if err != nil {
			return ms
		}
		ms = append(ms, m)
	}
}

func uuidOf(s string) guid.UUID {
	u, err := guid.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// login runs the device side of the handshake up to USERAUTH_SUCCESS.
func (c *client) login(uuid, user, pass string) {
	c.t.Helper()
	c.mustSend(apf.ProtocolVersion{Major: 1, Trigger: apf.TriggerPeriodic, UUID: uuidOf(uuid)}, apf.ServiceRequest{Service: apf.ServiceAuth})
	c.expect(apf.ServiceAccept{Service: apf.ServiceAuth})
	c.mustSend(apf.UserauthRequest{User: user, Service: apf.ServicePortForward, Method: apf.MethodPassword, Password: secret.FromString(pass)})
	c.expect(apf.UserauthSuccess{})
}

// forward requests pfwd and forwards ports one by one, as amtsim does.
func (c *client) forward(ports ...uint32) {
	c.t.Helper()
	c.mustSend(apf.ServiceRequest{Service: apf.ServicePortForward})
	c.expect(apf.ServiceAccept{Service: apf.ServicePortForward})
	for _, p := range ports {
		c.mustSend(apf.TCPIPForward{WantReply: true, Address: "dev.corp.example.com", Port: p})
		c.expect(apf.RequestSuccess{HasPort: true, Port: p})
	}
}

var errNoStore = errors.New("store unavailable")
