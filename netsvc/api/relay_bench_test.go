package api

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"amtd/amt/guid"
	"amtd/amt/redir"
	"amtd/amt/wsman"
	"amtd/amtsim"
	"amtd/pki"
	"amtd/secret"
	"amtd/store"
	"amtd/tests/tools/relayclient"
)

// fleetUUID is the n-th simulated device of a benchmark fleet.
func fleetUUID(n int) string { return fmt.Sprintf("4c4c4544-0042-3510-8052-%012x", 0xb0000000+n) }

// startFleet starts n simulated devices of firmware version (as amtsim
// parses it) with redirection on, connected to ce's CIRA service, and
// waits until all are linked and the store shows their forwarded ports.
// Devices are set up in parallel: each costs the store an argon2id hash
// for its MPS password and the CIRA service another to check it.
func startFleet(tb testing.TB, ce *ciraEnv, n int, version string) []*amtsim.Device {
	tb.Helper()
	v, err := amtsim.ParseVersion(version)
	if err != nil {
		tb.Fatal(err)
	}
	ca, err := pki.Load(context.Background(), ce.st)
	if err != nil {
		tb.Fatal(err)
	}
	devs := make([]*amtsim.Device, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			uuid := fleetUUID(i)
			addSimDevice(tb, ce.st, uuid)
			u, _ := guid.Parse(uuid)
			d, err := amtsim.New(amtsim.Config{UUID: u, Version: v, Net: amtsim.NetIdentity{Suffix: "corp.example.com"},
				Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				errs <- err
				return
			}
			ha1 := md5.Sum([]byte("admin:" + d.Realm() + ":" + simAdminPass))
			if code := d.Setup(2, hex.EncodeToString(ha1[:])); code != 0 {
				errs <- fmt.Errorf("Setup: %d", code)
				return
			}
			if _, code := d.AddTrustedRootCertificate(base64.StdEncoding.EncodeToString(ca.RootDER())); code != 0 {
				errs <- fmt.Errorf("AddTrustedRootCertificate: %d", code)
				return
			}
			sap, code := d.AddMpServer(amtsim.MPServer{AccessInfo: "amtd.corp.example.com", InfoFormat: 201, Port: 4433, AuthMethod: 2,
				Username: simMPSUser, Password: simMPSPass, CN: "amtd.corp.example.com"})
			if code != 0 {
				errs <- fmt.Errorf("AddMpServer: %d", code)
				return
			}
			if _, code := d.AddRemoteAccessPolicyRule(2, 0, "AAAAAAAAABk=", sap); code != 0 {
				errs <- fmt.Errorf("AddRemoteAccessPolicyRule: %d", code)
				return
			}
			d.EnableCIRA(amtsim.CIRAOptions{DialAddr: ce.ciraAddr, BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second})
			devs[i] = d
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		for _, d := range devs {
			d.StopCIRA()
		}
	})
	deadline := time.Now().Add(time.Duration(n)*200*time.Millisecond + 30*time.Second)
	for ce.cira.ConnectedDevices() < n {
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d devices linked", ce.cira.ConnectedDevices(), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	redirPortFor := uint16(redirPort)
	if !v.NonTLSRemote() {
		redirPortFor = redirTLSPort
	}
	waitUntil(tb, "the store to show the devices' redirection port", func() bool {
		d, err := ce.st.Devices().Get(context.Background(), fleetUUID(n-1))
		return err == nil && slices.Contains(d.CIRA.BoundPorts, redirPortFor)
	})
	// Redirection on, over WS-Man (16993 with TLS inside the channel when
	// the firmware forwards no plain port).
	var ewg sync.WaitGroup
	for i := range n {
		ewg.Add(1)
		sem <- struct{}{}
		go func() {
			defer ewg.Done()
			defer func() { <-sem }()
			enableRedirectionOn(tb, ce.cira, fleetUUID(i), v.NonTLSRemote())
		}()
	}
	ewg.Wait()
	return devs
}

// enableRedirectionOn is enableRedirection over 16992, or 16993 with TLS
// inside the channel.
func enableRedirectionOn(tb testing.TB, dial DeviceDialer, uuid string, plain bool) {
	if plain {
		enableRedirection(tb, dial, uuid)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := wsman.NewClient(func(ctx context.Context) (net.Conn, error) {
		ch, err := dial.Dial(ctx, uuid, 16993)
		if err != nil {
			return nil, err
		}
		tc := tls.Client(ch, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // amtsim's self-signed listener
		if err := tc.HandshakeContext(ctx); err != nil {
			ch.Close()
			return nil, err
		}
		return tc, nil
	}, wsman.Credentials{Host: uuid + ":16993", Username: "admin", Password: secret.FromString(simAdminPass)})
	for _, step := range []func() error{
		func() error { return c.RequestStateChange(ctx, "AMT_RedirectionService", 32771) },
		func() error {
			var inst wsman.Instance
			if err := c.Get(ctx, "AMT_RedirectionService", &inst); err != nil {
				return err
			}
			inst.Set("ListenerEnabled", "true")
			_, err := c.Put(ctx, "AMT_RedirectionService", inst)
			return err
		},
		func() error { return c.RequestStateChange(ctx, "CIM_KVMRedirectionSAP", 2) },
	} {
		if err := step(); err != nil {
			tb.Error(err)
			return
		}
	}
}

// directTLS serves the devices' redirection and WS-Man over plain TLS
// loopback connections, bypassing amtd: the baseline the relay is
// compared with. It returns dialers by device index.
type directTLS struct {
	ln   net.Listener
	devs []*amtsim.Device
}

func newDirectTLS(tb testing.TB, devs []*amtsim.Device) *directTLS {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	dt := &directTLS{ln: ln, devs: devs}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go dt.serve(c)
		}
	}()
	return dt
}

// serve reads a 3-byte preamble: device index (2 bytes) and 'R'
// (redirection) or 'W' (WS-Man), then runs TLS with the device's own
// listener configuration.
func (dt *directTLS) serve(c net.Conn) {
	var pre [3]byte
	if _, err := io.ReadFull(c, pre[:]); err != nil {
		c.Close()
		return
	}
	i := int(pre[0])<<8 | int(pre[1])
	if i >= len(dt.devs) {
		c.Close()
		return
	}
	d := dt.devs[i]
	tc := tls.Server(c, d.TLSConfig())
	if pre[2] == 'R' {
		d.ServeRedirection(tc)
	} else {
		d.ServeWSMan(tc, amtsim.Session{})
	}
}

// consoleRcvBuf is the consoles' socket receive buffer in the KVM
// benchmark, the same on both paths: otherwise loopback autotuning lets
// each connection hold megabytes the simulators wrote ahead.
const consoleRcvBuf = 64 << 10

func (dt *directTLS) dial(ctx context.Context, i int, kind byte) (net.Conn, error) {
	d := net.Dialer{}
	relayclient.WithReadBuffer(consoleRcvBuf)(&d)
	c, err := d.DialContext(ctx, "tcp", dt.ln.Addr().String())
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte{byte(i >> 8), byte(i), kind}); err != nil {
		c.Close()
		return nil, err
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // amtsim's self-signed listener
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

// kvmSessions opens one KVM session per device: through amtd's relay, or
// straight to the device over TLS.
func kvmSessions(tb testing.TB, ce *ciraEnv, dt *directTLS, n int, relay bool) []*relayclient.Session {
	tb.Helper()
	op := ce.key(store.RoleOperator, "bench-"+strconv.FormatBool(relay))
	out := make([]*relayclient.Session, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var c io.ReadWriteCloser
			var err error
			if relay {
				var tok string
				if tok, err = relayclient.Token(ctx, ce.client, ce.base, op, fleetUUID(i)); err == nil {
					c, err = relayclient.Dial(ctx, ce.svc.Addr(), ce.relayTLS(), tok, fleetUUID(i), "kvm", nil,
						relayclient.WithReadBuffer(consoleRcvBuf))
				}
			} else {
				c, err = dt.dial(ctx, i, 'R')
			}
			if err != nil {
				tb.Error(err)
				return
			}
			// Through amtd the console knows no password; straight to the
			// device it must.
			user, pw := "", ""
			if !relay {
				user, pw = "admin", simAdminPass
			}
			s, err := relayclient.Authenticate(c, redir.SessionKVM, user, pw)
			if err == nil {
				err = s.StartKVM()
			}
			if err != nil {
				c.Close()
				tb.Error(err)
				return
			}
			out[i] = s
		}()
	}
	wg.Wait()
	if tb.Failed() {
		tb.FailNow()
	}
	tb.Cleanup(func() {
		for _, s := range out {
			s.Close()
		}
	})
	return out
}

// benchKVM measures steady-state throughput: every session reads its
// stream continuously; after a warm-up that drains what the simulators
// wrote ahead into socket buffers and channel windows while the sessions
// were opening, each op is a half-second window whose bytes are counted.
// The figure is MB/s_total (all sessions together) and MB/s_session.
func benchKVM(b *testing.B, ss []*relayclient.Session) {
	counts := make([]atomic.Int64, len(ss))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, s := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := s.R.Read(buf)
				counts[i].Add(int64(n))
				if err != nil {
					select {
					case <-stop:
					default:
						b.Error(err)
					}
					return
				}
			}
		}()
	}
	total := func() int64 {
		var t int64
		for i := range counts {
			t += counts[i].Load()
		}
		return t
	}
	time.Sleep(2*time.Second + time.Duration(len(ss))*10*time.Millisecond)
	start, t0 := total(), time.Now()
	for b.Loop() {
		time.Sleep(500 * time.Millisecond)
	}
	el, got := time.Since(t0), total()-start
	close(stop)
	// Close all at once: a TLS close waits up to 5 s to send its
	// close_notify to a peer that has stopped reading.
	var cwg sync.WaitGroup
	for _, s := range ss {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			if d, ok := s.ReadWriteCloser.(interface{ SetDeadline(time.Time) error }); ok {
				_ = d.SetDeadline(time.Now())
			}
			s.Close()
		}()
	}
	cwg.Wait()
	wg.Wait()
	b.ReportMetric(float64(got)/el.Seconds()/1e6, "MB/s_total")
	b.ReportMetric(float64(got)/el.Seconds()/1e6/float64(len(ss)), "MB/s_session")
}

