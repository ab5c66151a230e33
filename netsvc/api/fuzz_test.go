package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"amtd/daemon/config"
	"amtd/metrics"
	"amtd/netsvc"
	"amtd/pki"
	"amtd/store"
)

// FuzzHandler feeds raw HTTP requests, as a client would send them inside
// TLS, to the API handler over a real store. "TOKEN" in the input is
// replaced by a live viewer key so the fuzzer reaches past authentication.
// Every answer must be JSON with a status the API documents, and nothing
// without the key may get past 401.
func FuzzHandler(f *testing.F) {
	f.Add([]byte("GET /api/v1/devices?status=1&$top=5 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer TOKEN\r\n\r\n"))
	f.Add([]byte("GET /api/v1/devices/11111111-2222-3333-4444-555555555555 HTTP/1.1\r\nHost: x\r\nX-Api-Key: TOKEN\r\n\r\n"))
	f.Add([]byte("GET /api/v1/devices HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("GET /relay/webrelay.ashx?p=2&host=11111111-2222-3333-4444-555555555555&port=16994&tls=0&tls1only=0&mode=kvm HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: TOKEN\r\n\r\n"))

	dir := f.TempDir()
	opts := store.Options{Path: filepath.Join(dir, "amtd.db"), KeyFile: filepath.Join(dir, "master.key")}
	if err := store.GenerateKeyFile(opts.KeyFile); err != nil {
		f.Fatal(err)
	}
	st, err := store.Init(context.Background(), opts)
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	tok, _, err := st.APIKeys().Create(context.Background(), "fuzz", store.RoleViewer, "fuzz", "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	if _, _, err := pki.LoadOrInit(context.Background(), st, time.Now(), "fuzz", "fuzz"); err != nil {
		f.Fatal(err)
	}
	if err := st.Devices().Put(context.Background(), store.Device{UUID: "11111111-2222-3333-4444-555555555555", Hostname: "a"}); err != nil {
		f.Fatal(err)
	}
	cfg := &config.Config{}
	cfg.API.Listen = "127.0.0.1:0"
	svc, err := New(cfg, netsvc.Deps{Store: st, Listeners: netsvc.NewListeners(nil), Metrics: metrics.NewRegistry()},
		Options{Certificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, nil }})
	if err != nil {
		f.Fatal(err)
	}
	h := svc.Handler()
	documented := map[int]bool{200: true, 400: true, 401: true, 403: true, 404: true, 405: true, 413: true}

	f.Fuzz(func(t *testing.T, raw []byte) {
		authed := bytes.Contains(raw, []byte("TOKEN"))
		raw = bytes.ReplaceAll(raw, []byte("TOKEN"), tok.Reveal())
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return // net/http answers 400 itself
		}
		req.RemoteAddr = "192.0.2.1:1234"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if !documented[w.Code] {
			t.Fatalf("status %d for %q", w.Code, raw)
		}
		// POST /authorize answers 400 or 405 to requests without a key,
		// and hands back the key it was given.
		login := req.URL.Path == "/api/v1/authorize"
		// The relay checks its query (400, 405) before its token (401).
		relay := req.URL.Path == relayPath && (w.Code == 400 || w.Code == 405)
		if !authed && w.Code != 401 && !(login && w.Code != 200) && !relay {
			t.Fatalf("status %d without the key for %q", w.Code, raw)
		}
		switch ct := w.Header().Get("Content-Type"); {
		case ct == "application/json" && json.Valid(w.Body.Bytes()):
		case ct == "application/x-pem-file" && w.Code == 200: // /api/v1/ciracert
		default:
			t.Fatalf("%s answer %q to %q", ct, w.Body.String(), raw)
		}
		if !login && bytes.Contains(w.Body.Bytes(), tok.Reveal()) {
			t.Fatal("the token is in a response")
		}
	})
}
