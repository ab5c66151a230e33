// Package killfleet activates a fleet of simulated AMT devices while amtd's
// activation engine is killed with SIGKILL at random moments, over and
// over, and then checks the promise of issue 5: every device ends in admin
// control mode, reachable with the admin password the store holds as
// current, and none is left in a half state (spec/activation.md §3, §11).
//
// The devices run in their own process (cmd/amtsim with a state directory),
// so they live through every kill as real firmware would; the engine runs
// in a child process (this test binary re-executed) against a real SQLite
// store file.
package killfleet

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"amtd/amt/guid"
	"amtd/amtsim"
	"amtd/netsvc/provision"
	"amtd/store"
)

const (
	childEnv = "AMTD_KILLFLEET_CHILD"
	domain   = "corp.example.com"
)

// fleetSize and kills can be raised for a longer soak:
// AMTD_KILLFLEET_DEVICES=200 AMTD_KILLFLEET_KILLS=1000 go test ./tests/killfleet.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(child(dir))
	}
	os.Exit(m.Run())
}

// fleet is one round's devices: cmd/amtsim's seed and base address.
type fleet struct {
	seed string
	net  int // devices live on 127.<net>.0.1 and up
	n    int
}

// deviceUUID is cmd/amtsim's: the same seed and index give the same device.
func (f fleet) deviceUUID(i int) string {
	seed := f.seed
	s := sha256.Sum256([]byte(seed + "/" + strconv.Itoa(i)))
	var u guid.UUID
	copy(u[:], s[:16])
	return u.String()
}

func (f fleet) deviceAddr(i int) string { return fmt.Sprintf("127.%d.0.%d:16993", f.net, i+1) }

func (f fleet) env() []string {
	return []string{"AMTD_KILLFLEET_SEED=" + f.seed, "AMTD_KILLFLEET_NET=" + strconv.Itoa(f.net), "AMTD_KILLFLEET_N=" + strconv.Itoa(f.n)}
}

func fleetFromEnv() fleet {
	net, _ := strconv.Atoi(os.Getenv("AMTD_KILLFLEET_NET"))
	n, _ := strconv.Atoi(os.Getenv("AMTD_KILLFLEET_N"))
	return fleet{seed: os.Getenv("AMTD_KILLFLEET_SEED"), net: net, n: n}
}

func TestActivationSurvivesSIGKILL(t *testing.T) {
	devices := envInt("AMTD_KILLFLEET_DEVICES", 24)
	kills := envInt("AMTD_KILLFLEET_KILLS", 200)
	if devices > 250 {
		t.Fatalf("AMTD_KILLFLEET_DEVICES=%d: a fleet lives on 127.N.0.1-250", devices)
	}
	dir := t.TempDir()
	bin := buildAmtsim(t, dir)
	// The site's provisioning chain; the devices trust its root.
	rootSum := writeChain(t, dir)

	// Rounds of fresh fleets until the kills add up: a fleet is done after
	// a few dozen kills, and every round starts from Setup Mode again.
	var killed, finished, resumed, activated int
	for round := 0; killed < kills; round++ {
		f := fleet{seed: fmt.Sprintf("killfleet-%d", round), net: 40 + round%200, n: devices}
		k, fin, res := runRound(t, dir, bin, rootSum, f, kills-killed)
		killed, finished, resumed, activated = killed+k, finished+fin, resumed+res, activated+devices
		if t.Failed() {
			break
		}
		if round > 100 {
			t.Fatalf("%d rounds and only %d kills: the engine finishes before any kill lands", round, killed)
		}
	}
	t.Logf("%d devices activated in ACM, %d SIGKILLs of the engine, %d engine runs that finished on their own, "+
		"%d devices resumed after a kill between CommitChanges and promotion; every device opens with its current stored password",
		activated, killed, finished, resumed)
}

