package amtsim

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"amtd/amt/digest"
	"amtd/amt/wsman"
	"amtd/secret"
)

func listen(t *testing.T, d *Device) *Listeners {
	t.Helper()
	l, err := d.Listen(ListenAddrs{TLS: "127.0.0.1:0", Plain: "127.0.0.1:0", Redir: "127.0.0.1:0", RedirTLS: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func tlsDialer(addr net.Addr, certs ...tls.Certificate) wsman.Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, Certificates: certs}} //nolint:gosec // AMT's self-signed certificate
		return d.DialContext(ctx, "tcp", addr.String())
	}
}

func plainDialer(addr net.Addr) wsman.Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr.String())
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestWSManClientAgainstDevice drives a provisioned device through digest
// auth, an Enumerate/Pull of several pages, a method call and a fault.
func TestWSManClientAgainstDevice(t *testing.T) {
	faults := &Faults{MaxPullItems: 3}
	d := newTestDevice(t, Config{Version: defaultBuilds[15], Faults: faults})
	if code := d.Setup(2, ha1("admin", d.Realm(), "P@ssw0rd1")); code != 0 {
		t.Fatal(code)
	}
	l := listen(t, d)
	if l.Plain == nil {
		t.Fatal("AMT 15 has 16992 open")
	}
	ctx := ctxT(t)
	c := wsman.NewClient(plainDialer(l.Plain), wsman.Credentials{Host: d.UUID.String() + ":16992", Username: "admin", Password: secret.FromString("P@ssw0rd1")})

	var gs wsman.AMTGeneralSettings
	if err := c.Get(ctx, "AMT_GeneralSettings", &gs); err != nil {
		t.Fatal(err)
	}
	if gs.DigestRealm != d.Realm() {
		t.Fatalf("DigestRealm %q, want %q", gs.DigestRealm, d.Realm())
	}
	before := faults.calls.Load()
	items, err := c.Enumerate(ctx, "CIM_SoftwareIdentity")
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 11 {
		t.Fatalf("%d items, want 11", len(items))
	}
	if calls := faults.calls.Load() - before; calls != 1+4 {
		t.Fatalf("%d calls for Enumerate + Pulls, want 5 (pages of 3 of 11 items)", calls)
	}
	var sawAMT bool
	for _, in := range items {
		if in.Value("InstanceID") == "AMT" {
			sawAMT = in.Value("VersionString") == "15.0.23"
		}
	}
	if !sawAMT {
		t.Fatal("CIM_SoftwareIdentity AMT does not report the device version 15.0.23")
	}
	in := wsman.RequestPowerStateChangeInput{PowerState: 8, ManagedElement: wsman.ManagedSystem()}
	if err := c.Invoke(ctx, "CIM_PowerManagementService", "RequestPowerStateChange", in.Params(), nil); err != nil {
		t.Fatal(err)
	}
	if d.PowerState() != 8 {
		t.Fatalf("power state %d after power-off", d.PowerState())
	}
	var f *wsman.Fault
	err = c.Get(ctx, "AMT_NoSuchClass", &wsman.Instance{})
	if !errors.As(err, &f) || f.SubcodeLocal() != "DestinationUnreachable" {
		t.Fatalf("unknown class: %v, want DestinationUnreachable fault", err)
	}
	// A named method can be made to fail on request.
	faults.FailMethod, faults.FailCode = "RequestPowerStateChange", 2
	var re *wsman.ReturnError
	if err := c.Invoke(ctx, "CIM_PowerManagementService", "RequestPowerStateChange", in.Params(), nil); !errors.As(err, &re) || re.Code != 2 {
		t.Fatalf("injected failure: %v", err)
	}
	// Wrong password: three 401s.
	bad := wsman.NewClient(plainDialer(l.Plain), wsman.Credentials{Host: "x", Username: "admin", Password: secret.FromString("Wr0ng!pass")})
	if err := bad.Get(ctx, "AMT_GeneralSettings", &gs); !errors.Is(err, wsman.ErrWrongPassword) {
		t.Fatalf("wrong password: %v", err)
	}
}

