package lifecycle

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"amtd/amtsim"
	"amtd/secret"
	"amtd/store"
)

// sitePFX makes a provisioning .pfx for domain as a CA would sell it (root
// and leaf with serverAuth and the Intel OID, spec/activation.md §12) and
// returns it with its password and the root's SHA-256.
func sitePFX(t *testing.T, domain string) (pfx []byte, password string, rootSum string) {
	t.Helper()
	now := time.Now()
	rootKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rootT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Lifecycle Test Root"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.AddDate(1, 0, 0), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootT, rootT, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	leafKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	leafT := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: domain}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.AddDate(1, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, UnknownExtKeyUsage: []asn1.ObjectIdentifier{amtsim.OIDIntelSetup}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafT, root, &leafKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	password = "Pfx-pass-1234"
	pfx, err = pkcs12.Modern.Encode(leafKey, leaf, []*x509.Certificate{root}, password)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(rootDER)
	return pfx, password, hex.EncodeToString(sum[:])
}

// TestProvisioningEndToEnd is the bare-metal path through the built
// daemon: a domain certificate in the store, [Provisioning] enabled, a
// simulated device in Setup Mode sends its hello; amtd activates it in ACM,
// `amtd devices` shows it activated, and the password amtd stored opens it.
func TestProvisioningEndToEnd(t *testing.T) {
	hello := freePort(t, "tcp")
	s := newSite(t, fmt.Sprintf("\n[Provisioning]\nEnable=yes\nHelloListen=127.0.0.1:%d\n", hello))
	pfx, pw, rootSum := sitePFX(t, "lifecycle.test")
	st, err := store.Open(context.Background(), store.Options{Path: filepath.Join(s.dir, "amtd.db"), KeyFile: filepath.Join(s.dir, "master.key")})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Domains().Put(context.Background(), store.Domain{Suffix: "lifecycle.test", PFX: secret.New(pfx), PFXPassword: secret.FromString(pw),
		RootSHA256: rootSum, LeafExpiry: time.Now().AddDate(1, 0, 0)}, "test", "lifecycle"); err != nil {
		t.Fatal(err)
	}
	st.Close()

	n := listenNotify(t, s.dir)
	d := start(t, []string{"NOTIFY_SOCKET=" + n.path}, amtd, "run", "-c", s.conf)
	ready := n.await(t, "READY=1", 30*time.Second)
	if !strings.Contains(ready, "provisioning") {
		t.Fatalf("READY %q does not list provisioning", ready)
	}

	ip := "127.0.1.50"
	dev, err := amtsim.New(amtsim.Config{RemoteConfig: true, ExtraRootHashes: []amtsim.RootHash{{Algorithm: "sha256", Hex: rootSum}},
		Net: amtsim.NetIdentity{Suffix: "lifecycle.test", IP: netip.MustParseAddr(ip)}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := dev.Listen(amtsim.ListenAddrs{TLS: ip + ":16993"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h, _ := dev.Hello(0)
	b, _ := h.MarshalBinary()
	dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := dl.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", hello))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write(b)
	c.Close()

	uuid := dev.UUID.String()
	deadline := time.Now().Add(60 * time.Second)
	var rec struct {
		ProvisioningState string
		ControlMode       int
		Passwords         struct{ Admin, MEBx []string }
	}
	for {
		code, out, _ := run(t, nil, "devices", "show", uuid, "--json", "-c", s.conf)
		if code == 0 && json.Unmarshal([]byte(out), &rec) == nil && rec.ProvisioningState == "activated" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("device not activated within 60 s: amtd devices show says %q (exit %d)", out, code)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if dev.ControlMode() != amtsim.ModeACM || rec.ControlMode != 2 || strings.Join(rec.Passwords.Admin, ",") != "current" || strings.Join(rec.Passwords.MEBx, ",") != "current" {
		t.Fatalf("device mode %d; record %+v", dev.ControlMode(), rec)
	}
	code, out, _ := run(t, nil, "devices", "-c", s.conf)
	if code != 0 || !strings.Contains(out, uuid) || !strings.Contains(out, "ACM") {
		t.Fatalf("amtd devices: %d\n%s", code, out)
	}
	d.signal(syscall.SIGTERM)
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// TestUSBOneTouchSelfHostedRoot is issue 8 end to end through the built
// daemon: a domain with the appliance's own provisioning root (amtd domain
// add --self-signed), a USB key from amtd usb-setup, and a factory machine
// that trusts only the default roots. The machine takes a record, sends its
// hello to the address on the key, and amtd activates it in ACM with the
// self-hosted root; its MEBx password ends as the one the store holds.
func TestUSBOneTouchSelfHostedRoot(t *testing.T) {
	hello := freePort(t, "tcp")
	s := newSite(t, fmt.Sprintf("\n[Provisioning]\nEnable=yes\nHelloListen=127.0.0.1:%d\n", hello))
	if code, out, errs := run(t, nil, "domain", "add", "lifecycle.test", "--self-signed", "-c", s.conf); code != 0 {
		t.Fatalf("domain add --self-signed: %d\n%s\n%s", code, out, errs)
	}
	key := filepath.Join(s.dir, "setup.bin")
	if code, out, errs := run(t, nil, "usb-setup", "--domain", "lifecycle.test", "--out", key, "--records", "2", "-c", s.conf); code != 0 {
		t.Fatalf("usb-setup: %d\n%s\n%s", code, out, errs)
	}
	n := listenNotify(t, s.dir)
	d := start(t, []string{"NOTIFY_SOCKET=" + n.path}, amtd, "run", "-c", s.conf)
	n.await(t, "READY=1", 30*time.Second)

	ip := "127.0.1.60"
	dev, err := amtsim.New(amtsim.Config{Net: amtsim.NetIdentity{Suffix: "lifecycle.test", IP: netip.MustParseAddr(ip)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.ApplySetupBinFile(key); err != nil {
		t.Fatal(err)
	}
	l, err := dev.Listen(amtsim.ListenAddrs{TLS: ip + ":16993"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The key's server address is 127.0.0.1 ([Site] Address=) and port the
	// hello port: no DNS is involved.
	if _, err := dev.SendHello(context.Background(), 9971, 0); err != nil {
		t.Fatal(err)
	}
	uuid := dev.UUID.String()
	deadline := time.Now().Add(60 * time.Second)
	for dev.ControlMode() != amtsim.ModeACM {
		if time.Now().After(deadline) {
			_, out, _ := run(t, nil, "devices", "show", uuid, "-c", s.conf)
			t.Fatalf("not activated within 60 s:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The store holds the MEBx password the machine now has.
	for {
		st, err := store.Open(context.Background(), store.Options{Path: filepath.Join(s.dir, "amtd.db"), KeyFile: filepath.Join(s.dir, "master.key")})
		if err != nil {
			t.Fatal(err)
		}
		mebx, err := st.Secrets().Current(context.Background(), uuid, store.MEBx)
		st.Close()
		if err == nil {
			if mebx.RevealString() != dev.Snapshot().MEBxPassword {
				t.Fatal("the machine's MEBx password is not the one the store holds")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no current MEBx password stored: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The record the machine took is matched to it (by the host name the
	// record gave it), and says so in the store's list.
	code, out, _ := run(t, nil, "usb-setup", "list", "-c", s.conf)
	if code != 0 || !strings.Contains(out, uuid) {
		t.Fatalf("usb-setup list does not show %s:\n%s", uuid, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, uuid) && !strings.Contains(line, "-r1 ") {
			t.Fatalf("the machine is matched to another record than 1: %s", line)
		}
	}
	d.signal(syscall.SIGTERM)
	if code := d.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}
