package provision

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amtd/amt/digest"
	"amtd/amt/wsman"
	"amtd/amtsim"
	"amtd/metrics"
	"amtd/secret"
	"amtd/store"
)

// testChain is a provisioning chain as a CA would sell it: a self-signed
// root and a leaf for the domain with serverAuth and the Intel OID
// (spec/activation.md §12).
type testChain struct {
	cert tls.Certificate
	root *x509.Certificate
}

func (c testChain) rootHash() amtsim.RootHash {
	sum := sha256.Sum256(c.root.Raw)
	return amtsim.RootHash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:]), Name: "test root"}
}

func newChain(t testing.TB, domain string) testChain {
	t.Helper()
	rootKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test Provisioning Root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	leafKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: domain},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage:           x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:        []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		UnknownExtKeyUsage: []asn1.ObjectIdentifier{amtsim.OIDIntelSetup},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, root, &leafKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	return testChain{cert: tls.Certificate{Certificate: [][]byte{leafDER, rootDER}, PrivateKey: leafKey}, root: root}
}

func testStore(t testing.TB) *store.Store {
	t.Helper()
	dir := t.TempDir()
	opts := store.Options{Path: filepath.Join(dir, "amtd.db"), KeyFile: filepath.Join(dir, "master.key")}
	if err := store.GenerateKeyFile(opts.KeyFile); err != nil {
		t.Fatal(err)
	}
	s, err := store.Init(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type rig struct {
	t      *testing.T
	store  *store.Store
	chain  testChain
	dev    *amtsim.Device
	target Target
	engine *Engine
	reg    *metrics.Registry
}

func newRig(t *testing.T, faults *amtsim.Faults) *rig {
	t.Helper()
	chain := newChain(t, "corp.example.com")
	dev, err := amtsim.New(amtsim.Config{RemoteConfig: true, ExtraRootHashes: []amtsim.RootHash{chain.rootHash()},
		Net: amtsim.NetIdentity{Suffix: "corp.example.com"}, Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	l, err := dev.Listen(amtsim.ListenAddrs{TLS: "127.0.0.1:0", Plain: "127.0.0.1:0", Redir: "127.0.0.1:0", RedirTLS: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	st := testStore(t)
	reg := metrics.NewRegistry()
	return &rig{t: t, store: st, chain: chain, dev: dev, reg: reg,
		target: Target{UUID: dev.UUID.String(), Addr: l.TLS.String()},
		engine: &Engine{Store: st, Metrics: reg, CallTimeout: 20 * time.Second}}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// current returns the device's current stored password of kind.
func (r *rig) current(kind store.SecretKind) secret.Value {
	r.t.Helper()
	v, err := r.store.Secrets().Current(context.Background(), r.target.UUID, kind)
	if err != nil {
		r.t.Fatalf("current %s: %v", kind, err)
	}
	return v
}

// login checks the device accepts admin with pw on an ordinary session.
func (r *rig) login(ctx context.Context, pw secret.Value) error {
	return r.engine.Verify(ctx, r.target, pw)
}

func states(t *testing.T, s *store.Store, uuid string) []string {
	t.Helper()
	h, err := s.Devices().History(context.Background(), uuid)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, x := range h {
		out = append(out, x.To+"/"+x.Step)
	}
	return out
}

func TestActivateACM(t *testing.T) {
	r := newRig(t, nil)
	ctx := ctxT(t)
	res, err := r.engine.ActivateACM(ctx, r.target, r.chain.cert)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed || res.Realm != r.dev.Realm() {
		t.Fatalf("result %+v, device realm %s", res, r.dev.Realm())
	}
	if r.dev.ControlMode() != amtsim.ModeACM {
		t.Fatalf("device control mode %d, want ACM", r.dev.ControlMode())
	}
	admin, mebx := r.current(store.AMTAdmin), r.current(store.MEBx)
	if err := r.login(ctx, admin); err != nil {
		t.Fatalf("stored admin password does not open the device: %v", err)
	}
	if got := r.dev.Snapshot().MEBxPassword; got != mebx.RevealString() {
		t.Fatal("the device's MEBx password is not the stored one")
	}
	if admin.Equal(mebx) {
		t.Fatal("admin and MEBx passwords are the same")
	}
	d, err := r.store.Devices().Get(ctx, r.target.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if d.ProvisioningState != StateActivated || d.ControlMode != ModeACM || d.AMTVersion == "" || d.LastError != "" || len(d.Addresses) != 1 || d.Addresses[0].String() != "127.0.0.1" {
		t.Fatalf("device record %+v", d)
	}
	want := []string{"activating/connect", "activating/passwords-sealed", "activating/set-mebx-password", "activating/set-admin-acl",
		"activating/clock", "activating/commit", "activating/verify", "activated/verify"}
	if got := states(t, r.store, r.target.UUID); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("history %v, want %v", got, want)
	}
	if v := r.reg.CounterVec("amtd_activations_total", "", "result").With("activated").Value(); v != 1 {
		t.Fatalf("activated counter %v", v)
	}

	// Called again on the activated device: the setup session is closed, the
	// current password opens it, nothing changes.
	res, err = r.engine.ActivateACM(ctx, r.target, r.chain.cert)
	if err != nil || !res.Resumed {
		t.Fatalf("second activation: %+v %v", res, err)
	}
	if !r.current(store.AMTAdmin).Equal(admin) {
		t.Fatal("a repeated activation changed the stored admin password")
	}
}

// A crash after the device took the new passwords but before CommitChanges:
// the device is still in Setup Mode; the next run reuses the pending
// passwords rather than making new ones.
func TestActivateResumesBeforeCommit(t *testing.T) {
	r := newRig(t, nil)
	ctx := ctxT(t)
	secrets := r.store.Secrets()
	admin, mebx := secret.FromString("Pend1ng!Admin-pw"), secret.FromString("Pend1ng!Mebx-pw")
	if err := secrets.SetPending(ctx, r.target.UUID, store.AMTAdmin, admin, "test"); err != nil {
		t.Fatal(err)
	}
	if err := secrets.SetPending(ctx, r.target.UUID, store.MEBx, mebx, "test"); err != nil {
		t.Fatal(err)
	}
	setup := wsman.NewClient(r.engine.dialer(r.target, &r.chain.cert), wsman.Credentials{Host: r.target.host(), Username: "admin"})
	if err := setup.Invoke(ctx, "AMT_SetupAndConfigurationService", "SetMEBxPassword", wsman.SetMEBxPasswordInput{Password: mebx}.Params(), nil); err != nil {
		t.Fatal(err)
	}
	if err := setup.Invoke(ctx, "AMT_AuthorizationService", "SetAdminAclEntryEx",
		wsman.SetAdminAclEntryExInput{Username: "admin", DigestPassword: digest.HA1Base64("admin", r.dev.Realm(), admin)}.Params(), nil); err != nil {
		t.Fatal(err)
	}

	if _, err := r.engine.ActivateACM(ctx, r.target, r.chain.cert); err != nil {
		t.Fatal(err)
	}
	if !r.current(store.AMTAdmin).Equal(admin) || !r.current(store.MEBx).Equal(mebx) {
		t.Fatal("the resumed activation did not keep the pending passwords")
	}
	if err := r.login(ctx, admin); err != nil {
		t.Fatal(err)
	}
}

// A crash after CommitChanges, before amtd recorded it: the device refuses
// the setup session, the pending admin password opens it, and both pending
// passwords are promoted.
func TestActivateResumesAfterCommit(t *testing.T) {
	r := newRig(t, nil)
	ctx := ctxT(t)
	secrets := r.store.Secrets()
	admin, mebx := secret.FromString("Pend1ng!Admin-pw"), secret.FromString("Pend1ng!Mebx-pw")
	for kind, v := range map[store.SecretKind]secret.Value{store.AMTAdmin: admin, store.MEBx: mebx} {
		if err := secrets.SetPending(ctx, r.target.UUID, kind, v, "test"); err != nil {
			t.Fatal(err)
		}
	}
	setup := wsman.NewClient(r.engine.dialer(r.target, &r.chain.cert), wsman.Credentials{Host: r.target.host(), Username: "admin"})
	for _, call := range []struct {
		class, method string
		in            []wsman.Property
	}{
		{"AMT_SetupAndConfigurationService", "SetMEBxPassword", wsman.SetMEBxPasswordInput{Password: mebx}.Params()},
		{"AMT_AuthorizationService", "SetAdminAclEntryEx", wsman.SetAdminAclEntryExInput{Username: "admin", DigestPassword: digest.HA1Base64("admin", r.dev.Realm(), admin)}.Params()},
		{"AMT_SetupAndConfigurationService", "CommitChanges", nil},
	} {
		if err := setup.Invoke(ctx, call.class, call.method, call.in, nil); err != nil {
			t.Fatal(err)
		}
	}

	res, err := r.engine.ActivateACM(ctx, r.target, r.chain.cert)
	if err != nil || !res.Resumed {
		t.Fatalf("resume: %+v %v", res, err)
	}
	if !r.current(store.AMTAdmin).Equal(admin) || !r.current(store.MEBx).Equal(mebx) {
		t.Fatal("the pending passwords were not promoted")
	}
	if d, _ := r.store.Devices().Get(ctx, r.target.UUID); d.ProvisioningState != StateActivated || d.ControlMode != ModeACM {
		t.Fatalf("device record %+v", d)
	}
}

// A failing CommitChanges leaves the device in Setup Mode, the passwords
// pending (not current), and the device record saying what failed.
func TestActivateCommitFails(t *testing.T) {
	r := newRig(t, &amtsim.Faults{FailMethod: "CommitChanges", FailCode: 1})
	ctx := ctxT(t)
	_, err := r.engine.ActivateACM(ctx, r.target, r.chain.cert)
	var re *wsman.ReturnError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "commit") {
		t.Fatalf("err %v, want a commit ReturnError", err)
	}
	if r.dev.ControlMode() != amtsim.ModePreProvisioning {
		t.Fatal("device left Setup Mode")
	}
	cs, err := r.store.Secrets().Candidates(ctx, r.target.UUID, store.AMTAdmin)
	if err != nil || len(cs) != 1 || cs[0].State != store.StatePending {
		t.Fatalf("admin candidates %v %v, want one pending", cs, err)
	}
	d, _ := r.store.Devices().Get(ctx, r.target.UUID)
	if d.ProvisioningState != StateFailed || !strings.Contains(d.LastError, "commit") {
		t.Fatalf("device record %+v", d)
	}
	for _, c := range cs {
		if strings.Contains(d.LastError, c.Value.RevealString()) {
			t.Fatal("last_error holds the password")
		}
	}
}

// A chain whose root the device does not trust: the setup session is
// refused, the error says what to check, and nothing is stored as current.
func TestActivateUntrustedRoot(t *testing.T) {
	r := newRig(t, nil)
	ctx := ctxT(t)
	other := newChain(t, "corp.example.com")
	_, err := r.engine.ActivateACM(ctx, r.target, other.cert)
	if err == nil || !strings.Contains(err.Error(), "does it trust the domain's root?") {
		t.Fatalf("err %v", err)
	}
	if r.dev.ControlMode() != amtsim.ModePreProvisioning {
		t.Fatal("device changed")
	}
	if _, err := r.store.Secrets().Current(ctx, r.target.UUID, store.AMTAdmin); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a current admin password exists: %v", err)
	}
}
