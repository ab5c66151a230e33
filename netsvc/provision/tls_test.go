package provision

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"amtd/pki"
)

func TestConfigureTLS(t *testing.T) {
	r := newRig(t, nil)
	ctx := ctxT(t)
	ca, err := pki.New(time.Now(), "test site")
	if err != nil {
		t.Fatal(err)
	}
	r.engine.DeviceCA = ca
	if _, err := r.engine.ActivateACM(ctx, r.target, r.chain.cert); err != nil {
		t.Fatal(err)
	}
	if _, err := r.engine.configure(ctx, r.target.UUID, r.target.host(), r.engine.dialer(r.target, nil), ProfileSettings{Mode: "acm", TLS: true}, ModeACM); err != nil {
		t.Fatal(err)
	}
	// The listener now presents a certificate that chains to the appliance root.
	conn, err := tls.Dial("tcp", r.target.Addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // checked below against the appliance root
	if err != nil {
		t.Fatal(err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	pool := x509.NewCertPool()
	pool.AddCert(ca.Root())
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("the device presents %q, which does not chain to the appliance root: %v", leaf.Subject.CommonName, err)
	}
	s := r.dev.Snapshot()
	if !s.ActiveTLS.Enabled || !s.ActiveTLS.AcceptNonSecure {
		t.Fatalf("active TLS %+v, want enabled, non-TLS still accepted (mode 2)", s.ActiveTLS)
	}
	// amtd still reaches it with the stored password.
	if err := r.login(ctx, r.current("amt_admin")); err != nil {
		t.Fatal(err)
	}
	// Without a CA the step says so.
	r.engine.DeviceCA = nil
	if _, err := r.engine.configure(ctx, r.target.UUID, r.target.host(), r.engine.dialer(r.target, nil), ProfileSettings{Mode: "acm", TLS: true}, ModeACM); err == nil {
		t.Fatal("TLS configured without a CA")
	}
}