// TestBareMetalACM runs the server side of spec/activation.md §3 against a
// device in setup mode: mutual TLS with a provisioning chain whose root was
// added to the device's hashes, admin with an empty password,
// SetMEBxPassword, SetAdminAclEntryEx, CommitChanges → ACM; then the new
// password works and the empty one no longer does.
func TestBareMetalACM(t *testing.T) {
	p := makeChain(t, chainOpts{})
	d := newTestDevice(t, Config{Version: defaultBuilds[16], RemoteConfig: true, ExtraRootHashes: []RootHash{p.rootHash()}})
	l := listen(t, d)
	ctx := ctxT(t)
	host := d.UUID.String() + ":16993"

	// An untrusted chain fails the handshake.
	other := makeChain(t, chainOpts{leafCN: "amtd.other.example"})
	if _, err := tlsDialer(l.TLS, other.tlsCert())(ctx); err == nil {
		// TLS 1.3 reports client-certificate rejection on first read.
		c := wsman.NewClient(tlsDialer(l.TLS, other.tlsCert()), wsman.Credentials{Host: host, Username: "admin"})
		if err := c.Get(ctx, "AMT_GeneralSettings", &wsman.Instance{}); err == nil {
			t.Fatal("a chain with an untrusted root opened a setup session")
		}
	}
	// Without a client certificate there is no setup session.
	c0 := wsman.NewClient(tlsDialer(l.TLS), wsman.Credentials{Host: host, Username: "admin"})
	if err := c0.Get(ctx, "AMT_GeneralSettings", &wsman.Instance{}); !errors.Is(err, wsman.ErrWrongPassword) {
		t.Fatalf("no client certificate: %v, want refused", err)
	}

	setup := wsman.NewClient(tlsDialer(l.TLS, p.tlsCert()), wsman.Credentials{Host: host, Username: "admin"})
	var gs wsman.AMTGeneralSettings
	if err := setup.Get(ctx, "AMT_GeneralSettings", &gs); err != nil {
		t.Fatal(err)
	}
	realm := gs.DigestRealm
	pass := secret.FromString("N3w!Admin-pass")
	// CommitChanges before the MEBx password: 2057.
	var re *wsman.ReturnError
	if err := setup.Invoke(ctx, "AMT_SetupAndConfigurationService", "CommitChanges", nil, nil); !errors.As(err, &re) || re.Code != 2057 {
		t.Fatalf("CommitChanges without MEBx: %v, want 2057", err)
	}
	if err := setup.Invoke(ctx, "AMT_SetupAndConfigurationService", "SetMEBxPassword",
		wsman.SetMEBxPasswordInput{Password: secret.FromString("Mebx!Pass1")}.Params(), nil); err != nil {
		t.Fatal(err)
	}
	if err := setup.Invoke(ctx, "AMT_AuthorizationService", "SetAdminAclEntryEx",
		wsman.SetAdminAclEntryExInput{Username: "admin", DigestPassword: digest.HA1Base64("admin", realm, pass)}.Params(), nil); err != nil {
		t.Fatal(err)
	}
	if err := setup.Invoke(ctx, "AMT_SetupAndConfigurationService", "CommitChanges", nil, nil); err != nil {
		t.Fatal(err)
	}
	admin := wsman.NewClient(tlsDialer(l.TLS), wsman.Credentials{Host: host, Username: "admin", Password: pass})
	var hb wsman.IPSHostBasedSetupService
	if err := admin.Get(ctx, "IPS_HostBasedSetupService", &hb); err != nil {
		t.Fatal(err)
	}
	if hb.CurrentControlMode != ModeACM {
		t.Fatalf("CurrentControlMode %d after commit, want 2", hb.CurrentControlMode)
	}
	empty := wsman.NewClient(tlsDialer(l.TLS, p.tlsCert()), wsman.Credentials{Host: host, Username: "admin"})
	if err := empty.Get(ctx, "AMT_GeneralSettings", &gs); !errors.Is(err, wsman.ErrWrongPassword) {
		t.Fatalf("empty password after ACM: %v, want refused", err)
	}
}

