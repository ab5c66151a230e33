package amtsim

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"amtd/amt/hello"
)

// TestHelloSent runs a real DNS server (miekg/dns) that answers only
// ProvisionServer.<suffix>, a TCP listener in place of amtd's 9971, and
// checks the device resolves the name (after trying the single label),
// then sends hellos with an increasing retry count carrying its UUID and
// trusted hashes (spec/activation.md §2, spec/network.md §2).
func TestHelloSent(t *testing.T) {
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hl.Close()
	var mu sync.Mutex
	var queries []string
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		mu.Lock()
		queries = append(queries, strings.ToLower(q.Name))
		mu.Unlock()
		if strings.EqualFold(q.Name, "provisionserver.corp.example.com.") && q.Qtype == dns.TypeA {
			rr, _ := dns.NewRR(q.Name + " 60 IN A 127.0.0.1")
			m.Answer = append(m.Answer, rr)
		} else {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	defer srv.Shutdown()

	extra := RootHash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	dnsAddr := netip.MustParseAddrPort(pc.LocalAddr().String())
	d := newTestDevice(t, Config{RemoteConfig: true, ExtraRootHashes: []RootHash{extra},
		Net: NetIdentity{Suffix: "corp.example.com", DNS: dnsAddr}})

	got := make(chan []byte, 4)
	go func() {
		for {
			c, err := hl.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			b, _ := io.ReadAll(io.LimitReader(c, hello.MaxLen))
			c.Close()
			got <- b
		}
	}()
	port := hl.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sent := d.RunHellos(ctx, HelloSchedule{Interval: 10 * time.Millisecond, MaxInterval: 20 * time.Millisecond, Attempts: 3, Port: port})
	if sent != 3 {
		t.Fatalf("%d hellos sent, want 3", sent)
	}
	for retry := range 3 {
		h, err := hello.Parse(<-got)
		if err != nil {
			t.Fatal(err)
		}
		if h.RetryCount != uint32(retry) || h.UUID != d.UUID || len(h.Hashes) != 24 || h.Hashes[23].Hex() != extra.Hex {
			t.Fatalf("hello %d: retry %d uuid %s %d hashes", retry, h.RetryCount, h.UUID, len(h.Hashes))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(queries) < 2 || queries[0] != "provisionserver." || queries[1] != "provisionserver.corp.example.com." {
		t.Fatalf("queries %v: want the single label first, then provisionserver.<suffix>", queries)
	}
	// Once provisioned, no more hellos.
	d.Setup(2, ha1("admin", d.Realm(), "P@ssw0rd1"))
	if n := d.RunHellos(ctx, HelloSchedule{Interval: time.Millisecond, Attempts: 3, Port: port}); n != 0 {
		t.Fatalf("%d hellos from a provisioned device", n)
	}
}

func TestReadLease(t *testing.T) {
	dir := t.TempDir()
	dh := filepath.Join(dir, "dhclient.leases")
	os.WriteFile(dh, []byte(`lease {
  interface "veth1";
  fixed-address 10.9.0.50;
  option domain-name-servers 10.9.0.1, 10.9.0.2;
  option domain-name "old.example";
}
lease {
  interface "veth1";
  fixed-address 10.9.0.51;
  option domain-name-servers 10.9.0.1;
  option domain-name "corp.example.com";
}
`), 0o600)
	n, err := ReadLease(dh)
	if err != nil {
		t.Fatal(err)
	}
	if n.IP.String() != "10.9.0.51" || n.Suffix != "corp.example.com" || n.DNS.String() != "10.9.0.1:53" {
		t.Fatalf("dhclient lease read as %+v", n)
	}
	ud := filepath.Join(dir, "udhcpc.env")
	os.WriteFile(ud, []byte("interface=veth1\nip=10.9.0.60\ndns=10.9.0.1 10.9.0.2\ndomain=corp.example.com\n"), 0o600)
	n, err = ReadLease(ud)
	if err != nil {
		t.Fatal(err)
	}
	if n.IP.String() != "10.9.0.60" || n.Suffix != "corp.example.com" || n.DNS.String() != "10.9.0.1:53" {
		t.Fatalf("udhcpc env read as %+v", n)
	}
	if _, err := ReadLease(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing lease file read")
	}
}
