package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"amtd/daemon/config"
	"amtd/metrics"
	"amtd/netsvc"
	"amtd/pki"
	"amtd/secret"
	"amtd/store"
)

// env is a running API on loopback with a real store and the appliance
// certificate, and an HTTPS client that trusts only the appliance root.
type env struct {
	t       testing.TB
	st      *store.Store
	dbPath  string
	svc     *Service
	base    string
	client  *http.Client
	reg     *metrics.Registry
	logs    *logBuf
	metrics string // metrics address, "" when off
	ca      *pki.CA
}

func newEnv(t testing.TB, withMetrics bool) *env {
	t.Helper()
	return newEnvDevices(t, withMetrics, nil)
}

// newEnvDevices is newEnv whose API reaches devices through what devices
// returns (called with the store, the appliance CA in it, and the listener
// registry; nil devices: CIRA off).
func newEnvDevices(t testing.TB, withMetrics bool, devices func(*store.Store, *netsvc.Listeners) DeviceDialer) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	opts := store.Options{Path: filepath.Join(dir, "amtd.db"), KeyFile: filepath.Join(dir, "master.key")}
	if err := store.GenerateKeyFile(opts.KeyFile); err != nil {
		t.Fatal(err)
	}
	st, err := store.Init(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ca, _, err := pki.LoadOrInit(ctx, st, time.Now(), "test", "test")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := pki.NewServerCert(ca, []string{"amtd.test"}, []netip.Addr{netip.MustParseAddr("127.0.0.1")}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{}
	cfg.API.Enable = true
	cfg.API.Listen = "127.0.0.1:0"
	if withMetrics {
		cfg.API.MetricsListen = "127.0.0.1:0"
	}
	lns := netsvc.NewListeners(nil)
	t.Cleanup(func() { lns.Close() })
	logs := &logBuf{}
	reg := metrics.NewRegistry()
	deps := netsvc.Deps{Log: slog.New(slog.NewTextHandler(logs, nil)), Store: st, Metrics: reg,
		Listeners: lns, Version: "1.2.3-test"}
	var dd DeviceDialer
	if devices != nil {
		dd = devices(st, lns)
	}
	svc, err := New(cfg, deps, Options{Certificate: sc.GetCertificate, Devices: dd})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := svc.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	pool := x509.NewCertPool()
	pool.AddCert(ca.Root())
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "amtd.test"}}
	t.Cleanup(tr.CloseIdleConnections)
	e := &env{t: t, st: st, dbPath: opts.Path, svc: svc, base: "https://" + svc.Addr(),
		client: &http.Client{Transport: tr, Timeout: 30 * time.Second}, reg: reg, logs: logs, ca: ca}
	if withMetrics {
		f, err := lns.File(metricsListenerName)
		if err != nil || f == nil {
			t.Fatalf("metrics socket: %v", err)
		}
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		e.metrics = ln.Addr().String()
		ln.Close()
	}
	return e
}

// logBuf collects the service's log lines from its goroutines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (e *env) key(role, name string) string {
	e.t.Helper()
	tok, _, err := e.st.APIKeys().Create(context.Background(), name, role, "test", "test")
	if err != nil {
		e.t.Fatal(err)
	}
	return tok.RevealString()
}

