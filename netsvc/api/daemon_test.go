package api_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amtd/daemon"
	"amtd/daemon/config"
	"amtd/metrics"
	"amtd/netsvc"
	"amtd/pki"
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
