package config

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary files to Parse. Configuration comes from admins,
// not the network, but a parser must never panic or hang, and whatever it
// says must be well formed: an *Errors whose problems name the file and a
// line that exists, or a configuration.
func FuzzParse(f *testing.F) {
	for _, path := range []string{samplePath} {
		if b, err := os.ReadFile(path); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(Dev("/tmp/amtd", DefaultDevPorts())))
	f.Add([]byte(site + "[DHCP]\nEnable=yes\n[DHCPPool]\nSubnet=192.0.2.0/24\nRange=192.0.2.100-192.0.2.199\n[DHCPReservation]\nMACAddress=00:16:3e:12:34:56\nAddress=192.0.2.20\n"))
	f.Add([]byte(site + "[DNS]\nEnable=yes\nRecord=nas A 192.0.2.5\nRecord=192.0.2.5 PTR nas\nRecord=x CNAME nas\nTTL=1h 30min\n"))
	f.Add([]byte("[Site]\nDomain=a \\\n# c\n b\\"))
	f.Add([]byte("\ufeff[Log]\r\nLevel=\r\n[\n]\n=\n[[x]]\nK"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.conf", bytes.NewReader(data))
		if err == nil {
			if cfg == nil {
				t.Fatal("no config and no error")
			}
			return
		}
		if cfg != nil {
			t.Fatal("a config and an error")
		}
		var errs *Errors
		if !errors.As(err, &errs) || len(errs.Problems) == 0 {
			t.Fatalf("error %T %v is not a non-empty *Errors", err, err)
		}
		lines := strings.Count(string(data), "\n") + 1
		for _, p := range errs.Problems {
			if p.File != "fuzz.conf" || p.Line < 0 || p.Line > lines || p.Msg == "" {
				t.Fatalf("malformed problem %+v (file has %d lines)", p, lines)
			}
			if strings.Contains(p.Error(), "\n") {
				t.Fatalf("problem spans lines: %q", p.Error())
			}
		}
		if len(errs.Problems) > maxProblems+1 {
			t.Fatalf("%d problems, more than the bound", len(errs.Problems))
		}
	})
}
