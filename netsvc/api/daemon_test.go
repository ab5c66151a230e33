package api_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amtd/daemon"
	"amtd/daemon/config"
	"amtd/metrics"
	"amtd/netsvc"
	"amtd/netsvc/api"
	"amtd/pki"
	"amtd/secret"
	"amtd/store"
)

// TestDaemonWiring: an amtd.conf with [API] Enable=yes passes the parser,
// the daemon's service table builds the API from it with the appliance
// certificate for [Site] Hostname=, and a key made as `amtd apikey create`
// makes one reads the device stats over HTTPS, checking the name.
func TestDaemonWiring(t *testing.T) {
	dir := t.TempDir()
	conf := `[Site]
Domain=wiring.test
Hostname=amtd.wiring.test
Address=127.0.0.1

[API]
Enable=yes
Listen=127.0.0.1:0
`
	cfg, err := config.Parse("amtd.conf", strings.NewReader(conf))
	if err != nil {
		t.Fatalf("[API] Enable=yes is refused: %v", err)
	}
	var spec *daemon.Spec
	for _, s := range daemon.DefaultServices() {
		if s.Name == "api" {
			spec = &s
		}
	}
	if spec == nil || !spec.Enabled(cfg) {
		t.Fatalf("the service table has no enabled \"api\" row: %+v", spec)
	}

	ctx := context.Background()
	opts := store.Options{Path: filepath.Join(dir, "amtd.db"), KeyFile: filepath.Join(dir, "master.key")}
	if err := store.GenerateKeyFile(opts.KeyFile); err != nil {
		t.Fatal(err)
	}
	st, err := store.Init(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	lns := netsvc.NewListeners(nil)
	defer lns.Close()
	svc, err := spec.New(cfg, netsvc.Deps{Store: st, Listeners: lns, Metrics: metrics.NewRegistry(), Version: "9.9"})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		svc.Close(cctx)
	}()
	addr := svc.(interface{ Addr() string }).Addr()

	ca, err := pki.Load(ctx, st)
	if err != nil {
		t.Fatalf("the appliance CA was not created: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Root())
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "amtd.wiring.test"}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	tok, _, err := st.APIKeys().Create(ctx, "console", store.RoleViewer, "test", "test")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "https://"+addr+"/api/v1/devices/stats", nil)
	req.Header.Set("Authorization", "Bearer "+tok.RevealString())
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("HTTPS with the appliance root and name amtd.wiring.test: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var stats map[string]int
	if resp.StatusCode != 200 || json.Unmarshal(body, &stats) != nil || stats["totalCount"] != 0 {
		t.Errorf("stats: %d %s", resp.StatusCode, body)
	}
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("TLS version %v", resp.TLS)
	}
}

// TestDaemonWiringCIRA: with [CIRA] and [API] on, the service table hands
// the API the CIRA service it built: a simulated device that connects to
// that CIRA service answers the API's power state; the same table with
// [CIRA] off gives the API no way to devices, and it says so.
func TestDaemonWiringCIRA(t *testing.T) {
	const conf = `[Site]
Domain=corp.example.com
Hostname=amtd.corp.example.com
Address=127.0.0.1

[CIRA]
Enable=%s
Listen=127.0.0.1:0

[API]
Enable=yes
Listen=127.0.0.1:0
`
	st, tok := wiringStore(t, store.RoleViewer)
	for _, ciraOn := range []bool{true, false} {
		t.Run(fmt.Sprintf("cira=%v", ciraOn), func(t *testing.T) {
			enable := "no"
			if ciraOn {
				enable = "yes"
			}
			cfg, err := config.Parse("amtd.conf", strings.NewReader(fmt.Sprintf(conf, enable)))
			if err != nil {
				t.Fatal(err)
			}
			apiAddr, ciraAddr := startWiring(t, cfg, st)
			if ciraOn {
				api.StartSimDevice(t, st, ciraAddr, api.SimUUID, nil)
			}
			status, body := wiringCall(t, st, "GET", apiAddr, "/api/v1/amt/power/state/"+api.SimUUID, tok)
			if ciraOn {
				var ps map[string]int
				if status != 200 || json.Unmarshal(body, &ps) != nil || ps["powerstate"] != 2 {
					t.Fatalf("power state through the daemon's CIRA service: %d %s", status, body)
				}
			} else if status != 404 || !strings.Contains(string(body), "[CIRA] is off") {
				t.Fatalf("power state with [CIRA] off: %d %s", status, body)
			}
		})
	}
}

// wiringStore is a store as amtd store init leaves it (master key, the
// appliance CA for amtd.corp.example.com), with an API key of role and the
// simulated device's record.
func wiringStore(t *testing.T, role string) (*store.Store, secret.Value) {
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
	if _, err := pki.Init(ctx, st, time.Now(), "amtd.corp.example.com", "test"); err != nil {
		t.Fatal(err)
	}
	tok, _, err := st.APIKeys().Create(ctx, "console", role, "test", "test")
	if err != nil {
		t.Fatal(err)
	}
	api.AddSimDevice(t, st, api.SimUUID)
	return st, tok
}

// startWiring builds and starts the enabled "cira" and "api" rows of the
// daemon's service table, in table order as the daemon starts them, until
// the test ends. It returns the API's address and the CIRA listener's
// ("" when [CIRA] is off).
func startWiring(t *testing.T, cfg *config.Config, st *store.Store) (apiAddr, ciraAddr string) {
	t.Helper()
	ctx := context.Background()
	lns := netsvc.NewListeners(nil)
	t.Cleanup(func() { lns.Close() })
	deps := netsvc.Deps{Store: st, Listeners: lns, Metrics: metrics.NewRegistry(), Version: "9.9"}
	for _, s := range daemon.DefaultServices() {
		if s.Name != "cira" && s.Name != "api" || !s.Enabled(cfg) {
			continue
		}
		svc, err := s.New(cfg, deps)
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			svc.Close(cctx)
		})
		if a, ok := svc.(interface{ Addr() string }); ok {
			apiAddr = a.Addr()
		}
	}
	if !cfg.CIRA.Enable {
		return apiAddr, ""
	}
	f, err := lns.File("cira")
	if err != nil || f == nil {
		t.Fatalf("cira socket: %v", err)
	}
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return apiAddr, ln.Addr().String()
}

// wiringCall sends method path to the API at addr over HTTPS, trusting the
// appliance root for amtd.corp.example.com, with tok; it returns the
// status and body.
func wiringCall(t *testing.T, st *store.Store, method, addr, path string, tok secret.Value) (int, []byte) {
	t.Helper()
	ca, err := pki.Load(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Root())
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "amtd.corp.example.com"}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	req, _ := http.NewRequest(method, "https://"+addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok.RevealString())
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}
