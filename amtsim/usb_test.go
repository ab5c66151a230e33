package amtsim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"amtd/amt/hello"
	"amtd/amt/setupbin"
)

func writeSetupBin(t *testing.T, recs ...setupbin.Settings) string {
	t.Helper()
	f := &setupbin.File{}
	for _, s := range recs {
		vs, err := s.Vars()
		if err != nil {
			t.Fatal(err)
		}
		f.Records = append(f.Records, setupbin.Record{Flags: setupbin.RecordValid | setupbin.RecordScrambled, Vars: vs})
	}
	b, err := setupbin.Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "setup.bin")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// helloSink accepts hellos on loopback and hands each one's bytes over.
func helloSink(t *testing.T) (port uint16, got chan []byte) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	got = make(chan []byte, 8)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			b, _ := io.ReadAll(io.LimitReader(c, hello.MaxLen))
			c.Close()
			got <- b
		}
	}()
	return uint16(l.Addr().(*net.TCPAddr).Port), got
}

func recvHello(t *testing.T, got chan []byte) *hello.Hello {
	t.Helper()
	select {
	case b := <-got:
		h, err := hello.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		return h
	case <-time.After(15 * time.Second):
		t.Fatal("no hello arrived")
	}
	return nil
}

// TestUSBSetupBareMetal: the bare-metal recipe of spec/network.md §3.3 on a
// factory-fresh device, which has no DNS server at all: after the key, it
// trusts the appliance root, carries the PKI DNS suffix, and sends its hello
// straight to the configured address and port (IRG step 1, spec/network.md §2).
func TestUSBSetupBareMetal(t *testing.T) {
	port, got := helloSink(t)
	sum := sha256.Sum256([]byte("appliance root"))
	rec := func(pw string) setupbin.Settings {
		return setupbin.Settings{CurrentMEBxPassword: "admin", NewMEBxPassword: pw, PKIDNSSuffix: "site.example.com",
			ConfigServerFQDN: "site.example.com", RootHash: &setupbin.RootHash{Algorithm: 2, Hash: sum[:], Name: "amtd"},
			ServerAddr: netip.MustParseAddr("127.0.0.1"), ServerPort: port, Start: true}
	}
	key := writeSetupBin(t, rec("Rec0rd-One!"), rec("Rec0rd-Two!"))

	d1 := newTestDevice(t, Config{})
	if d1.setupOpen() {
		t.Fatal("a factory device without RemoteConfig is open for setup")
	}
	res, err := d1.ApplySetupBinFile(key)
	if err != nil {
		t.Fatal(err)
	}
	s := d1.Snapshot()
	if res.Record != 1 || s.MEBxPassword != "Rec0rd-One!" || s.TrustedDNSSuffix != "site.example.com" || s.ProvServerIP != "127.0.0.1" || s.ProvServerPort != int(port) || !d1.setupOpen() {
		t.Fatalf("after record %d: %+v", res.Record, s)
	}
	if _, err := d1.SendHello(context.Background(), 9971, 0); err != nil {
		t.Fatal(err)
	}
	h := recvHello(t, got)
	want := hex.EncodeToString(sum[:])
	var found bool
	for _, x := range h.Hashes {
		found = found || (x.Type == hello.SHA256 && x.Hex() == want)
	}
	if h.UUID != d1.UUID || !found {
		t.Fatalf("hello %v lacks the setup.bin root hash %s", h, want)
	}

	// The key was written back: the next machine takes record 2, a third finds none.
	d2 := newTestDevice(t, Config{})
	if res, err := d2.ApplySetupBinFile(key); err != nil || res.Record != 2 || d2.Snapshot().MEBxPassword != "Rec0rd-Two!" {
		t.Fatalf("second machine: record %d, %v", res.Record, err)
	}
	d3 := newTestDevice(t, Config{})
	before := d3.Snapshot()
	if _, err := d3.ApplySetupBinFile(key); err == nil || !strings.Contains(err.Error(), "every record is consumed") {
		t.Fatalf("third machine: %v", err)
	}
	if after := d3.Snapshot(); after.RemoteConfigEnabled || len(after.UserHashes) != len(before.UserHashes) {
		t.Fatal("a refused key changed the device")
	}
}

// A record whose current MEBx password is wrong, or whose new one breaks the
// rule, is refused: the device is unchanged and the record stays for the
// next machine.
func TestUSBSetupRefused(t *testing.T) {
	good := setupbin.Settings{CurrentMEBxPassword: "admin", NewMEBxPassword: "Rec0rd-One!", PKIDNSSuffix: "site.example.com", Start: true}
	for _, c := range []struct {
		name   string
		rec    setupbin.Settings
		device func(d *Device)
		want   string
	}{
		{"wrong current password", func() setupbin.Settings { s := good; s.CurrentMEBxPassword = "N0t-admin!"; return s }(), nil, "does not match"},
		{"weak new password", func() setupbin.Settings { s := good; s.NewMEBxPassword = "password"; return s }(), nil, "new MEBx password"},
		{"provisioned device", good, func(d *Device) { d.mu.Lock(); d.s.ControlMode = ModeACM; d.mu.Unlock() }, "pre-provisioning only"},
	} {
		t.Run(c.name, func(t *testing.T) {
			key := writeSetupBin(t, c.rec)
			before, _ := os.ReadFile(key)
			d := newTestDevice(t, Config{})
			if c.device != nil {
				c.device(d)
			}
			snap := d.Snapshot()
			if _, err := d.ApplySetupBinFile(key); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v, want %q", err, c.want)
			}
			after := d.Snapshot()
			if after.MEBxPassword != snap.MEBxPassword || after.TrustedDNSSuffix != snap.TrustedDNSSuffix || after.RemoteConfigEnabled != snap.RemoteConfigEnabled {
				t.Fatalf("refused record changed the device: %+v", after)
			}
			if b, _ := os.ReadFile(key); !bytes.Equal(b, before) {
				t.Fatal("refused record was consumed")
			}
		})
	}
}

// With an SCA FQDN and no address, the device resolves the FQDN, not
// ProvisionServer (spec/network.md §2 step 2.1).
func TestUSBSetupFQDN(t *testing.T) {
	port, got := helloSink(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	queries := make(chan string, 8)
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		queries <- strings.ToLower(r.Question[0].Name)
		if strings.EqualFold(r.Question[0].Name, "sca.site.example.com.") {
			rr, _ := dns.NewRR(r.Question[0].Name + " 60 IN A 127.0.0.1")
			m.Answer = append(m.Answer, rr)
		} else {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })

	key := writeSetupBin(t, setupbin.Settings{ConfigServerFQDN: "sca.site.example.com", ServerPort: port, Start: true})
	d := newTestDevice(t, Config{Net: NetIdentity{Suffix: "corp.example.com", DNS: netip.MustParseAddrPort(pc.LocalAddr().String())}})
	if _, err := d.ApplySetupBinFile(key); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SendHello(context.Background(), 9971, 0); err != nil {
		t.Fatal(err)
	}
	recvHello(t, got)
	if q := <-queries; q != "sca.site.example.com." {
		t.Fatalf("device asked %q first, want the SCA FQDN", q)
	}
}
