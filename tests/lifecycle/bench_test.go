package lifecycle

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"amtd/store"
)

// benchDevices is the fleet size of BenchmarkReady (goal: READY within 200 ms).
const benchDevices = 100_000

// deviceFixture returns a site whose store holds n devices, written through
// the store's API. Building 100,000 devices takes minutes (one durable
// transaction each), so the site is kept in the temp directory and reused
// while it still opens and counts n.
func deviceFixture(b *testing.B, n int) *site {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("amtd-bench-%d-devices", n))
	key := filepath.Join(dir, "master.key")
	db := filepath.Join(dir, "amtd.db")
	s := &site{dir: dir, conf: filepath.Join(dir, "amtd.conf"), control: filepath.Join(dir, "control.sock")}
	ctx := context.Background()
	if st, err := store.Open(ctx, store.Options{Path: db, KeyFile: key}); err == nil {
		got, err := st.Devices().Count(ctx)
		st.Close()
		if err == nil && got == n {
			writeConfigB(b, s)
			return s
		}
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := store.GenerateKeyFile(key); err != nil {
		b.Fatal(err)
	}
	st, err := store.Init(ctx, store.Options{Path: db, KeyFile: key})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for i := range n {
		d := store.Device{
			UUID:     fmt.Sprintf("%08x-%04x-4000-8000-%012x", i, i%0xffff, i),
			Hostname: fmt.Sprintf("pc%06d", i),
		}
		if err := st.Devices().Put(ctx, d); err != nil {
			st.Close()
			os.RemoveAll(dir)
			b.Fatalf("fixture device %d: %v", i, err)
		}
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("fixture: %d devices written in %s (kept in %s)", n, time.Since(start).Round(time.Second), dir)
	writeConfigB(b, s)
	return s
}

func writeConfigB(b *testing.B, s *site) {
	if err := os.WriteFile(s.conf, []byte(configText(s.dir, "")), 0o644); err != nil {
		b.Fatal(err)
	}
}

// readyTime starts amtd on s and returns the time from exec to READY=1.
func readyTime(b *testing.B, s *site) time.Duration {
	n := listenNotifyB(b, s.dir)
	defer n.conn.Close()
	start := time.Now()
	d := start2(b, []string{"NOTIFY_SOCKET=" + n.path}, amtd, "run", "-c", s.conf)
	deadline := time.After(60 * time.Second)
	var ready time.Duration
	for ready == 0 {
		select {
		case m := <-n.msgs:
			if len(m) >= 7 && m[:7] == "READY=1" {
				ready = time.Since(start)
			}
		case <-deadline:
			d.Process.Kill()
			d.Wait()
			b.Fatal("no READY=1 within 60 s")
		}
	}
	d.Process.Signal(syscall.SIGTERM)
	if err := d.Wait(); err != nil {
		b.Fatalf("amtd after SIGTERM: %v", err)
	}
	return ready
}

// BenchmarkReady: how long a daemon whose store holds 100,000 devices takes
// from exec to READY=1 (goal 200 ms), beside the same figure for an empty store.
func BenchmarkReady(b *testing.B) {
	big := deviceFixture(b, benchDevices)
	empty := deviceFixture(b, 0)
	var bigTotal, emptyTotal time.Duration
	b.ResetTimer()
	for b.Loop() {
		bigTotal += readyTime(b, big)
		emptyTotal += readyTime(b, empty)
	}
	b.ReportMetric(float64(bigTotal.Microseconds())/1000/float64(b.N), "ms-ready-100k-devices")
	b.ReportMetric(float64(emptyTotal.Microseconds())/1000/float64(b.N), "ms-ready-empty-store")
}