// do sends one request and returns the status and body.
func (e *env) do(method, path string, hdr map[string]string, body io.Reader) (int, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.base+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, b
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

// putDevice stores a device, connected over CIRA or not.
func (e *env) putDevice(uuid, host string, connected bool, tags ...string) {
	e.t.Helper()
	ctx := context.Background()
	d := store.Device{UUID: uuid, Hostname: host, AMTVersion: "16.1.25", AMTBuild: "2049", ControlMode: 2, Tags: tags,
		Addresses: []netip.Addr{netip.MustParseAddr("10.0.0.7")}}
	if err := e.st.Devices().Put(ctx, d); err != nil {
		e.t.Fatal(err)
	}
	// Put keeps an existing device's tags (the console owns them).
	if _, err := e.st.Devices().Edit(ctx, uuid, store.DeviceEdit{Tags: &tags}, "test"); err != nil {
		e.t.Fatal(err)
	}
	if connected {
		now := time.Now()
		if err := e.st.Devices().SetCIRA(ctx, uuid, store.CIRAState{MPSUsername: "admin", Connected: true,
			ConnectedSince: now, LastSeen: now, OwnerInstance: "amtd-1", RemoteAddr: "10.0.0.7:50000"}); err != nil {
			e.t.Fatal(err)
		}
	}
}

const (
	uuidA = "11111111-2222-3333-4444-555555555555"
	uuidB = "21111111-2222-3333-4444-555555555555"
	uuidC = "31111111-2222-3333-4444-555555555555"
)

func TestAuthRefusals(t *testing.T) {
	e := newEnv(t, false)
	good := e.key(store.RoleViewer, "good")
	revoked := e.key(store.RoleAdmin, "old")
	keys, err := e.st.APIKeys().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.Name == "old" {
			if err := e.st.APIKeys().Revoke(context.Background(), k.ID, "test", "test"); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A token of the right shape with the right prefix but the wrong rest.
	wrongRest := good[:len("amtd_")+9] + strings.Repeat("a", len(good)-len("amtd_")-9)

	tests := []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"no header", nil, 401},
		{"empty bearer", map[string]string{"Authorization": "Bearer "}, 401},
		{"basic scheme", map[string]string{"Authorization": "Basic YWRtaW46cGFzcw=="}, 401},
		{"garbage token", bearer("nonsense"), 401},
		{"wrong secret part", bearer(wrongRest), 401},
		{"revoked", bearer(revoked), 401},
		{"oversized token", bearer("amtd_" + strings.Repeat("x", 4000)), 401},
		{"good bearer", bearer(good), 200},
		{"good bearer, lower-case scheme", map[string]string{"Authorization": "bearer " + good}, 200},
		{"good X-Api-Key", map[string]string{"X-Api-Key": good}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := e.do("GET", "/api/v1/devices", tt.hdr, nil)
			if st != tt.want {
				t.Fatalf("status %d, want %d: %s", st, tt.want, body)
			}
			if st == 401 {
				var ae apiError
				if err := json.Unmarshal(body, &ae); err != nil || ae.Error != "Unauthorized" || ae.Message == "" {
					t.Errorf("401 body is not a JSON error: %s", body)
				}
			}
		})
	}
	// Unknown paths without a key are 401 too: nothing is revealed.
	if st, _ := e.do("GET", "/api/v1/nothing", nil, nil); st != 401 {
		t.Errorf("unknown path without key: %d, want 401", st)
	}
	// The refusals are in the audit trail and counted.
	es, err := e.st.AuditList(context.Background(), store.AuditQuery{Object: "api"})
	if err != nil {
		t.Fatal(err)
	}
	fails := 0
	for _, en := range es {
		if en.Action == "api.auth" && en.Actor == "api:anonymous" && strings.HasPrefix(en.Result, "401") {
			fails++
		}
	}
	if fails != 8 {
		t.Errorf("%d failed-auth audit rows, want 8:\n%v", fails, es)
	}
	var m bytes.Buffer
	if err := e.reg.WriteText(&m); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.String(), `amtd_api_auth_failures_total{reason="invalid"} 4`) {
		t.Errorf("metrics lack 4 invalid-key failures (garbage, wrong secret, revoked, oversized):\n%s", m.String())
	}
	// No token, good or bad, reaches the log or the audit trail.
	all, _ := e.st.AuditList(context.Background(), store.AuditQuery{})
	for _, tok := range []string{good, revoked, wrongRest} {
		if strings.Contains(e.logs.String(), tok) || strings.Contains(fmt.Sprint(all), tok) {
			t.Errorf("a token is in the log or the audit trail")
		}
	}
}

