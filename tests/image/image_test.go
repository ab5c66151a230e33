// Package image builds the per-domain appliance image with
// packaging/image/build.sh (what `make image` runs) and boots it under
// systemd-nspawn, as an operator would boot it on a box: it checks that the
// first boot makes the store's master key on the machine, that amtd.service
// comes up (READY, watchdog fed), answers DNS for ProvisionServer.<domain> on
// the site address, that `amtd status` works inside, that a baked-in .pfx is
// sealed into the store and deleted, and that the console shows the
// operator's summary.
//
// Root only (it unpacks a Debian system and boots it); CI runs as root.
package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"amtd/amtsim"
)

const (
	domain  = "image.amtd.example"
	address = "192.168.100.2"
	// The base tarball is kept here between runs (mmdebstrap takes a minute
	// or two; the build with a cached base about as long as the .deb).
	cacheDir = "/var/cache/amtd-test"
)

func TestImageBoots(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: building the image unpacks a Debian system with its owners, and booting it runs systemd-nspawn (CI runs as root)")
	}
	for _, tool := range []string{"mmdebstrap", "systemd-nspawn", "nsenter", "dig", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: scripts/deps.sh installs it (mmdebstrap, systemd-container, util-linux, bind9-dnsutils, iproute2)", tool)
		}
	}
	top, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	// A provisioning certificate for the domain, baked in: sealed into the
	// store at first boot, then deleted from the disk.
	pfx, password := sitePFX(t, domain)
	pfxPath, pwPath := filepath.Join(dir, "site.pfx"), filepath.Join(dir, "site.pfx.password")
	if err := os.WriteFile(pfxPath, pfx, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pwPath, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(dir, "out")
	start := time.Now()
	build := exec.Command(filepath.Join(top, "packaging/image/build.sh"), "--domain", domain,
		"--address", address+"/24", "--router", "none", "--interface", "host0",
		"--pfx", pfxPath, "--pfx-password-file", pwPath,
		"--cache", cacheDir, "--out", out, "--no-squashfs")
	build.Dir = top
	// Fixed, so that a commit made meanwhile in the tree does not change
	// the date of the second build.
	sde := "SOURCE_DATE_EPOCH=" + strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	build.Env = append(os.Environ(), sde)
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("packaging/image/build.sh: %v\n%s", err, b)
	} else {
		t.Logf("build.sh:\n%s", b)
	}
	t.Logf("image build took %s", time.Since(start).Round(time.Second))

	tarball := filepath.Join(out, "amtd-image-"+domain+".tar")
	checkNoSecrets(t, tarball)

	// The same base, .deb and date give the same tarball, byte for byte.
	debs, _ := filepath.Glob(filepath.Join(out, "amtd_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("build.sh left %d .deb files in %s, want 1", len(debs), out)
	}
	out2 := filepath.Join(dir, "out2")
	again := exec.Command(filepath.Join(top, "packaging/image/build.sh"), "--domain", domain,
		"--address", address+"/24", "--router", "none", "--interface", "host0",
		"--pfx", pfxPath, "--pfx-password-file", pwPath, "--deb", debs[0],
		"--cache", cacheDir, "--out", out2, "--no-squashfs")
	again.Dir, again.Env = top, build.Env
	if b, err := again.CombinedOutput(); err != nil {
		t.Fatalf("packaging/image/build.sh (again): %v\n%s", err, b)
	}
	if a, b := fileSum(t, tarball), fileSum(t, filepath.Join(out2, "amtd-image-"+domain+".tar")); a != b {
		t.Errorf("two builds of the same image differ: sha256 %s and %s", a, b)
	}
	os.RemoveAll(out2)

	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("tar", "-C", root, "--numeric-owner", "-xpf", tarball).CombinedOutput(); err != nil {
		t.Fatalf("unpacking the image: %v\n%s", err, b)
	}
	vm := boot(t, root)
	t.Logf("container leader pid %d", vm.leader)

	// amtd.service active: the first boot configured the package and
	// started it; Type=notify, so active means the daemon sent READY=1.
	waitFor(t, "amtd.service active", 3*time.Minute, func() (bool, string) {
		o, _ := vm.exec("systemctl", "is-active", "amtd.service")
		return strings.TrimSpace(o) == "active", o
	})
	t.Logf("boot to amtd.service active took %s", time.Since(vm.started).Round(100*time.Millisecond))

	// The watchdog is fed: WatchdogTimestamp moves on (amtd pings every
	// 15 s with WatchdogSec=30s).
	first := vm.prop(t, "WatchdogTimestampMonotonic")
	waitFor(t, "a watchdog ping from amtd", 90*time.Second, func() (bool, string) {
		now := vm.prop(t, "WatchdogTimestampMonotonic")
		return now != first && now != "0", now
	})
	if s := vm.prop(t, "WatchdogUSec"); s == "0" || s == "" {
		t.Errorf("amtd.service runs without a watchdog (WatchdogUSec=%q)", s)
	}

	// The master key was made on this machine at first boot, sealed with
	// systemd-creds, and the store exists.
	for _, f := range []string{"etc/amtd/master-key.cred", "var/lib/amtd/amtd.db"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("after first boot: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "etc/amtd/master.key")); err == nil {
		t.Error("the master key is a plain file; systemd-creds should have sealed it")
	}

	// DNS on the site address, from inside the appliance's network.
	o, err := vm.execNet("dig", "+short", "+time=3", "+tries=3", "@"+address, "ProvisionServer."+domain, "A")
	if err != nil || strings.TrimSpace(o) != address {
		t.Errorf("dig ProvisionServer.%s @%s: %q, %v; want %s", domain, address, o, err, address)
	}

	// The appliance resolves through its own amtd.
	if o, err := vm.exec("getent", "hosts", "ProvisionServer."+domain); err != nil || !strings.Contains(o, address) {
		t.Errorf("getent hosts ProvisionServer.%s inside: %q, %v; want %s", domain, o, err, address)
	}

	// amtd status inside, every service up and healthy.
	o, err = vm.exec("amtd", "status")
	if err != nil {
		t.Errorf("amtd status: %v\n%s", err, o)
	}
	for _, svc := range []string{"control", "dns", "dhcp", "provisioning", "cira"} {
		if !hasServiceLine(o, svc, "up", "ok") {
			t.Errorf("amtd status: %s is not up and ok:\n%s", svc, o)
		}
	}

	// The baked-in certificate is in the store and gone from the disk.
	if _, err := os.Stat(filepath.Join(root, "var/lib/amtd-image/domain.pfx")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the baked-in .pfx is still on the disk after first boot (%v)", err)
	}
	o, err = vm.exec("sh", "-c", `umask 077; k=$(mktemp -d); systemd-creds decrypt --name=amtd-master-key /etc/amtd/master-key.cred $k/amtd-master-key && CREDENTIALS_DIRECTORY=$k amtd domain list; rc=$?; rm -rf $k; exit $rc`)
	if err != nil || !strings.Contains(o, domain) {
		t.Errorf("amtd domain list inside: %v\n%s", err, o)
	}

	// The operator's summary on the console.
	waitFor(t, "the console summary", 60*time.Second, func() (bool, string) {
		c := vm.console()
		return strings.Contains(c, "==== amtd appliance for "+domain) && strings.Contains(c, "amtd.service: active"), ""
	})
	c := vm.console()
	if i := strings.Index(c, "==== amtd appliance"); i >= 0 {
		t.Logf("console:\n%s", c[i:])
	}
	for _, want := range []string{address + "/24", "amtd domain add " + domain, "dns           up"} {
		if !strings.Contains(c, want) {
			t.Errorf("the console summary does not show %q", want)
		}
	}

	// A reboot: the units the first boot enabled start amtd with the same
	// key and store; the first-boot unit does not run again.
	key := fileSum(t, filepath.Join(root, "etc/amtd/master-key.cred"))
	vm.stop(t)
	vm = boot(t, root)
	waitFor(t, "amtd.service active after a reboot", 3*time.Minute, func() (bool, string) {
		o, _ := vm.exec("systemctl", "is-active", "amtd.service")
		return strings.TrimSpace(o) == "active", o
	})
	t.Logf("reboot to amtd.service active took %s", time.Since(vm.started).Round(100*time.Millisecond))
	if o, _ := vm.exec("systemctl", "show", "-P", "ConditionResult", "amtd-firstboot.service"); strings.TrimSpace(o) != "no" {
		t.Errorf("amtd-firstboot.service ran again on the second boot (ConditionResult=%s)", strings.TrimSpace(o))
	}
	if k := fileSum(t, filepath.Join(root, "etc/amtd/master-key.cred")); k != key {
		t.Error("the sealed master key changed across a reboot")
	}
	o, err = vm.execNet("dig", "+short", "+time=3", "+tries=3", "@"+address, "ProvisionServer."+domain, "A")
	if err != nil || strings.TrimSpace(o) != address {
		t.Errorf("after a reboot, dig ProvisionServer.%s @%s: %q, %v; want %s", domain, address, o, err, address)
	}
	if o, err := vm.exec("amtd", "status"); err != nil || !hasServiceLine(o, "provisioning", "up", "ok") {
		t.Errorf("after a reboot, amtd status: %v\n%s", err, o)
	}
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// hasServiceLine finds the row of svc in amtd status's service table.
func hasServiceLine(status, svc, state, health string) bool {
	for _, line := range strings.Split(status, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == svc && f[1] == state && f[2] == health {
			return true
		}
	}
	return false
}

// checkNoSecrets: the image carries no master key, store or systemd
// credential host key: they are made on each box at its first boot.
func checkNoSecrets(t *testing.T, tarball string) {
	t.Helper()
	f, err := os.Open(tarball)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", tarball, err)
		}
		names = append(names, strings.TrimPrefix(h.Name, "./"))
	}
	if len(names) < 1000 {
		t.Fatalf("%s holds %d entries: not a Debian system", tarball, len(names))
	}
	for _, n := range names {
		switch {
		case n == "etc/amtd/master-key.cred", n == "etc/amtd/master.key",
			strings.HasPrefix(n, "var/lib/amtd/amtd.db"),
			n == "var/lib/systemd/credential.secret":
			t.Errorf("the image holds %s: it must be made on the box at first boot", n)
		}
	}
}

