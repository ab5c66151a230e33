package dns

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"amtd/daemon/config"
	"amtd/netsvc"
	"amtd/store"
)

// namedServer is a real BIND named, primary for site.test, that takes
// updates signed with one key.
type namedServer struct {
	addr string
	ip   string
	port int
	log  *logBuffer
}

func startNamed(t *testing.T, keyName string, key []byte) *namedServer {
	t.Helper()
	bin := needTool(t, "named", "bind9")
	dir := t.TempDir()
	ip := "127.0.0.1" // named listens only on addresses its interface scan finds
	port := freePort(t, ip)
	zone := `$TTL 300
@	IN SOA ns.site.test. hostmaster.site.test. 1 3600 600 86400 60
	IN NS ns.site.test.
ns	IN A 127.0.0.1
`
	conf := fmt.Sprintf(`options {
	directory "%[1]s";
	pid-file none;
	session-keyfile none;
	managed-keys-directory "%[1]s";
	listen-on port %[2]d { %[3]s; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	notify no;
};
controls { };
key "%[4]s" { algorithm hmac-sha256; secret "%[5]s"; };
zone "site.test" { type primary; file "%[1]s/site.test.zone"; allow-update { key "%[4]s"; }; };
`, dir, port, ip, keyName, base64.StdEncoding.EncodeToString(key))
	for name, body := range map[string]string{"named.conf": conf, "site.test.zone": zone} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n := &namedServer{addr: fmt.Sprintf("%s:%d", ip, port), ip: ip, port: port, log: &logBuffer{}}
	args := []string{"-g", "-4", "-n", "1", "-c", filepath.Join(dir, "named.conf")}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root")
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = n.log, n.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting named: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("named exited:\n%s", n.log)
		default:
		}
		if strings.Contains(n.log.String(), "all zones loaded") && answersSOA(n.addr) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("named did not start in 15 s:\n%s", n.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return n
}

func regTestConfig(server string) *config.Config {
	cfg := baseConfig()
	cfg.Registrar = config.DNSRegistrar{Enable: true, Server: server, Zone: "site.test", Key: "amtd-reg", Interval: time.Hour, TTL: 2 * time.Minute}
	return cfg
}

// TestRegistrarBIND registers ProvisionServer at a real named with TSIG,
// sees it with dig, and reports a wrong key with the server's rcode.
func TestRegistrarBIND(t *testing.T) {
	key := []byte("registrar secret of 32 bytes....")
	n := startNamed(t, "amtd-reg", key)
	st, _ := testStore(t)
	putTSIG(t, st, "amtd-reg", key)
	logs := &logBuffer{}
	deps := netsvc.Deps{Log: slog.New(slog.NewTextHandler(logs, nil)), Store: st}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("registrar log:\n%s\nnamed log:\n%s", logs, n.log)
		}
	})

	r, err := NewRegistrar(regTestConfig(n.addr), deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	eventually(t, 10*time.Second, "registration at named", func() bool { return strings.Contains(r.Status(), " → ") })
	if err := r.Health(context.Background()); err != nil {
		t.Fatalf("healthy registrar reports %v", err)
	}
	if !strings.Contains(r.Status(), "127.0.0.10, fd00::10") {
		t.Fatalf("status %q does not show the registered addresses", r.Status())
	}
	out := digAt(t, n.ip, n.port, "provisionserver.site.test", "A")
	// named keeps the case the record was registered with.
	if got := answers(out); !sameSet(got, []string{"ProvisionServer.site.test. A 127.0.0.10"}) {
		t.Fatalf("named answers %q for ProvisionServer A\n%s", got, out)
	}
	if got := answers(digAt(t, n.ip, n.port, "ProvisionServer.site.test", "AAAA")); !sameSet(got, []string{"ProvisionServer.site.test. AAAA fd00::10"}) {
		t.Fatalf("named answers %q for ProvisionServer AAAA", got)
	}
	recs, err := st.DNSRecords().List(context.Background(), store.SourceRegistrar)
	if err != nil || len(recs) != 2 {
		t.Fatalf("store has %+v (err %v), want the two registered records", recs, err)
	}

	// The appliance's address changes: a reload registers the new one.
	cfg := regTestConfig(n.addr)
	cfg.Site.Addresses = []netip.Addr{netip.MustParseAddr("127.0.0.11")}
	if err := r.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "re-registration after the address changed", func() bool {
		return sameSet(answers(digAt(t, n.ip, n.port, "ProvisionServer.site.test", "A")), []string{"ProvisionServer.site.test. A 127.0.0.11"})
	})
	if got := answers(digAt(t, n.ip, n.port, "ProvisionServer.site.test", "AAAA")); len(got) != 0 {
		t.Fatalf("old AAAA left at named: %q", got)
	}

	// The key in the store no longer matches named's: NOTAUTH, reported.
	putTSIG(t, st, "amtd-reg", []byte("a different secret of 32 bytes.."))
	cfg.Site.Addresses = []netip.Addr{netip.MustParseAddr("127.0.0.12")}
	if err := r.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	want := "NOTAUTH: TSIG key rejected by " + n.addr
	eventually(t, 10*time.Second, "the failure in Status", func() bool { return strings.Contains(r.Status(), want) })
	if err := r.Health(context.Background()); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Health = %v, want %q", err, want)
	}
	if !strings.Contains(logs.String(), want) {
		t.Fatalf("failure not logged:\n%s", logs)
	}
	if got := answers(digAt(t, n.ip, n.port, "ProvisionServer.site.test", "A")); !sameSet(got, []string{"ProvisionServer.site.test. A 127.0.0.11"}) {
		t.Fatalf("a rejected update changed named's record: %q", got)
	}
	for _, secretText := range []string{string(key), base64.StdEncoding.EncodeToString(key)} {
		if strings.Contains(logs.String(), secretText) || strings.Contains(r.Status(), secretText) {
			t.Fatal("the TSIG secret appears in the logs or status")
		}
	}
}

// TestRegistrarMissingKey: no key in the store is a failure that says how
// to add one.
func TestRegistrarMissingKey(t *testing.T) {
	st, _ := testStore(t)
	r, err := NewRegistrar(regTestConfig("127.0.0.1:1"), netsvc.Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	eventually(t, 5*time.Second, "the failure", func() bool { return r.Health(context.Background()) != nil })
	if err := r.Health(context.Background()); !strings.Contains(err.Error(), "amtd dns tsig add amtd-reg") {
		t.Fatalf("Health = %v, want a hint to add the key", err)
	}
}

func TestRegistrarConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*config.DNSRegistrar)
		want string
	}{
		{"no server", func(r *config.DNSRegistrar) { r.Server = "" }, "Server= is required"},
		{"server by name", func(r *config.DNSRegistrar) { r.Server = "ns.example:53" }, "not an IP address"},
		{"no key", func(r *config.DNSRegistrar) { r.Key = "" }, "Key= is required"},
		{"md5", func(r *config.DNSRegistrar) { r.Algorithm = "hmac-md5" }, "is not hmac-sha224"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := regTestConfig("127.0.0.1:53")
			tc.edit(&cfg.Registrar)
			if _, err := NewRegistrar(cfg, netsvc.Deps{}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// answersSOA reports whether a server at addr answers site.test SOA.
func answersSOA(addr string) bool {
	m := new(dns.Msg)
	m.SetQuestion("site.test.", dns.TypeSOA)
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	r, _, err := c.Exchange(m, addr)
	return err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1
}
