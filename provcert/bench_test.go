package provcert

import (
	"os"
	"testing"
	"time"
)

// BenchmarkLoad opens and checks each OpenSSL-made file: the cost of an
// upload, and of the daemon opening a domain's chain after a change.
func BenchmarkLoad(b *testing.B) {
	pw := testPassword(b)
	for _, name := range []string{"modern.pfx", "3des.pfx", "legacy.pfx"} {
		pfx, err := os.ReadFile("testdata/" + name)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bun, err := Load(pfx, pw)
				if err != nil {
					b.Fatal(err)
				}
				bun.Check(Policy{Suffix: "corp.example.com", Now: bun.Leaf.NotBefore.Add(time.Hour)})
			}
		})
	}
}
