package password

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		p    string
		want string // "" ok
	}{
		{"N3w!Admin-pass", ""},
		{"Aa1!aaaa", ""},
		{"Aa1!aaa", "7 characters"},
		{strings.Repeat("Aa1!", 8) + "x", "33 characters"},
		{"Aa1:aaaa", "forbids"},
		{"Aa1,aaaa", "forbids"},
		{"Aa1\"aaaa", "forbids"},
		{"Aa1_aaaa", "needs a digit"}, // _ is not a symbol here
		{"Aa1 aaaa", "needs a digit"},
		{"aa1!aaaa", "needs a digit"},
		{"AA1!AAAA", "needs a digit"},
		{"Aab!aaaa", "needs a digit"},
		{"Aa1!aaa\x7f", "outside printable"},
	} {
		err := Check(c.p)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("Check(%q) = %v, want %q", c.p, err, c.want)
		}
		if err != nil && len(c.p) >= 4 && strings.Contains(err.Error(), c.p) {
			t.Errorf("Check(%q) quotes the password: %v", c.p, err)
		}
	}
}

func TestGenerate(t *testing.T) {
	seen := map[byte]bool{}
	distinct := map[string]bool{}
	for i := range 2000 {
		n := 16 + i%17
		v, err := Generate(n)
		if err != nil {
			t.Fatal(err)
		}
		p := v.RevealString()
		if len(p) != n {
			t.Fatalf("length %d, want %d", len(p), n)
		}
		if err := Check(p); err != nil {
			t.Fatalf("generated password breaks the rule: %v", err)
		}
		if strings.ContainsAny(p, ":,\"'<>& ") {
			t.Fatalf("generated password holds a character some MEBx UIs refuse")
		}
		for j := range len(p) {
			seen[p[j]] = true
		}
		distinct[p] = true
	}
	if len(seen) != len(alphabet) {
		t.Errorf("2000 passwords used %d of the %d characters", len(seen), len(alphabet))
	}
	if len(distinct) != 2000 {
		t.Errorf("%d distinct passwords of 2000", len(distinct))
	}
	for _, n := range []int{15, 33} {
		if _, err := Generate(n); err == nil {
			t.Errorf("Generate(%d) succeeded", n)
		}
	}
}
