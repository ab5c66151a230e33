package api_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
	"amtd/store"
)

// TestDaemonWiringDisconnect: the API the daemon's service table builds
// drops a device's CIRA link through the CIRA service the table built
// (DELETE /api/v1/devices/disconnect), and the device comes back.
func TestDaemonWiringDisconnect(t *testing.T) {
	const conf = `[Site]
Domain=corp.example.com
Hostname=amtd.corp.example.com
Address=127.0.0.1

[CIRA]
Enable=yes
Listen=127.0.0.1:0

[API]
Enable=yes
Listen=127.0.0.1:0
`
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
	defer st.Close()
	if _, err := pki.Init(ctx, st, time.Now(), "amtd.corp.example.com", "test"); err != nil {
		t.Fatal(err)
	}
	tok, _, err := st.APIKeys().Create(ctx, "console", store.RoleOperator, "test", "test")
	if err != nil {
		t.Fatal(err)
	}
	api.AddSimDevice(t, st, api.SimUUID)
	cfg, err := config.Parse("amtd.conf", strings.NewReader(conf))
	if err != nil {
		t.Fatal(err)
	}
	lns := netsvc.NewListeners(nil)
	defer lns.Close()
	deps := netsvc.Deps{Store: st, Listeners: lns, Metrics: metrics.NewRegistry(), Version: "9.9"}
	var apiAddr string
	for _, s := range daemon.DefaultServices() {
		if s.Name != "cira" && s.Name != "api" {
			continue
		}
		svc, err := s.New(cfg, deps)
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
		if a, ok := svc.(interface{ Addr() string }); ok {
			apiAddr = a.Addr()
		}
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
	ciraAddr := ln.Addr().String()
	ln.Close()
	api.StartSimDevice(t, st, ciraAddr, api.SimUUID, nil)
	before, err := st.Devices().Get(ctx, api.SimUUID)
	if err != nil {
		t.Fatal(err)
	}

	ca, err := pki.Load(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Root())
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "amtd.corp.example.com"}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	req, _ := http.NewRequest("DELETE", "https://"+apiAddr+"/api/v1/devices/disconnect/"+api.SimUUID, nil)
	req.Header.Set("Authorization", "Bearer "+tok.RevealString())
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "disconnected") {
		t.Fatalf("disconnect through the daemon's CIRA service: %d %s", resp.StatusCode, body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		d, err := st.Devices().Get(ctx, api.SimUUID)
		if err == nil && d.CIRA.Connected && d.CIRA.ConnectedSince.After(before.CIRA.ConnectedSince) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new CIRA link after the disconnect: %+v", d.CIRA)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
