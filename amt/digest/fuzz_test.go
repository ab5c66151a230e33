package digest

import (
	"testing"
	"time"

	"amtd/secret"
)

func FuzzParseChallenge(f *testing.F) {
	f.Add(`Digest realm="Digest:56ABC7BE224EF620C69EB88F01071DC8", nonce="abc", stale="false", qop="auth"`)
	f.Add(`Digest realm="x", nonce="n", qop="auth-int, auth", opaque="o", stale=true`)
	f.Add(`digest realm=x,nonce=n`)
	f.Fuzz(func(t *testing.T, in string) {
		c, err := ParseChallenge(in)
		if err != nil {
			return
		}
		if c.Nonce == "" {
			t.Fatal("accepted a challenge without nonce")
		}
		// What we render we can parse back.
		c2, err := ParseChallenge(c.String())
		if err != nil || c2.Nonce != c.Nonce || c2.Realm != c.Realm {
			t.Fatalf("re-parse of %q: %+v, %v", c.String(), c2, err)
		}
	})
}

func FuzzParseAuthorization(f *testing.F) {
	f.Add(`Digest username="admin",realm="Digest:56ABC7BE224EF620C69EB88F01071DC8",nonce="9b2c",uri="/wsman",qop="auth",response="1608",nc="00000001",cnonce="0a4f113b"`)
	f.Add(`Digest username=admin, realm=r, nonce=n, uri=/wsman, response=x`)
	s := NewServer("Digest:56ABC7BE224EF620C69EB88F01071DC8")
	creds := PasswordCredentials("admin", s.Realm, secret.FromString("P@ssw0rd1"))
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, in string) {
		a, err := ParseAuthorization(in)
		if err == nil {
			if _, err := ParseAuthorization(a.String()); err != nil {
				t.Fatalf("re-parse of %q: %v", a.String(), err)
			}
		}
		if _, err := s.Verify(now, "POST", in, creds); err == nil {
			t.Fatalf("fuzzed header %q authenticated", in)
		}
	})
}