// BenchmarkRelayKVM: the KVM stream of simulated devices read by consoles
// through amtd (WSS → relay → CIRA channel → amtsim) against the same
// devices read over a plain TLS connection, one session and many at once,
// in the same run. AMTD_BENCH_SESSIONS sets the "many" (default 100).
func BenchmarkRelayKVM(b *testing.B) {
	many := 100
	if v, err := strconv.Atoi(os.Getenv("AMTD_BENCH_SESSIONS")); err == nil && v > 0 {
		many = v
	}
	for _, n := range []int{1, many} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			ce := newCIRAEnv(b)
			setup := time.Now()
			devs := startFleet(b, ce, n, "16")
			dt := newDirectTLS(b, devs)
			b.Logf("%d devices set up in %s", n, time.Since(setup).Round(time.Second))
			for _, path := range []string{"relay", "tls"} {
				b.Run(path, func(b *testing.B) {
					setup := time.Now()
					ss := kvmSessions(b, ce, dt, n, path == "relay")
					b.Logf("%d sessions opened in %s", n, time.Since(setup).Round(time.Millisecond))
					benchKVM(b, ss)
				})
			}
		})
	}
}

// percentiles reports p50 and p99 of ds.
func percentiles(b *testing.B, ds []time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	if len(ds) == 0 {
		return
	}
	p := func(q float64) float64 {
		return float64(ds[min(len(ds)-1, int(q*float64(len(ds))))].Microseconds()) / 1000
	}
	b.ReportMetric(p(0.50), "p50_ms")
	b.ReportMetric(p(0.99), "p99_ms")
}

