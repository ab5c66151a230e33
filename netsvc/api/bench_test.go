package api

import (
	"fmt"
	"io"
	"net/http"
	"testing"
)

// BenchmarkAPICall is one authenticated call over HTTPS (keep-alive) with
// its store lookups and its audit row, against 1,000 devices. The figure
// to watch is ns/op: every call writes one audit row.
func BenchmarkAPICall(b *testing.B) {
	for _, c := range []struct{ name, path string }{
		{"get", "/api/v1/devices/" + uuidA},
		{"list25", "/api/v1/devices"},
		{"stats", "/api/v1/devices/stats"},
	} {
		b.Run(c.name, func(b *testing.B) {
			e := newEnv(b, false)
			tok := e.key("viewer", "bench")
			for i := range 1000 {
				e.putDevice(fmt.Sprintf("%08x-2222-3333-4444-555555555555", i), "h", i%3 == 0)
			}
			e.putDevice(uuidA, "a", true)
			req, _ := http.NewRequest("GET", e.base+c.path, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			b.ResetTimer()
			for b.Loop() {
				resp, err := e.client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatal(resp.StatusCode)
				}
			}
		})
	}
}