// TestTLSCertificateSwitchesAtCommit installs a TLS certificate over
// GenerateKeyPair's key and checks 16993 presents it only after
// CommitChanges.
func TestTLSCertificateSwitchesAtCommit(t *testing.T) {
	d := newTestDevice(t, Config{})
	d.Setup(2, ha1("admin", d.Realm(), "P@ssw0rd1"))
	l := listen(t, d)
	ctx := ctxT(t)
	c := wsman.NewClient(tlsDialer(l.TLS), wsman.Credentials{Host: "h", Username: "admin", Password: secret.FromString("P@ssw0rd1")})
	var out wsman.Instance
	if err := c.Invoke(ctx, "AMT_PublicKeyManagementService", "GenerateKeyPair", wsman.GenerateKeyPairInput{KeyAlgorithm: 0, KeyLength: 2048}.Params(), &out); err != nil {
		t.Fatal(err)
	}
	keyID := out.EPR("KeyPair").Selector("InstanceID")
	pairs, err := c.Enumerate(ctx, "AMT_PublicPrivateKeyPair")
	if err != nil || len(pairs) != 1 || pairs[0].Value("InstanceID") != keyID {
		t.Fatalf("key pairs %v, %v", pairs, err)
	}
	certDER := signServerCert(t, pairs[0].Value("DERKey"))
	if err := c.Invoke(ctx, "AMT_PublicKeyManagementService", "AddCertificate", wsman.AddCertificateInput{CertificateBlob: b64(certDER)}.Params(), &out); err != nil {
		t.Fatal(err)
	}
	certID := out.EPR("CreatedCertificate").Selector("InstanceID")
	body := wsman.Instance{Props: []wsman.Property{
		{Name: "ElementInContext", EPR: &wsman.EPR{ResourceURI: wsman.BaseAMT + "AMT_PublicKeyCertificate", Selectors: []wsman.Selector{{Name: "InstanceID", Value: certID}}}},
		{Name: "ElementProvidingContext", EPR: &wsman.EPR{ResourceURI: wsman.BaseAMT + "AMT_TLSProtocolEndpointCollection", Selectors: []wsman.Selector{{Name: "ElementName", Value: "TLSProtocolEndpointInstances Collection"}}}},
	}}
	req, _ := c.B.Create("AMT_TLSCredentialContext", body)
	if _, err := c.Do(ctx, req); err != nil {
		t.Fatal(err)
	}
	presented := func() []byte {
		conn, err := tls.Dial("tcp", l.TLS.String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reading the presented certificate
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Raw
	}
	if string(presented()) == string(certDER) {
		t.Fatal("new certificate in use before CommitChanges")
	}
	if err := c.Invoke(ctx, "AMT_SetupAndConfigurationService", "CommitChanges", nil, nil); err != nil {
		t.Fatal(err)
	}
	if string(presented()) != string(certDER) {
		t.Fatal("16993 does not present the installed certificate after CommitChanges")
	}
}

func TestVersionPorts(t *testing.T) {
	d := newTestDevice(t, Config{Version: defaultBuilds[19]})
	l := listen(t, d)
	if l.Plain != nil || l.Redir != nil {
		t.Fatal("AMT 19 opened 16992/16994, closed from CSME 16.1")
	}
	v161, _ := ParseVersion("16.1")
	if v161.NonTLSRemote() || !defaultBuilds[16].NonTLSRemote() {
		t.Fatal("16.0 keeps 16992 open, 16.1 closes it")
	}
	minV, _ := defaultBuilds[11].TLSVersions()
	if minV != tls.VersionTLS10 {
		t.Fatal("AMT 11 offers TLS 1.0")
	}
}