// BenchmarkWSManRoundTrip: the WS-Man work of GET /api/v1/amt/power/state
// (an Enumerate and a Get, each with digest authentication on a new
// connection, as amtd does per call) through amtd's API and CIRA link,
// through the CIRA link alone (no HTTP API), and straight to the same
// simulated device over TLS; p50 and p99.
func BenchmarkWSManRoundTrip(b *testing.B) {
	ce := newCIRAEnv(b)
	devs := startFleet(b, ce, 1, "16")
	dt := newDirectTLS(b, devs)
	viewer := ce.key(store.RoleViewer, "bench")
	uuid := fleetUUID(0)
	powerState := func(c *wsman.Client) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := c.Enumerate(ctx, "CIM_AssociatedPowerManagementService"); err != nil {
			return err
		}
		var ips wsman.Instance
		return c.Get(ctx, "IPS_PowerManagementService", &ips)
	}
	creds := wsman.Credentials{Host: uuid + ":16992", Username: "admin", Password: secret.FromString(simAdminPass)}
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"api+cira", func() error {
			req, _ := http.NewRequest("GET", ce.base+"/api/v1/amt/power/state/"+uuid, nil)
			req.Header.Set("Authorization", "Bearer "+viewer)
			resp, err := ce.client.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}},
		{"cira", func() error {
			return powerState(wsman.NewClient(func(ctx context.Context) (net.Conn, error) { return ce.cira.Dial(ctx, uuid, wsmanPort) }, creds))
		}},
		{"tls", func() error {
			return powerState(wsman.NewClient(func(ctx context.Context) (net.Conn, error) { return dt.dial(ctx, 0, 'W') }, creds))
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var ds []time.Duration
			for b.Loop() {
				t0 := time.Now()
				if err := c.call(); err != nil {
					b.Fatal(err)
				}
				ds = append(ds, time.Since(t0))
			}
			percentiles(b, ds)
		})
	}
}
