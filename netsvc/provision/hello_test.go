package provision

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"amtd/amt/setupbin"
	"amtd/amtsim"
	"amtd/metrics"
	"amtd/store"
)

type helloRig struct {
	t     *testing.T
	store *store.Store
	reg   *metrics.Registry
	chain testChain
	hl    *HelloListener
	addr  netip.AddrPort // the hello listener
}

func newHelloRig(t *testing.T, limits HelloLimits, amtPort int) *helloRig {
	t.Helper()
	st := testStore(t)
	reg := metrics.NewRegistry()
	chain := newChain(t, "corp.example.com")
	hl := &HelloListener{
		Engine:   &Engine{Store: st, Metrics: reg, CallTimeout: 20 * time.Second},
		Chains:   ChainList{{Suffix: "corp.example.com", Cert: chain.cert, Root: chain.root}},
		Suffixes: func(netip.Addr) []string { return []string{"corp.example.com"} },
		AMTPort:  amtPort, Limits: limits, Metrics: reg,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hl.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return &helloRig{t: t, store: st, reg: reg, chain: chain, hl: hl, addr: netip.MustParseAddrPort(ln.Addr().String())}
}

func (r *helloRig) hellos(result string) float64 {
	return r.reg.CounterVec("amtd_hellos_total", "", "result").With(result).Value()
}

// freePort finds a port free on the 127.0.1.x addresses the devices use.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.1.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// device boots an amtsim device on ip:port with a USB key that points it
// at the hello listener and makes it trust root (spec/network.md §3.3).
func (r *helloRig) device(ip string, port int, root amtsim.RootHash) *amtsim.Device {
	r.t.Helper()
	d, err := amtsim.New(amtsim.Config{Net: amtsim.NetIdentity{Suffix: "corp.example.com", IP: netip.MustParseAddr(ip)}})
	if err != nil {
		r.t.Fatal(err)
	}
	l, err := d.Listen(amtsim.ListenAddrs{TLS: fmt.Sprintf("%s:%d", ip, port), Plain: ip + ":0", Redir: ip + ":0", RedirTLS: ip + ":0"})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { l.Close() })
	raw, _ := hex.DecodeString(root.Hex)
	vs, err := setupbin.Settings{CurrentMEBxPassword: "admin", NewMEBxPassword: "Usb!Mebx-pass1", PKIDNSSuffix: "corp.example.com",
		RootHash:   &setupbin.RootHash{Algorithm: 2, Hash: raw, Name: "site root"},
		ServerAddr: r.addr.Addr(), ServerPort: r.addr.Port(), Start: true}.Vars()
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := d.ApplySetupBin(&setupbin.File{Records: []setupbin.Record{{Flags: setupbin.RecordValid, Vars: vs}}}); err != nil {
		r.t.Fatal(err)
	}
	return d
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHelloActivatesDevices: devices set up by USB send hellos from their
// own addresses; amtd connects back to each and activates it in ACM with
// passwords only the store knows.
func TestHelloActivatesDevices(t *testing.T) {
	port := freePort(t)
	r := newHelloRig(t, HelloLimits{}, port)
	var devs []*amtsim.Device
	var addrs []string
	for i := range 4 {
		ip := fmt.Sprintf("127.0.1.%d", i+1)
		d := r.device(ip, port, r.chain.rootHash())
		devs, addrs = append(devs, d), append(addrs, fmt.Sprintf("%s:%d", ip, port))
		if _, err := d.SendHello(ctxT(t), 9971, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range devs {
		waitFor(t, "device "+d.UUID.String()+" in ACM", func() bool { return d.ControlMode() == amtsim.ModeACM })
	}
	waitFor(t, "activations to finish", func() bool { return r.hl.ActivationsRunning() == 0 })
	for i, d := range devs {
		uuid := d.UUID.String()
		waitFor(t, "device record activated", func() bool {
			rec, err := r.store.Devices().Get(context.Background(), uuid)
			return err == nil && rec.ProvisioningState == StateActivated
		})
		admin, err := r.store.Secrets().Current(context.Background(), uuid, store.AMTAdmin)
		if err != nil {
			t.Fatal(err)
		}
		rec, _ := r.store.Devices().Get(context.Background(), uuid)
		if err := r.hl.Engine.Verify(context.Background(), Target{UUID: uuid, Addr: addrs[i]}, admin); err != nil {
			t.Fatalf("stored password does not open %s: %v (record %+v)", uuid, err, rec)
		}
	}
	if v := r.hellos("accepted"); v != 4 {
		t.Fatalf("accepted %v hellos, want 4", v)
	}
}

// A device that trusts none of amtd's roots is recorded as waiting, with
// the reason in plain words, and its next hellos wait RetryAfter.
func TestHelloNoCertificate(t *testing.T) {
	port := freePort(t)
	r := newHelloRig(t, HelloLimits{RetryAfter: time.Hour}, port)
	other := newChain(t, "corp.example.com")
	d := r.device("127.0.1.9", port, other.rootHash())
	if _, err := d.SendHello(ctxT(t), 9971, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the hello handled", func() bool { return r.hellos("no-certificate") == 1 })
	waitFor(t, "the device's turn to end", func() bool {
		r.hl.mu.Lock()
		defer r.hl.mu.Unlock()
		return !r.hl.inflight[d.UUID.String()]
	})
	// The next hello comes before RetryAfter: it starts nothing.
	if _, err := d.SendHello(ctxT(t), 9971, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second hello held back", func() bool { return r.hellos("backoff") == 1 })
	if r.hellos("no-certificate") != 1 {
		t.Fatalf("no-certificate %v after the second hello", r.hellos("no-certificate"))
	}
	rec, err := r.store.Devices().Get(context.Background(), d.UUID.String())
	if err != nil {
		t.Fatal(err)
	}
	if rec.ProvisioningState != "waiting" || !strings.Contains(rec.LastError, "trusts none of the roots") ||
		len(rec.Addresses) != 1 || rec.Addresses[0].String() != "127.0.1.9" {
		t.Fatalf("device record %+v", rec)
	}
	if d.ControlMode() != amtsim.ModePreProvisioning {
		t.Fatal("device changed")
	}
}

func TestHelloPortAnswersHTTP(t *testing.T) {
	r := newHelloRig(t, HelloLimits{}, 16993)
	resp, err := http.Get("http://" + r.addr.String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "hello port") {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
}

// Garbage, oversize input and a flood from one source are dropped and
// counted; the listener goes on serving.
func TestHelloHostileInput(t *testing.T) {
	r := newHelloRig(t, HelloLimits{PerSource: 4}, 16993)
	send := func(b []byte) {
		c, err := net.Dial("tcp", r.addr.String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write(b)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, bufio.NewReader(c))
		c.Close()
	}
	send([]byte("\x03garbage that is no hello"))
	send(make([]byte, 20000))
	waitFor(t, "malformed and oversize counted", func() bool { return r.hellos("malformed") == 1 && r.hellos("oversize") == 1 })
	for range 4 {
		send([]byte("x"))
	}
	waitFor(t, "rate limit", func() bool { return r.hellos("dropped-rate") == 2 })
}

// With the relay configured and no profile saying otherwise, a device
// activated from its hello is also configured for CIRA (DefaultProfile).
func TestHelloActivatesThenConfiguresCIRA(t *testing.T) {
	port := freePort(t)
	r := newHelloRig(t, HelloLimits{}, port)
	_, rootDER, _ := testMPS(t, "amtd.corp.example.com")
	r.hl.Engine.CIRA = &CIRAConfig{Server: "amtd.corp.example.com", Port: 4433, RootDER: rootDER}
	d := r.device("127.0.1.20", port, r.chain.rootHash())
	if _, err := d.SendHello(ctxT(t), 9971, 0); err != nil {
		t.Fatal(err)
	}
	uuid := d.UUID.String()
	waitFor(t, "the device configured", func() bool {
		rec, err := r.store.Devices().Get(context.Background(), uuid)
		return err == nil && rec.ProvisioningState == StateConfigured
	})
	s := d.Snapshot()
	if d.ControlMode() != amtsim.ModeACM || len(s.MPServers) != 1 || s.MPServers[0].Username != MPSUsername(uuid) {
		t.Fatalf("mode %d, MPS %+v", d.ControlMode(), s.MPServers)
	}

	// A profile for this suffix without CIRA: the next device gets none.
	if err := r.store.Profiles().Put(context.Background(), store.Profile{Name: "no-cira", Settings: json.RawMessage(`{"mode":"acm","cira":false}`),
		MatchRules: json.RawMessage(`{"suffixes":["corp.example.com"]}`)}, "test", ""); err != nil {
		t.Fatal(err)
	}
	d2 := r.device("127.0.1.21", port, r.chain.rootHash())
	if _, err := d2.SendHello(ctxT(t), 9971, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second device activated", func() bool {
		rec, err := r.store.Devices().Get(context.Background(), d2.UUID.String())
		return err == nil && rec.ProvisioningState == StateActivated && r.hl.ActivationsRunning() == 0
	})
	if n := len(d2.Snapshot().MPServers); n != 0 {
		t.Fatalf("the no-CIRA profile's device has %d MPS entries", n)
	}
}
