package amtsim

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"crypto/x509"
)

// TestMain doubles as the benchmark's APF server process: with
// AMTSIM_MPS_HELPER set, the test binary serves CIRA and nothing else, so
// the benchmark process holds only the devices' side (and each process
// stays under its open-file limit).
func TestMain(m *testing.M) {
	if os.Getenv("AMTSIM_MPS_HELPER") != "" {
		raiseNoFile()
		s, err := newMPSServer("mps.bench", "benchuser", "B3nch!pass", 30)
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		fmt.Println(s.ln.Addr().String(), base64.StdEncoding.EncodeToString(s.root.Raw))
		// Serve until the parent closes our stdin.
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func raiseNoFile() {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) == nil && r.Cur < r.Max {
		r.Cur = r.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
}

func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func liveBytes() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// BenchmarkIdleCIRADevices connects AMTSIM_BENCH_DEVICES (default 2000)
// configured devices to an APF server in a child process, lets them go
// idle, and reports memory per device and the projection for the 100,000
// device goal. A process may hold at most 20,000 open files here, so a
// full-scale run uses at most ~19,000 devices per process; the figure per
// device is what the projection scales.
func BenchmarkIdleCIRADevices(b *testing.B) {
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("AMTSIM_BENCH_DEVICES")); err == nil && v > 0 {
		n = v
	}
	raiseNoFile()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "AMTSIM_MPS_HELPER=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(line)
	if len(f) != 2 {
		b.Fatalf("helper said %q", line)
	}
	addr := f[0]
	rootDER, _ := base64.StdEncoding.DecodeString(f[1])
	if _, err := x509.ParseCertificate(rootDER); err != nil {
		b.Fatal(err)
	}

	pool := NewKeyPool(1)
	before, rssBefore := liveBytes(), rssBytes()
	devs := make([]*Device, 0, n)
	start := time.Now()
	for i := range n {
		d, err := New(Config{Version: defaultBuilds[16], Keys: pool, Net: NetIdentity{Suffix: "corp.example.com"}})
		if err != nil {
			b.Fatal(err)
		}
		d.Setup(2, ha1("admin", d.Realm(), "P@ssw0rd1"))
		d.AddTrustedRootCertificate(base64.StdEncoding.EncodeToString(rootDER))
		sap, _ := d.AddMpServer(MPServer{AccessInfo: "mps.bench", InfoFormat: 201, Port: 4433, AuthMethod: 2, Username: "benchuser", Password: "B3nch!pass", CN: "mps.bench"})
		d.AddRemoteAccessPolicyRule(2, 0, "AAAAAAAAABk=", sap)
		// Spread source addresses over 127.0.0.0/8, one per 250 devices.
		local := fmt.Sprintf("127.%d.%d.%d", 1+i/62500, (i/250)%250, 1+i%250)
		d.EnableCIRA(CIRAOptions{DialAddr: addr, LocalAddr: local, BackoffMin: 500 * time.Millisecond, BackoffMax: 5 * time.Second})
		devs = append(devs, d)
		if i%200 == 199 { // pace the handshakes: 2 cores
			time.Sleep(20 * time.Millisecond)
		}
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		up := 0
		for _, d := range devs {
			if d.CIRAConnected() {
				up++
			}
		}
		if up == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d devices connected", up, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	connectTime := time.Since(start)
	time.Sleep(2 * time.Second) // idle
	after, rssAfter := liveBytes(), rssBytes()
	perHeap := float64(after-before) / float64(n)
	perRSS := float64(rssAfter-rssBefore) / float64(n)
	b.ReportMetric(float64(n), "devices")
	b.ReportMetric(perHeap/1024, "KiB-live/device")
	b.ReportMetric(perRSS/1024, "KiB-RSS/device")
	b.ReportMetric(float64(1<<30)/perRSS, "devices/GiB-RSS")
	b.ReportMetric(100_000*perRSS/float64(1<<30), "GiB-RSS-for-100k")
	b.ReportMetric(float64(runtime.NumGoroutine())/float64(n), "goroutines/device")
	b.ReportMetric(connectTime.Seconds(), "s-to-connect-all")
	for _, d := range devs {
		d.StopCIRA()
	}
}
