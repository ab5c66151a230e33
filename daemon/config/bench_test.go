package config

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// BenchmarkParse measures the sample, a large site (250 pools, 16000
// reservations, about 1 MiB), and worst-case junk of the maximum size.
func BenchmarkParse(b *testing.B) {
	sample, err := os.ReadFile(samplePath)
	if err != nil {
		b.Fatal(err)
	}
	var large strings.Builder
	large.WriteString(site + "[DHCP]\nEnable=yes\n")
	for i := range 250 {
		fmt.Fprintf(&large, "[DHCPPool]\nSubnet=10.%d.0.0/16\nRange=10.%d.1.1-10.%d.200.254\n", i, i, i)
	}
	for i := range 12000 {
		fmt.Fprintf(&large, "[DHCPReservation]\nMACAddress=02:00:00:00:%02x:%02x\nAddress=10.%d.%d.%d\n", i>>8, i&0xff, i%250, 1+i/250%200, 1+i%250)
	}
	junk := strings.Repeat("[DHCPReservation]\nAddress=10.0.0.1\n", maxFileSize/len("[DHCPReservation]\nAddress=10.0.0.1\n"))
	// Many names of every kind: once quadratic (domains × records).
	names := "[Site]\nAddress=192.0.2.10\n" + strings.Repeat("Domain=a.example.com\n", maxItems) +
		"[DNS]\n" + strings.Repeat("Record=x A 192.0.2.1\n", maxRecords) + strings.Repeat("[Nope]\nFoo=1\n", 20000)
	for _, c := range []struct {
		name string
		text string
		ok   bool
	}{{"sample", string(sample), true}, {"large-site", large.String(), true}, {"junk-1MiB", junk, false}, {"names", names, false}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.text)))
			for b.Loop() {
				_, err := Parse("bench.conf", strings.NewReader(c.text))
				if (err == nil) != c.ok {
					b.Fatalf("ok=%v: %.300v", err == nil, err)
				}
			}
		})
	}
}