// machine is a booted container.
type machine struct {
	cmd     *exec.Cmd
	leader  int // the container's PID 1, as the host sees it
	started time.Time
	log     syncBuffer // the console
	done    chan error // nspawn's exit
	stopped bool
}

// stop powers the container off: SIGTERM asks nspawn to halt it cleanly.
func (m *machine) stop(t *testing.T) {
	if m.stopped {
		return
	}
	m.stopped = true
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-m.done:
		if err != nil {
			t.Errorf("systemd-nspawn: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Errorf("the container did not power off within 60 s of SIGTERM; killing it")
		_ = m.cmd.Process.Kill()
		<-m.done
	}
	if t.Failed() {
		t.Logf("console log:\n%s", m.console())
	}
}

// syncBuffer is a bytes.Buffer written by exec's copying goroutine and read
// by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// boot starts systemd-nspawn --boot on root with a private network (a veth
// pair: host0 inside) and returns once the container's init runs. It is
// powered off at the end of the test.
//
// This machine's PID 1 is not systemd, so the container is not registered
// with machined (--register=no --keep-unit) and is reached with nsenter. The
// nspawn seccomp filter forbids mlock unless asked (@memlock); amtd mlocks
// the store's master key.
func boot(t *testing.T, root string) *machine {
	t.Helper()
	name := fmt.Sprintf("amtdt%d", os.Getpid()%1000000) // "ve-"+name fits IFNAMSIZ
	m := &machine{}
	m.cmd = exec.Command("systemd-nspawn", "--boot", "-D", root, "--machine", name,
		"--register=no", "--keep-unit", "--console=read-only", "--network-veth",
		"--system-call-filter=@memlock")
	// A pipe, not a file: nspawn forwards the console to a file only when
	// it exits.
	m.cmd.Stdout = &m.log
	m.cmd.Stderr = &m.log
	// Should the test die, nspawn powers the container off (SIGTERM) rather
	// than leave its processes behind.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	m.started = time.Now()
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.cmd.Wait() }()
	m.done = done
	t.Cleanup(func() { m.stop(t) })

	// nspawn forks the container's init as its child.
	waitFor(t, "the container's init", 60*time.Second, func() (bool, string) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", m.cmd.Process.Pid, m.cmd.Process.Pid))
		if err != nil {
			return false, err.Error()
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return false, "no child yet"
		}
		pid, _ := strconv.Atoi(f[0])
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(comm)) != "systemd" {
			return false, "child is " + string(comm)
		}
		m.leader = pid
		return true, ""
	})
	// The host end of the veth pair: up, with no address, so the container's
	// host0 has a carrier and networkd configures the site address on it.
	waitFor(t, "the host end of the veth", 30*time.Second, func() (bool, string) {
		b, err := exec.Command("ip", "link", "set", "ve-"+name, "up").CombinedOutput()
		return err == nil, string(b)
	})
	return m
}

