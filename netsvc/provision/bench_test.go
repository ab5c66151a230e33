package provision

import (
	"context"
	"fmt"
	"testing"
	"time"

	"amtd/amtsim"
)

// BenchmarkActivateACM is the server's cost of one bare-metal activation
// against amtsim with no firmware latency, over real TLS (the mutual-TLS
// setup session, then an ordinary session to verify) and a real store.
// Device creation is outside the timer. No peer runs here to compare with:
// RPS and MeshCentral need Node.js services this machine does not have.
func BenchmarkActivateACM(b *testing.B) {
	st := testStore(b)
	chain := newChain(b, "corp.example.com")
	eng := &Engine{Store: st, CallTimeout: 30 * time.Second}
	ctx := context.Background()
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		d, err := amtsim.New(amtsim.Config{RemoteConfig: true, ExtraRootHashes: []amtsim.RootHash{chain.rootHash()},
			Net: amtsim.NetIdentity{Suffix: "corp.example.com"}})
		if err != nil {
			b.Fatal(err)
		}
		l, err := d.Listen(amtsim.ListenAddrs{TLS: "127.0.0.1:0"})
		if err != nil {
			b.Fatal(err)
		}
		t := Target{UUID: d.UUID.String(), Addr: l.TLS.String()}
		b.StartTimer()
		start := time.Now()
		if _, err := eng.ActivateACM(ctx, t, chain.cert); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		b.StopTimer()
		l.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N)/total.Seconds(), "activations/s")
	fmt.Printf("BenchmarkActivateACM: %d activations, %.1f activations/s one at a time (server and amtsim share the 2 cores)\n",
		b.N, float64(b.N)/total.Seconds())
}
