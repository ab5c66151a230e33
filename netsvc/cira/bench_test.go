package cira

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"amtd/amt/apf"
	"amtd/metrics"
	"amtd/netsvc"
	"amtd/secret"
	"amtd/store"
)

// benchService serves on loopback with the fake directory: what is measured
// is TLS and APF, not the store.
func benchService(b *testing.B, dir *fakeDir) *Service {
	b.Helper()
	_, cert := testPKI(b)
	cfg := testConfig()
	s, err := New(cfg, netsvc.Deps{Metrics: metrics.NewRegistry(), Listeners: netsvc.NewListeners(nil)})
	if err != nil {
		b.Fatal(err)
	}
	s.dir, s.cert = dir, cert
	if err := s.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func benchLogin(b *testing.B, addr, uuid string) *client {
	raw, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	c, err := dialTLS(b, raw)
	if err != nil {
		b.Fatal(err)
	}
	c.login(uuid, "u", "p")
	c.forward(amtPorts...)
	c.expect(apfKeepaliveOptions)
	return c
}

var apfKeepaliveOptions = apf.KeepaliveOptionsRequest{Interval: 30, Timeout: 90}

// BenchmarkLogin is one device's connect: TCP, TLS 1.3 handshake with the
// appliance certificate (RSA-2048), APF login and seven forwards.
func BenchmarkLogin(b *testing.B) {
	dir := newFakeDir()
	dir.add(devA, "u", "p")
	s := benchService(b, dir)
	addr := s.ln.Addr().String()
	b.ResetTimer()
	for b.Loop() {
		c := benchLogin(b, addr, devA)
		c.raw.Close()
	}
}

// BenchmarkIdleLinks holds n authenticated links and reports the heap and
// goroutines each costs the server (spec/apf.md §10: "thousands of idle
// sockets" is an estimate nobody measured).
func BenchmarkIdleLinks(b *testing.B) {
	for _, n := range []int{100, 500} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			dir := newFakeDir()
			uuids := make([]string, n)
			for i := range uuids {
				uuids[i] = fmt.Sprintf("%08x-0506-0708-090a-0b0c0d0e0f10", i+1)
				dir.add(uuids[i], "u", "p")
			}
			s := benchService(b, dir)
			addr := s.ln.Addr().String()
			for b.Loop() {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				g0 := runtime.NumGoroutine()
				clients := make([]*client, n)
				for i, u := range uuids {
					clients[i] = benchLogin(b, addr, u)
				}
				for s.ConnectedDevices() != n {
					time.Sleep(time.Millisecond)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				// Both ends live in this process: the heap figure is client
				// and server together, an upper bound for the server's share.
				// The clients run no goroutines.
				b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/float64(n), "heap-B/link-both-ends")
				b.ReportMetric(float64(runtime.NumGoroutine()-g0)/float64(n), "goroutines/link")
				for _, c := range clients {
					c.raw.Close()
				}
				for s.ConnectedDevices() != 0 {
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
}

// BenchmarkCheckCredentialsStore is the store's side of a login: the device
// row and one argon2id check of the MPS password (19 MiB, 2 passes). It
// bounds how fast a site's devices can log in again after a restart, at
// maxAuthChecks at a time.
func BenchmarkCheckCredentialsStore(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	opts := store.Options{Path: filepath.Join(dir, "amtd.db"), KeyFile: filepath.Join(dir, "master.key")}
	if err := store.GenerateKeyFile(opts.KeyFile); err != nil {
		b.Fatal(err)
	}
	st, err := store.Init(ctx, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.Devices().Put(ctx, store.Device{UUID: devA, CIRA: store.CIRAState{MPSUsername: "u"}}); err != nil {
		b.Fatal(err)
	}
	if err := st.Secrets().SetPending(ctx, devA, store.MPS, secret.FromString("p"), "bench"); err != nil {
		b.Fatal(err)
	}
	d := storeDirectory{st: st}
	for b.Loop() {
		if u, p, err := d.CheckCredentials(ctx, devA, "u", []byte("p")); err != nil || !u || !p {
			b.Fatalf("check: %v %v %v", u, p, err)
		}
	}
}