func TestRolesAndAudit(t *testing.T) {
	e := newEnv(t, false)
	viewer := e.key(store.RoleViewer, "v")
	operator := e.key(store.RoleOperator, "o")
	admin := e.key(store.RoleAdmin, "a")
	e.putDevice(uuidA, "a.example", true)

	for _, tc := range []struct {
		tok  string
		path string
		want int
	}{
		{viewer, "/api/v1/devices", 200},
		{viewer, "/api/v1/devices/" + uuidA, 200},
		{viewer, "/api/v1/devices/stats", 200},
		{viewer, "/api/v1/version", 200},
		{viewer, "/api/v1/audit", 403},
		{operator, "/api/v1/audit", 403},
		{admin, "/api/v1/audit", 200},
	} {
		st, body := e.do("GET", tc.path, bearer(tc.tok), nil)
		if st != tc.want {
			t.Errorf("GET %s: %d, want %d: %s", tc.path, st, tc.want, body)
		}
	}

	keys, _ := e.st.APIKeys().List(context.Background())
	ids := map[string]string{}
	for _, k := range keys {
		ids[k.Name] = k.ID
	}
	es, err := e.st.AuditList(context.Background(), store.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	has := func(actor, action, object, result string) bool {
		for _, en := range es {
			if en.Actor == actor && en.Action == action && en.Object == object && strings.HasPrefix(en.Result, result) {
				return true
			}
		}
		return false
	}
	for _, w := range []struct{ actor, action, object, result string }{
		{"api:key:" + ids["v"], "api.devices.list", "devices", "ok"},
		{"api:key:" + ids["v"], "api.devices.get", "device/" + uuidA, "ok"},
		{"api:key:" + ids["v"], "api.audit.list", "api", "403"},
		{"api:key:" + ids["o"], "api.audit.list", "api", "403"},
		{"api:key:" + ids["a"], "api.audit.list", "audit", "ok"},
	} {
		if !has(w.actor, w.action, w.object, w.result) {
			t.Errorf("no audit row %+v in\n%+v", w, es)
		}
	}

	// The admin reads the trail through the API and sees the viewer's calls.
	st, body := e.do("GET", "/api/v1/audit?limit=50", bearer(admin), nil)
	if st != 200 || !strings.Contains(string(body), `"api.devices.stats"`) {
		t.Errorf("audit through the API: %d %s", st, body)
	}
}

func TestDevices(t *testing.T) {
	e := newEnv(t, false)
	tok := e.key(store.RoleViewer, "v")
	e.putDevice(uuidA, "a.example", true, "lab")
	e.putDevice(uuidB, "b.example", false, "lab")
	e.putDevice(uuidC, "c.example", false)
	// A device's stored password must never appear in an answer.
	const pw = "P@ssw0rd-never-in-the-api"
	if err := e.st.Secrets().SetPending(context.Background(), uuidA, store.AMTAdmin, secret.FromString(pw), "test"); err != nil {
		t.Fatal(err)
	}

	st, body := e.do("GET", "/api/v1/devices/stats", bearer(tok), nil)
	var stats map[string]int
	if st != 200 || json.Unmarshal(body, &stats) != nil {
		t.Fatalf("stats: %d %s", st, body)
	}
	if stats["totalCount"] != 3 || stats["connectedCount"] != 1 || stats["disconnectedCount"] != 2 {
		t.Errorf("stats %v, want 3 total, 1 connected, 2 disconnected", stats)
	}

	list := func(q string) []map[string]any {
		t.Helper()
		st, body := e.do("GET", "/api/v1/devices"+q, bearer(tok), nil)
		if st != 200 {
			t.Fatalf("list %s: %d %s", q, st, body)
		}
		if strings.Contains(string(body), pw) {
			t.Fatalf("list %s returns a password", q)
		}
		var out []map[string]any
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("list %s: %v: %s", q, err, body)
		}
		return out
	}
	guids := func(ds []map[string]any) string {
		var g []string
		for _, d := range ds {
			g = append(g, d["guid"].(string)[:1])
		}
		return strings.Join(g, ",")
	}
	for q, want := range map[string]string{
		"":                     "1,2,3",
		"?status=1":            "1",
		"?status=0":            "2,3",
		"?tags=lab":            "1,2",
		"?tags=lab&status=0":   "2",
		"?$top=1&$skip=1":      "2",
		"?$top=0":              "",
		"?status=disconnected": "2,3",
	} {
		if got := guids(list(q)); got != want {
			t.Errorf("devices%s: %q, want %q", q, got, want)
		}
	}
	st, body = e.do("GET", "/api/v1/devices?status=0&$count=true&$top=1", bearer(tok), nil)
	var counted struct {
		Data       []map[string]any `json:"data"`
		TotalCount int              `json:"totalCount"`
	}
	if st != 200 || json.Unmarshal(body, &counted) != nil || len(counted.Data) != 1 || counted.TotalCount != 2 {
		t.Errorf("$count: %d %s", st, body)
	}
	for _, q := range []string{"?status=2", "?$top=-1", "?$top=x", "?$skip=-3", "?tags=a,b", "?$count=maybe", "?hostname=a.example", "?friendlyName=x"} {
		if st, body := e.do("GET", "/api/v1/devices"+q, bearer(tok), nil); st != 400 || !strings.Contains(string(body), `"message"`) {
			t.Errorf("devices%s: %d %s, want 400 with a message", q, st, body)
		}
	}

	// One device, GUID in upper case as AMT writes it, with MPS's field names.
	st, body = e.do("GET", "/api/v1/devices/"+strings.ToUpper(uuidA), bearer(tok), nil)
	if st != 200 {
		t.Fatalf("get: %d %s", st, body)
	}
	if strings.Contains(string(body), pw) {
		t.Fatal("get returns a password")
	}
	var d map[string]any
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"guid", "hostname", "friendlyName", "dnsSuffix", "tags", "mpsusername", "tenantId",
		"connectionStatus", "mpsInstance", "lastConnected", "lastSeen", "lastDisconnected", "deviceInfo"} {
		if _, ok := d[f]; !ok {
			t.Errorf("device lacks %q: %s", f, body)
		}
	}
	if d["guid"] != uuidA || d["hostname"] != "a.example" || d["connectionStatus"] != true || d["mpsInstance"] != "amtd-1" {
		t.Errorf("device: %s", body)
	}
	di, _ := d["deviceInfo"].(map[string]any)
	if di["fwVersion"] != "16.1.25" || di["fwBuild"] != "2049" || di["currentMode"] != "2" || di["ipAddress"] != "10.0.0.7" {
		t.Errorf("deviceInfo: %v", di)
	}
	st, body = e.do("GET", "/api/v1/devices/"+uuidB, bearer(tok), nil)
	if st != 200 || !strings.Contains(string(body), `"connectionStatus":false`) || !strings.Contains(string(body), `"mpsInstance":null`) {
		t.Errorf("disconnected device: %d %s", st, body)
	}

	if st, body := e.do("GET", "/api/v1/devices/41111111-2222-3333-4444-555555555555", bearer(tok), nil); st != 404 || !strings.Contains(string(body), "not found") {
		t.Errorf("unknown device: %d %s", st, body)
	}
	if st, body := e.do("GET", "/api/v1/devices/not-a-guid", bearer(tok), nil); st != 400 {
		t.Errorf("bad guid: %d %s", st, body)
	}

	st, body = e.do("GET", "/api/v1/version", bearer(tok), nil)
	if st != 200 || !strings.Contains(string(body), `"serviceVersion":"1.2.3-test"`) {
		t.Errorf("version: %d %s", st, body)
	}
	e.putDevice(uuidC, "c.example", false, "zone-b", "lab")
	if st, body := e.do("GET", "/api/v1/devices/tags", bearer(tok), nil); st != 200 || string(body) != `["lab","zone-b"]`+"\n" {
		t.Errorf("tags: %d %s", st, body)
	}
	if st, body := e.do("GET", "/api/v1/health", bearer(tok), nil); st != 200 || !strings.Contains(string(body), `"db":"OK"`) {
		t.Errorf("health: %d %s", st, body)
	}
	st, body = e.do("GET", "/api/v1/ciracert", bearer(tok), nil)
	blk, _ := pem.Decode(body)
	if st != 200 || blk == nil || !bytes.Equal(blk.Bytes, e.ca.RootDER()) {
		t.Errorf("ciracert: %d %s, want the appliance root", st, body)
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, false)
	tok := e.key(store.RoleAdmin, "a")

	// Wrong method and unknown path: JSON errors, audited.
	st, body := e.do("PUT", "/api/v1/devices", bearer(tok), strings.NewReader(`{}`))
	if st != 405 || !strings.Contains(string(body), `"Method Not Allowed"`) {
		t.Errorf("PUT devices: %d %s", st, body)
	}
	st, body = e.do("GET", "/api/v1/nothing%0a%1b[31mforged", bearer(tok), nil)
	if st != 404 || !strings.Contains(string(body), `"Not Found"`) {
		t.Errorf("unknown path: %d %s", st, body)
	}
	es, err := e.st.AuditList(context.Background(), store.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) == 0 || !strings.HasPrefix(es[0].Reason, "GET /api/v1/nothing??[31mforged from ") {
		t.Errorf("the newest audit row does not show the path with its control characters replaced: %+v", es[:min(len(es), 1)])
	}

	// An announced body over the limit is refused before it is read.
	req, _ := http.NewRequest("POST", e.base+"/api/v1/devices", io.LimitReader(zeros{}, 2<<20))
	req.ContentLength = 2 << 20
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := e.client.Do(req)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("2 MiB body: %d %s", resp.StatusCode, b)
		}
	} // else the server closed the connection while the client wrote: refused too.

	// Headers over the limit.
	// The server answers 431 and closes; a client still writing may see
	// the reset instead of the answer. Either way the request is refused.
	req, _ = http.NewRequest("GET", e.base+"/api/v1/devices", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Junk", strings.Repeat("j", 64<<10))
	if resp, err := e.client.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != 431 {
			t.Errorf("64 KiB header: %d, want 431", resp.StatusCode)
		}
	}

	// Garbage inside TLS: net/http answers 400 and closes.
	pool := e.client.Transport.(*http.Transport).TLSClientConfig
	c, err := tls.Dial("tcp", e.svc.Addr(), pool)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write([]byte("\x00\x01garbage\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if !strings.HasPrefix(line, "HTTP/1.1 400") {
		t.Errorf("garbage over TLS: %q, want HTTP/1.1 400", line)
	}

	// Plain HTTP and TLS below 1.2 are refused; the service still answers after.
	pc, err := net.Dial("tcp", e.svc.Addr())
	if err != nil {
		t.Fatal(err)
	}
	pc.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(pc, "GET /api/v1/devices HTTP/1.1\r\nHost: x\r\n\r\n")
	line, _ = bufio.NewReader(pc).ReadString('\n')
	pc.Close()
	if !strings.HasPrefix(line, "HTTP/1.0 400") {
		t.Errorf("plain HTTP: %q, want a 400", line)
	}
	cbc := pool.Clone()
	cbc.MaxVersion = tls.VersionTLS12
	cbc.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
	if c, err := tls.Dial("tcp", e.svc.Addr(), cbc); err == nil {
		c.Close()
		t.Error("a TLS 1.2 handshake with only CBC suites succeeded")
	}
	old := pool.Clone()
	old.MaxVersion = tls.VersionTLS11
	old.MinVersion = tls.VersionTLS10
	if c, err := tls.Dial("tcp", e.svc.Addr(), old); err == nil {
		c.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
	if st, _ := e.do("GET", "/api/v1/version", bearer(tok), nil); st != 200 {
		t.Errorf("after the bad requests: %d", st)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestMetricsEndpoint(t *testing.T) {
	e := newEnv(t, true)
	tok := e.key(store.RoleViewer, "v")
	if st, _ := e.do("GET", "/api/v1/devices/stats", bearer(tok), nil); st != 200 {
		t.Fatal(st)
	}
	resp, err := http.Get("http://" + e.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `amtd_api_requests_total{route="devices.stats",code="200"} 1`) {
		t.Errorf("metrics: %d\n%s", resp.StatusCode, b)
	}
	if strings.Contains(string(b), tok) {
		t.Error("the token is in the metrics")
	}
}

func TestMetricsOffWhenEmpty(t *testing.T) {
	e := newEnv(t, false)
	f, err := e.svc.deps.Listeners.File(metricsListenerName)
	if f != nil {
		f.Close()
	}
	if f != nil || err != nil {
		t.Errorf("a metrics socket exists without MetricsListen= (%v)", err)
	}
}

func TestNewRefusesIncompleteDeps(t *testing.T) {
	cfg := &config.Config{}
	cfg.API.Listen = "127.0.0.1:0"
	if _, err := New(cfg, netsvc.Deps{Listeners: netsvc.NewListeners(nil)}, Options{}); err == nil {
		t.Error("New without a store succeeded")
	}
}

// TestFailedAuthAuditLimit: failed authentications are audited up to the
// burst, then one per period; the rest are counted.
func TestFailedAuthAuditLimit(t *testing.T) {
	l := limiter{burst: 3, every: time.Second}
	t0 := time.Unix(1000, 0)
	var got []bool
	for _, at := range []time.Duration{0, 0, 0, 0, 500 * time.Millisecond, 1500 * time.Millisecond, 1500 * time.Millisecond} {
		got = append(got, l.allow(t0.Add(at)))
	}
	want := []bool{true, true, true, false, false, true, false}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("allow: %v, want %v", got, want)
	}
}

// TestAuthorizeLikeMPS: an Open AMT script logs in with POST /authorize,
// the API key as its password, and uses the token it gets back.
func TestAuthorizeLikeMPS(t *testing.T) {
	e := newEnv(t, false)
	tok := e.key(store.RoleViewer, "script")
	st, body := e.do("POST", "/api/v1/authorize", nil, strings.NewReader(`{"username":"admin","password":"`+tok+`"}`))
	var got struct{ Token string }
	if st != 200 || json.Unmarshal(body, &got) != nil || got.Token == "" {
		t.Fatalf("authorize: %d %s", st, body)
	}
	if st, body := e.do("GET", "/api/v1/devices/stats", bearer(got.Token), nil); st != 200 {
		t.Errorf("with the token from /authorize: %d %s", st, body)
	}
	for _, c := range []struct {
		method, body string
		want         int
	}{
		{"POST", `{"username":"admin","password":"admin"}`, 401},
		{"POST", `{"username":"admin","password":"` + tok + `x"}`, 401},
		{"POST", `{"username":"admin"}`, 400},
		{"POST", `not json`, 400},
		{"POST", `{"username":"` + strings.Repeat("a", 8<<10) + `","password":"` + tok + `"}`, 400},
		{"GET", ``, 405},
	} {
		st, body := e.do(c.method, "/api/v1/authorize", nil, strings.NewReader(c.body))
		if st != c.want || !json.Valid(body) {
			t.Errorf("%s authorize %.40q: %d %s, want %d", c.method, c.body, st, body, c.want)
		}
	}
	es, _ := e.st.AuditList(context.Background(), store.AuditQuery{})
	var ok, refused int
	for _, en := range es {
		if en.Action == "api.authorize" {
			if en.Result == store.ResultOK {
				ok++
			} else {
				refused++
			}
		}
	}
	if ok != 1 || refused != 2 {
		t.Errorf("audit: %d logins, %d refusals; want 1 and 2", ok, refused)
	}
}

// TestRebuildOnSameSocket: on reload the daemon builds a new API on the same
// socket, starts it, then closes the old one; consoles see no refusal.
func TestRebuildOnSameSocket(t *testing.T) {
	e := newEnv(t, true)
	tok := e.key(store.RoleViewer, "v")
	if st, _ := e.do("GET", "/api/v1/version", bearer(tok), nil); st != 200 {
		t.Fatal(st)
	}
	cfg := &config.Config{API: e.svc.cfg}
	next, err := New(cfg, e.svc.deps, e.svc.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Start(context.Background()); err != nil {
		t.Fatalf("the new instance could not start on the same socket: %v", err)
	}
	defer next.Close(context.Background())
	if next.Addr() != e.svc.Addr() {
		t.Errorf("new instance on %s, old on %s", next.Addr(), e.svc.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if st, body := e.do("GET", "/api/v1/version", bearer(tok), nil); st != 200 {
			t.Errorf("call %d after the old instance closed: %d %s", i, st, body)
		}
	}
	resp, err := http.Get("http://" + e.metrics + "/metrics")
	if err != nil {
		t.Fatalf("metrics after the rebuild: %v", err)
	}
	resp.Body.Close()
}

// TestHealthFailsWhenTheListenerDies: a listener that stops serving other
// than by Close makes Health fail, so the daemon stops feeding the watchdog.
func TestHealthFailsWhenTheListenerDies(t *testing.T) {
	e := newEnv(t, false)
	if err := e.svc.Health(context.Background()); err != nil {
		t.Fatalf("healthy service: %v", err)
	}
	e.svc.mu.Lock()
	e.svc.ln.Close()
	e.svc.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for e.svc.Health(context.Background()) == nil {
		if time.Now().After(deadline) {
			t.Fatal("Health still nil 10 s after the listener closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := e.svc.Health(context.Background()); !strings.Contains(err.Error(), "api listener stopped") {
		t.Errorf("Health: %v", err)
	}
}