// exec runs a command in all of the container's namespaces.
func (m *machine) exec(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(m.leader), "-a", "--"}, args...)...).CombinedOutput()
	return string(b), err
}

// execNet runs a host command in the container's network namespace only.
func (m *machine) execNet(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(m.leader), "-n", "--"}, args...)...).CombinedOutput()
	return string(b), err
}

func (m *machine) prop(t *testing.T, name string) string {
	o, err := m.exec("systemctl", "show", "-P", name, "amtd.service")
	if err != nil {
		t.Fatalf("systemctl show -P %s amtd.service: %v\n%s", name, err, o)
	}
	return strings.TrimSpace(o)
}

func (m *machine) console() string {
	return strings.ReplaceAll(m.log.String(), "\r", "")
}

// waitFor polls cond until it holds or timeout passes, then fails with
// cond's last word.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s; last: %s", timeout, what, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// sitePFX makes a provisioning .pfx for domain as a CA would sell it: root
// and leaf with serverAuth and the Intel AMT setup OID (spec/activation.md
// §12). The root is not one AMT trusts, which amtd domain add warns about
// and accepts.
func sitePFX(t *testing.T, domain string) (pfx []byte, password string) {
	t.Helper()
	now := time.Now()
	rootKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rootT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Image Test Root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootT, rootT, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	leafKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	leafT := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: domain},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, UnknownExtKeyUsage: []asn1.ObjectIdentifier{amtsim.OIDIntelSetup}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafT, root, &leafKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	password = "Image-pfx-1234"
	pfx, err = pkcs12.Modern.Encode(leafKey, leaf, []*x509.Certificate{root}, password)
	if err != nil {
		t.Fatal(err)
	}
	return pfx, password
}
