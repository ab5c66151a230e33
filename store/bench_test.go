package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"amtd/secret"
)

func BenchmarkSealedSecretWrite(b *testing.B) {
	ctx := context.Background()
	s, _ := newTestStore(b)
	pw := secret.FromString("Bench!Admin-pass1")
	i := 0
	start := time.Now()
	for b.Loop() {
		// Each write is a committed, fsynced transaction (synchronous=FULL).
		if err := s.Secrets().SetPending(ctx, fmt.Sprintf("00000000-0000-0000-0000-%012x", i), AMTAdmin, pw, "bench"); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(i)/time.Since(start).Seconds(), "writes/s")
}

func BenchmarkSealedSecretRead(b *testing.B) {
	ctx := context.Background()
	s, _ := newTestStore(b)
	for i := range 1000 {
		must(b, s.Secrets().SetPending(ctx, fmt.Sprintf("00000000-0000-0000-0000-%012x", i), AMTAdmin, secret.FromString("Bench!Admin-pass1"), "bench"))
	}
	i := 0
	start := time.Now()
	for b.Loop() {
		cs, err := s.Secrets().Candidates(ctx, fmt.Sprintf("00000000-0000-0000-0000-%012x", i%1000), AMTAdmin)
		if err != nil || len(cs) != 1 {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(i)/time.Since(start).Seconds(), "reads/s")
}

// The 100,000-device fixture is built once per test binary run and shared by
// every round of BenchmarkOpen100k.
var (
	fixtureOnce sync.Once
	fixtureDir  string
	fixtureOpts Options
	fixtureErr  error
)

const fixtureDevices = 100_000

func removeBenchFixture() {
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
}

// buildFixture writes 100,000 devices, each with a sealed admin, MEBx and
// MPS password, in one transaction with prepared statements.
func buildFixture() (Options, time.Duration, error) {
	var took time.Duration
	fixtureOnce.Do(func() {
		start := time.Now()
		fixtureDir, fixtureErr = os.MkdirTemp("", "amtd-store-bench-")
		if fixtureErr != nil {
			return
		}
		fixtureOpts = Options{Path: filepath.Join(fixtureDir, "amtd.db"), KeyFile: filepath.Join(fixtureDir, "master.key")}
		if fixtureErr = GenerateKeyFile(fixtureOpts.KeyFile); fixtureErr != nil {
			return
		}
		ctx := context.Background()
		s, err := Init(ctx, fixtureOpts)
		if err != nil {
			fixtureErr = err
			return
		}
		defer s.Close()
		// One real slow hash, shared: what is measured is opening, not argon2.
		slow, err := hashMPS([]byte("Bench!Mps-pass12"))
		if err != nil {
			fixtureErr = err
			return
		}
		fixtureErr = s.sealedTx(ctx, func(tx *sql.Tx, sl *sealer) error {
			dev, err := tx.PrepareContext(ctx, `INSERT INTO devices(uuid, hostname, mps_username, provisioning_state, control_mode, created, updated) VALUES (?,?,?,?,?,?,?)`)
			if err != nil {
				return err
			}
			defer dev.Close()
			sec, err := tx.PrepareContext(ctx, `INSERT INTO device_secrets(id, device, kind, state, value_sealed, key_id, slow_hash, created) VALUES (?,?,?,'current',?,?,?,?)`)
			if err != nil {
				return err
			}
			defer sec.Close()
			now := time.Now().UnixNano()
			id := int64(0)
			for i := range fixtureDevices {
				u := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
				if _, err := dev.ExecContext(ctx, u, fmt.Sprintf("pc%d", i), fmt.Sprintf("u%08x", i), "provisioned", 2, now, now); err != nil {
					return err
				}
				for _, kind := range []SecretKind{AMTAdmin, MEBx, MPS} {
					id++
					blob, err := sl.seal(secretPlace(u, kind, id), []byte(fmt.Sprintf("Bench!%s-%d", kind, i)))
					if err != nil {
						return err
					}
					h := ""
					if kind == MPS {
						h = slow
					}
					if _, err := sec.ExecContext(ctx, id, u, kind, blob, sl.keyID, h, now); err != nil {
						return err
					}
				}
			}
			return nil
		})
		took = time.Since(start)
	})
	return fixtureOpts, took, fixtureErr
}

func BenchmarkOpen100k(b *testing.B) {
	opts, took, err := buildFixture()
	if err != nil {
		b.Fatal(err)
	}
	if took > 0 {
		b.Logf("built %d-device fixture in %v", fixtureDevices, took.Round(time.Millisecond))
	}
	ctx := context.Background()
	var total time.Duration
	n := 0
	for b.Loop() {
		start := time.Now()
		s, err := Open(ctx, opts)
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		n++
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total.Microseconds())/float64(n)/1000, "ms/open")
	// One check that the fixture is what it claims, outside the timing.
	s, err := Open(ctx, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if c, err := s.Devices().Count(ctx); err != nil || c != fixtureDevices {
		b.Fatalf("fixture holds %d devices (%v)", c, err)
	}
	cs, err := s.Secrets().Candidates(ctx, fmt.Sprintf("%08x-0000-4000-8000-%012x", 777, 777), MEBx)
	if err != nil || cs[0].Value.RevealString() != "Bench!mebx-777" {
		b.Fatalf("fixture secret: %v", err)
	}
}
