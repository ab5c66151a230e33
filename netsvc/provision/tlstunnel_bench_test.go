package provision

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"amtd/amt/rps"
	"amtd/amtsim"
	"amtd/store"
)

// BenchmarkAgentTLSTunnel times CCM and ACM activations of an AMT 19+
// device through the agent's TLS tunnel with rpc-go's own read windows
// (2 s for AMT's first byte and 2 s of quiet to end a round, amtsim
// RPCOptions defaults): the wall time is dominated by those windows, one
// per round trip, so it shows how many round trips a flow costs. It prints
// seconds per activation and the TLS handshakes amtd made.
func BenchmarkAgentTLSTunnel(b *testing.B) {
	for _, mode := range []string{"ccm", "acm"} {
		b.Run(mode, func(b *testing.B) {
			r := newTLS19Rig(b)
			chain := newChain(b, "corp.example.com")
			r.srv.Chains = ChainList{{Suffix: "corp.example.com", Cert: chain.cert, Root: chain.root}}
			ctx := context.Background()
			if err := r.store.Profiles().Put(ctx, store.Profile{Name: "site-acm", Settings: json.RawMessage(`{"mode":"acm"}`)}, "test", ""); err != nil {
				b.Fatal(err)
			}
			var total time.Duration
			b.ResetTimer()
			for range b.N {
				d := newDevice19(b, amtsim.Config{ExtraRootHashes: []amtsim.RootHash{chain.rootHash()}})
				before := strings.Count(r.logs.String(), "agent TLS tunnel: handshake done")
				start := time.Now()
				m, err := d.RunRPC(ctx, amtsim.RPCOptions{URL: r.url, Command: "activate --profile site-" + mode, TenantID: enrolToken,
					Insecure: true, Timeout: 5 * time.Minute, ODCA: r.odca,
					Edit: func(p *rps.Payload) { p.CertHashes = []string{chain.rootHash().Hex} }})
				el := time.Since(start)
				total += el
				if err != nil || m.Method != rps.MethodSuccess {
					b.Fatalf("%s: %v %+v\n%s", mode, err, m, r.logs)
				}
				hs := strings.Count(r.logs.String(), "agent TLS tunnel: handshake done") - before
				fmt.Printf("BenchmarkAgentTLSTunnel/%s: %.1f s, %d TLS handshakes (rpc-go's 2 s windows)\n", mode, el.Seconds(), hs)
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/activation")
		})
	}
}
