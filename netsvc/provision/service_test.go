package provision

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amtd/amt/rps"
	"amtd/amtsim"
	"amtd/daemon/config"
	"amtd/metrics"
	"amtd/netsvc"
	"amtd/store"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestServiceHelloAndAgent runs the [Provisioning] service as the daemon
// does: a device's hello is answered with activation, and an agent with the
// site's token activates another over the TLS endpoint.
func TestServiceHelloAndAgent(t *testing.T) {
	st := testStore(t)
	chain := newChain(t, "corp.example.com")
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "agent-token")
	if err := os.WriteFile(tokFile, []byte(enrolToken+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Site: config.Site{Domains: []string{"corp.example.com"}, Hostname: "amtd.corp.example.com"},
		Provisioning: config.Provisioning{Enable: true, HelloListen: freeAddr(t), AgentListen: freeAddr(t), AgentTokenFile: tokFile}}
	agentCert := newChain(t, "amtd.corp.example.com").cert
	lis := netsvc.NewListeners(nil)
	t.Cleanup(func() { lis.Close() })
	svc, err := New(cfg, netsvc.Deps{Store: st, Metrics: metrics.NewRegistry(), Listeners: lis}, Options{
		Chains:           ChainList{{Suffix: "corp.example.com", Cert: chain.cert, Root: chain.root}},
		AgentCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &agentCert, nil },
		Version:          "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := svc.Close(ctx); err != nil {
			t.Error(err)
		}
	}()
	// The service's hello listener connects back on 16993: the device
	// listens there on its own loopback address.
	ip := "127.0.1.30"
	d, err := amtsim.New(amtsim.Config{Net: amtsim.NetIdentity{Suffix: "corp.example.com", IP: mustAddr(ip)}, RemoteConfig: true,
		ExtraRootHashes: []amtsim.RootHash{chain.rootHash()}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := d.Listen(amtsim.ListenAddrs{TLS: ip + ":16993"})
	if err != nil {
		t.Fatalf("listen on %s:16993: %v", ip, err)
	}
	defer l.Close()
	dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	h, err := d.Hello(0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := h.MarshalBinary()
	hc, err := dl.Dial("tcp", cfg.Provisioning.HelloListen)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = hc.Write(b)
	hc.Close()
	waitFor(t, "the device in ACM", func() bool { return d.ControlMode() == amtsim.ModeACM })
	if !strings.Contains(svc.Status(), "agents on "+cfg.Provisioning.AgentListen) {
		t.Fatalf("status %q", svc.Status())
	}

	// An agent over wss with the token.
	if err := st.Profiles().Put(context.Background(), store.Profile{Name: "site-ccm", Settings: json.RawMessage(`{"mode":"ccm"}`)}, "test", ""); err != nil {
		t.Fatal(err)
	}
	d2 := newSimDevice(t)
	m := fakeRPC(t, fmt.Sprintf("wss://%s/activate", cfg.Provisioning.AgentListen), "activate --profile site-ccm", enrolToken, d2, nil)
	if m.Method != rps.MethodSuccess || d2.ControlMode() != amtsim.ModeCCM {
		t.Fatalf("agent: %s %q, mode %d", m.Method, m.Message, d2.ControlMode())
	}
}

func TestReadAgentToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		_ = os.Chmod(p, mode)
		return p
	}
	if v, err := ReadAgentToken(write("ok", "  "+enrolToken+"\n", 0o600)); err != nil || v.RevealString() != enrolToken {
		t.Fatalf("good file: %v", err)
	}
	for _, c := range []struct {
		path, want string
	}{
		{write("world", enrolToken, 0o644), "readable by every user"},
		{write("short", "abc", 0o600), "16 or more characters"},
		{write("two", enrolToken+" "+enrolToken, 0o600), "one token"},
		{filepath.Join(dir, "missing"), "amtd agent-token --out"},
	} {
		if _, err := ReadAgentToken(c.path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.path, err, c.want)
		}
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestServiceAgentTunnelConfig: [Provisioning] AgentTLSTrust= and
// AgentODCARoots= reach the agent server; a roots file that does not load
// stops the service from being built, naming the key.
func TestServiceAgentTunnelConfig(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "agent-token")
	if err := os.WriteFile(tokFile, []byte(enrolToken+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	root := newChain(t, "corp.example.com").root
	roots := filepath.Join(dir, "odca.crt")
	if err := os.WriteFile(roots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	site := newChain(t, "corp.example.com")
	agentCert := newChain(t, "amtd.corp.example.com").cert
	build := func(pv config.Provisioning) (*Service, error) {
		pv.Enable, pv.HelloListen, pv.AgentListen, pv.AgentTokenFile = true, freeAddr(t), freeAddr(t), tokFile
		cfg := &config.Config{Site: config.Site{Domains: []string{"corp.example.com"}, Hostname: "amtd.corp.example.com"}, Provisioning: pv}
		lis := netsvc.NewListeners(nil)
		t.Cleanup(func() { lis.Close() })
		return New(cfg, netsvc.Deps{Store: testStore(t), Metrics: metrics.NewRegistry(), Listeners: lis}, Options{
			Chains:           ChainList{{Suffix: "corp.example.com", Cert: site.cert, Root: site.root}},
			AgentCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &agentCert, nil },
		})
	}
	svc, err := build(config.Provisioning{AgentTLSTrust: "log", AgentODCARoots: roots})
	if err != nil {
		t.Fatal(err)
	}
	if svc.agent.TunnelTrust != TrustLog || len(svc.agent.ODCARoots) != 1 || !svc.agent.ODCARoots[0].Equal(root) {
		t.Fatalf("agent server got trust %q and %d roots, want log and the file's root", svc.agent.TunnelTrust, len(svc.agent.ODCARoots))
	}
	svc, err = build(config.Provisioning{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.agent.TunnelTrust != TrustODCA || len(svc.agent.ODCARoots) != 0 {
		t.Fatalf("defaults: trust %q, %d roots; want odca and none beyond Intel's", svc.agent.TunnelTrust, len(svc.agent.ODCARoots))
	}
	_, err = build(config.Provisioning{AgentODCARoots: filepath.Join(dir, "missing.crt")})
	if err == nil || !strings.Contains(err.Error(), "AgentODCARoots=") {
		t.Fatalf("a missing roots file: got %v, want an error naming AgentODCARoots=", err)
	}
}