// runRound activates one fleet under kills and checks every device.
func runRound(t *testing.T, dir, bin, rootSum string, f fleet, budget int) (killed, finished, resumed int) {
	t.Helper()
	rdir := filepath.Join(dir, f.seed)
	if err := os.MkdirAll(rdir, 0o700); err != nil {
		t.Fatal(err)
	}
	opts := store.Options{Path: filepath.Join(rdir, "amtd.db"), KeyFile: filepath.Join(rdir, "master.key")}
	if err := store.GenerateKeyFile(opts.KeyFile); err != nil {
		t.Fatal(err)
	}
	st, err := store.Init(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	// Real firmware takes seconds per call; a few milliseconds keep the
	// test short while leaving every step a window for a kill to land in.
	sim := exec.Command(bin, "-count", strconv.Itoa(f.n), "-seed", f.seed, "-addr-base", fmt.Sprintf("127.%d.0.1", f.net),
		"-remote-config", "-root-hash", rootSum, "-suffix", domain, "-state-dir", filepath.Join(rdir, "devices"),
		"-latency", "3ms", "-key-pool", "2")
	simLog, err := os.Create(filepath.Join(rdir, "amtsim.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer simLog.Close()
	sim.Stdout, sim.Stderr = simLog, simLog
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sim.Process.Kill(); _ = sim.Wait() }()
	waitListening(t, f.deviceAddr(f.n-1))

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	run := func(killAfter time.Duration) (exited bool, code int) {
		cmd := exec.Command(self, "-test.run=^$")
		cmd.Env = append(append(os.Environ(), childEnv+"="+dir, "AMTD_KILLFLEET_DIR="+rdir), f.env()...)
		log, _ := os.OpenFile(filepath.Join(rdir, "engine.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		defer log.Close()
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err == nil {
				return true, 0
			}
			if ee, ok := err.(*exec.ExitError); ok {
				return true, ee.ExitCode()
			}
			t.Fatal(err)
		case <-time.After(killAfter):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
		}
		return false, -1
	}

	for killed < budget {
		// Kill moments spread from right after start-up to well into a run.
		exited, _ := run(time.Duration(5+mrand.IntN(200)) * time.Millisecond)
		if !exited {
			killed++
			continue
		}
		finished++
		if allActivated(t, opts, f) {
			break
		}
	}
	// Then the engine runs to the end, unkilled.
	for range 5 {
		if exited, code := run(5 * time.Minute); exited && code == 0 {
			break
		}
	}

	// Every device: admin control mode, opened by the current stored admin
	// password, no password left pending, state activated.
	st, err = store.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng := &provision.Engine{Store: st, CallTimeout: 30 * time.Second}
	for i := range f.n {
		uuid := f.deviceUUID(i)
		d, err := st.Devices().Get(context.Background(), uuid)
		if err != nil {
			t.Fatalf("device %d %s: %v", i, uuid, err)
		}
		if d.ProvisioningState != provision.StateActivated || d.ControlMode != provision.ModeACM {
			t.Errorf("device %s: state %q mode %d, last error %q (logs in %s)", uuid, d.ProvisioningState, d.ControlMode, d.LastError, rdir)
			continue
		}
		for _, kind := range []store.SecretKind{store.AMTAdmin, store.MEBx} {
			cs, err := st.Secrets().Candidates(context.Background(), uuid, kind)
			if err != nil {
				t.Fatalf("device %s %s: %v", uuid, kind, err)
			}
			for _, c := range cs {
				if c.State == store.StatePending {
					t.Errorf("device %s: a %s password is still pending", uuid, kind)
				}
			}
		}
		admin, err := st.Secrets().Current(context.Background(), uuid, store.AMTAdmin)
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Verify(context.Background(), provision.Target{UUID: uuid, Addr: f.deviceAddr(i)}, admin); err != nil {
			t.Errorf("device %s: the current stored admin password does not open it: %v", uuid, err)
		}
		h, _ := st.Devices().History(context.Background(), uuid)
		for _, x := range h {
			if x.Step == provision.StepResume {
				resumed++
				break
			}
		}
	}
	return killed, finished, resumed
}

// allActivated reports whether every device's record says activated.
func allActivated(t *testing.T, opts store.Options, f fleet) bool {
	st, err := store.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range f.n {
		d, err := st.Devices().Get(context.Background(), f.deviceUUID(i))
		if err != nil || d.ProvisioningState != provision.StateActivated {
			return false
		}
	}
	return true
}

// child is the engine process: it activates every device not yet
// activated, four at a time, and exits 0 when all are.
func child(dir string) int {
	f := fleetFromEnv()
	rdir := os.Getenv("AMTD_KILLFLEET_DIR")
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Path: filepath.Join(rdir, "amtd.db"), KeyFile: filepath.Join(rdir, "master.key")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open store:", err)
		return 2
	}
	defer st.Close()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "chain.pem"), filepath.Join(dir, "leaf.key"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: chain:", err)
		return 2
	}
	eng := &provision.Engine{Store: st, CallTimeout: 30 * time.Second}
	work := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for range 4 {
		wg.Go(func() {
			for i := range work {
				if _, err := eng.ActivateACM(ctx, provision.Target{UUID: f.deviceUUID(i), Addr: f.deviceAddr(i)}, cert); err != nil {
					fmt.Fprintf(os.Stderr, "child: device %d: %v\n", i, err)
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}
		})
	}
	for i := range f.n {
		if d, err := st.Devices().Get(ctx, f.deviceUUID(i)); err == nil && d.ProvisioningState == provision.StateActivated {
			continue
		}
		work <- i
	}
	close(work)
	wg.Wait()
	if failed > 0 {
		return 1
	}
	return 0
}

func buildAmtsim(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "amtsim")
	cmd := exec.Command("go", "build", "-o", bin, "amtd/cmd/amtsim")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build amtsim: %v\n%s", err, out)
	}
	return bin
}

func waitListening(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fleet does not listen on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeChain writes a provisioning chain (root + leaf with serverAuth and
// the Intel OID, spec/activation.md §12) as chain.pem and leaf.key, and
// returns the root's SHA-256 in hex.
func writeChain(t testing.TB, dir string) string {
	t.Helper()
	now := time.Now()
	rootKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Kill Test Root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	leafKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: domain},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		UnknownExtKeyUsage: []asn1.ObjectIdentifier{amtsim.OIDIntelSetup}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, root, &leafKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "chain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	_ = pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
	_ = pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: rootDER})
	_ = w.Flush()
	f.Close()
	if err := os.WriteFile(filepath.Join(dir, "leaf.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(leafKey)}), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(rootDER)
	return strings.ToLower(hex.EncodeToString(sum[:]))
}
