package killfleet

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"amtd/netsvc/provision"
	"amtd/store"
)

// BenchmarkActivateFleetAtOnce activates a fleet of amtsim devices all at
// once with firmware latency on every call (issue 5: 2,000 devices, 1–3 s
// per call; the simulator adds AMTD_BENCH_LATENCY, default 2s, the middle of
// that range). It prints the time until the last device is in ACM and this
// process's peak RSS (the engine and the store; the devices run in their own
// process). AMTD_BENCH_DEVICES changes the fleet size.
func BenchmarkActivateFleetAtOnce(b *testing.B) {
	n := envInt("AMTD_BENCH_DEVICES", 2000)
	latency := os.Getenv("AMTD_BENCH_LATENCY")
	if latency == "" {
		latency = "2s"
	}
	dir := b.TempDir()
	bin := buildAmtsim(b, dir)
	rootSum := writeChain(b, dir)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "chain.pem"), filepath.Join(dir, "leaf.key"))
	if err != nil {
		b.Fatal(err)
	}
	for iter := 0; iter < b.N; iter++ {
		base := netip.AddrFrom4([4]byte{127, byte(60 + iter%100), 0, 1})
		opts := store.Options{Path: filepath.Join(dir, fmt.Sprintf("amtd-%d.db", iter)), KeyFile: filepath.Join(dir, "master.key")}
		if iter == 0 {
			if err := store.GenerateKeyFile(opts.KeyFile); err != nil {
				b.Fatal(err)
			}
		}
		st, err := store.Init(context.Background(), opts)
		if err != nil {
			b.Fatal(err)
		}
		sim := exec.Command(bin, "-count", strconv.Itoa(n), "-seed", fmt.Sprintf("bench-%d", iter), "-addr-base", base.String(),
			"-remote-config", "-root-hash", rootSum, "-suffix", domain, "-latency", latency, "-key-pool", "8")
		simLog, _ := os.Create(filepath.Join(dir, "amtsim.log"))
		sim.Stdout, sim.Stderr = simLog, simLog
		if err := sim.Start(); err != nil {
			b.Fatal(err)
		}
		addrs := make([]string, n)
		a := base
		for i := range n {
			addrs[i] = a.String() + ":16993"
			a = a.Next()
		}
		waitListening(b, addrs[n-1])

		eng := &provision.Engine{Store: st, CallTimeout: 5 * time.Minute}
		f := fleet{seed: fmt.Sprintf("bench-%d", iter)}
		b.ResetTimer()
		start := time.Now()
		var wg sync.WaitGroup
		var failed atomic.Int64
		for i := range n {
			wg.Go(func() {
				if _, err := eng.ActivateACM(context.Background(), provision.Target{UUID: f.deviceUUID(i), Addr: addrs[i]}, cert); err != nil {
					if failed.Add(1) <= 3 {
						b.Logf("device %d: %v", i, err)
					}
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		b.StopTimer()
		_ = sim.Process.Kill()
		_ = sim.Wait()
		simLog.Close()
		st.Close()
		if failed.Load() > 0 {
			b.Fatalf("%d of %d activations failed", failed.Load(), n)
		}
		rss := peakRSS()
		b.ReportMetric(elapsed.Seconds(), "s/fleet")
		b.ReportMetric(float64(rss)/(1<<20), "MiB-peak-RSS")
		fmt.Printf("BenchmarkActivateFleetAtOnce: %d devices with %s per firmware call, all in ACM after %.1f s; engine process peak RSS %.0f MiB (%.1f KiB per device)\n",
			n, latency, elapsed.Seconds(), float64(rss)/(1<<20), float64(rss)/1024/float64(n))
	}
}

// peakRSS is this process's VmHWM in bytes.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
