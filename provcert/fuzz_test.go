package provcert

import (
	"os"
	"testing"
	"time"
)

// FuzzLoad feeds Load arbitrary files and passwords: a .pfx is an upload
// from outside. Whatever opens must then go through Check without a panic,
// and a bundle always has a leaf that is first in its chain.
func FuzzLoad(f *testing.F) {
	pw := testPassword(f)
	for _, name := range []string{"modern.pfx", "3des.pfx", "legacy.pfx"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, string(pw))
	}
	f.Fuzz(func(t *testing.T, pfx []byte, password string) {
		b, err := Load(pfx, []byte(password))
		if err != nil {
			if _, ok := err.(Problem); !ok {
				t.Fatalf("Load error is %T, not a Problem: %v", err, err)
			}
			return
		}
		if b.Leaf == nil || len(b.Chain) == 0 || b.Chain[0] != b.Leaf {
			t.Fatal("bundle without its leaf first")
		}
		b.Check(Policy{Suffix: "corp.example.com", Now: time.Unix(1<<31, 0)})
		b.TLSCertificate()
	})
}
