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
				// Stacks are the server's alone: the clients run no goroutines.
				b.ReportMetric(float64(after.StackInuse-before.StackInuse)/float64(n), "stack-B/link")
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

// BenchmarkChannelRead is one Dial, 1 MiB from the device through amtd's
// window (chanWindow; WINDOW_ADJUST per half window read), and Close, over
// loopback TLS: the rate a console or a large Enumerate gets through one
// channel.
func BenchmarkChannelRead(b *testing.B) {
	const size = 1 << 20
	dir := newFakeDir()
	dir.add(devA, "u", "p")
	s := benchService(b, dir)
	c := benchLogin(b, s.ln.Addr().String(), devA)
	defer c.raw.Close()
	go benchDevice(c, size)
	buf := make([]byte, 32<<10)
	ctx := context.Background()
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		ch, err := s.Dial(ctx, devA, 16992)
		if err != nil {
			b.Fatal(err)
		}
		for n := 0; n < size; {
			k, err := ch.Read(buf)
			if err != nil {
				b.Fatalf("after %d bytes: %v", n, err)
			}
			n += k
		}
		ch.Close()
	}
}

// benchDevice confirms every channel and sends size bytes on it within
// amtd's credits, in 4096-byte chunks as AMT does.
func benchDevice(c *client, size int) {
	type state struct{ peer, credits, left uint32 }
	chans := map[uint32]*state{}
	next := uint32(100)
	data := make([]byte, 4096)
	for {
		for _, st := range chans {
			for st.credits > 0 && st.left > 0 {
				n := min(st.credits, st.left, uint32(len(data)))
				if c.send(apf.ChannelData{RecipientChannel: st.peer, Data: data[:n]}) != nil {
					return
				}
				st.credits -= n
				st.left -= n
			}
		}
		m, err := c.read()
		if err != nil {
			return
		}
		switch m := m.(type) {
		case apf.ChannelOpen:
			next++
			chans[next] = &state{peer: m.SenderChannel, credits: m.InitialWindow, left: uint32(size)}
			_ = c.send(apf.ChannelOpenConfirmation{RecipientChannel: m.SenderChannel, SenderChannel: next, InitialWindow: 32768,
				Reserved: apf.ChannelOpenReserved})
		case apf.ChannelWindowAdjust:
			if st := chans[m.RecipientChannel]; st != nil {
				st.credits += m.BytesToAdd
			}
		case apf.ChannelClose:
			if st := chans[m.RecipientChannel]; st != nil {
				_ = c.send(apf.ChannelClose{RecipientChannel: st.peer})
				delete(chans, m.RecipientChannel)
			}
		}
	}
}
