package provision

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"amtd/amt/apf"
	"amtd/amtsim"
	"amtd/secret"
	"amtd/store"
)

// authSeen is what a device presented to the test MPS.
type authSeen struct {
	uuid, user string
	pass       secret.Value
}

// testMPS is the least of an MPS: TLS with a certificate for name under a
// fresh root, and the APF exchange up to USERAUTH (spec/apf.md §4), which
// it reports and accepts.
func testMPS(t *testing.T, name string) (addr string, rootDER []byte, seen chan authSeen) {
	t.Helper()
	now := time.Now()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	rootT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "amtd CA (test)"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootT, rootT, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	leafT := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafT, root, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER, rootDER}, PrivateKey: key}}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	seen = make(chan authSeen, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(20 * time.Second))
				r := apf.NewReader(c, apf.Limits{})
				var uuid string
				for {
					m, err := r.ReadMessage()
					if err != nil {
						return
					}
					switch v := m.(type) {
					case apf.ProtocolVersion:
						uuid = v.UUID.String()
					case apf.ServiceRequest:
						b, _ := apf.Marshal(apf.ServiceAccept(v))
						_, _ = c.Write(b)
					case apf.UserauthRequest:
						seen <- authSeen{uuid: uuid, user: v.User, pass: v.Password}
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), rootDER, seen
}

func TestConfigureCIRA(t *testing.T) {
	r := newRig(t, nil)
	ctx := ctxT(t)
	if _, err := r.engine.ActivateACM(ctx, r.target, r.chain.cert); err != nil {
		t.Fatal(err)
	}
	mpsAddr, rootDER, seen := testMPS(t, "amtd.corp.example.com")
	cc := CIRAConfig{Server: "amtd.corp.example.com", Port: 4433, RootDER: rootDER}
	if err := r.engine.ConfigureCIRA(ctx, r.target, cc); err != nil {
		t.Fatal(err)
	}
	check := func() secret.Value {
		t.Helper()
		s := r.dev.Snapshot()
		if len(s.MPServers) != 1 || len(s.PolicyRules) != 2 {
			t.Fatalf("device has %d MPS entries and %d policy rules, want 1 and 2", len(s.MPServers), len(s.PolicyRules))
		}
		m := s.MPServers[0]
		mps := r.current(store.MPS)
		if m.AccessInfo != "amtd.corp.example.com" || m.Port != 4433 || m.AuthMethod != 2 || m.Username != MPSUsername(r.target.UUID) || m.Password != mps.RevealString() {
			t.Fatalf("MPS entry %+v does not carry the stored credentials", m)
		}
		if len(m.Username) != 16 || mps.Len() != 16 {
			t.Fatalf("user %q (%d), password of %d characters: AMT takes 5-16 and at most 16", m.Username, len(m.Username), mps.Len())
		}
		if s.UserInitConn != 32771 || len(s.Detection) != 1 || !strings.HasSuffix(s.Detection[0], ".amtd.invalid") {
			t.Fatalf("user-initiated %d, detection %v", s.UserInitConn, s.Detection)
		}
		return mps
	}
	first := check()
	d, _ := r.store.Devices().Get(ctx, r.target.UUID)
	if d.ProvisioningState != StateConfigured || d.CIRA.MPSUsername != MPSUsername(r.target.UUID) {
		t.Fatalf("device record %+v", d)
	}

	// Run again: still one MPS and two rules, and a new password, the old
	// one kept as previous.
	if err := r.engine.ConfigureCIRA(ctx, r.target, cc); err != nil {
		t.Fatal(err)
	}
	second := check()
	if second.Equal(first) {
		t.Fatal("reconfiguring kept the MPS password")
	}
	if ok, err := r.store.Secrets().CheckMPS(ctx, r.target.UUID, second.Reveal()); err != nil || !ok {
		t.Fatalf("CheckMPS with the current password: %v %v", ok, err)
	}

	// The device now dials the MPS, trusts it through the root amtd gave
	// it, and presents exactly the stored credentials.
	r.dev.EnableCIRA(amtsim.CIRAOptions{DialAddr: mpsAddr, BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	t.Cleanup(r.dev.StopCIRA)
	select {
	case a := <-seen:
		if a.uuid != r.target.UUID || a.user != MPSUsername(r.target.UUID) || !a.pass.Equal(second) {
			t.Fatalf("device presented uuid %s user %s and a password that is not the stored one", a.uuid, a.user)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the device did not connect to the MPS")
	}
}

func TestConfigureCIRANeedsActivation(t *testing.T) {
	r := newRig(t, nil)
	err := r.engine.ConfigureCIRA(ctxT(t), r.target, CIRAConfig{Server: "amtd.corp.example.com", Port: 4433, RootDER: []byte{1}})
	if err == nil || !strings.Contains(err.Error(), "no current admin password") {
		t.Fatalf("err %v", err)
	}
}
