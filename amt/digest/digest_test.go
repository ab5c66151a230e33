package digest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"amtd/secret"
)

const (
	vecUser   = "admin"
	vecRealm  = "Digest:56ABC7BE224EF620C69EB88F01071DC8"
	vecPass   = "P@ssw0rd1"
	vecNonce  = "9b2c1d2e3f40516273849a0b1c2d3e4f"
	vecNC     = "00000001"
	vecCNonce = "0a4f113b"
)

// The vector of spec/wsman.md §2.
func TestWSManVector(t *testing.T) {
	ha1 := HA1Hex(vecUser, vecRealm, secret.FromString(vecPass)).RevealString()
	if ha1 != "4c1f5b7515eca6340fd870cdc99f7fbf" {
		t.Errorf("HA1 = %s", ha1)
	}
	if got := HA2("POST", WSManURI); got != "d83ba950d85d6f9b22682df889d8b847" {
		t.Errorf("HA2 = %s", got)
	}
	if got := Response(ha1, vecNonce, vecNC, vecCNonce, "auth", "POST", WSManURI); got != "160825311e4df53ceb0fc4579738973d" {
		t.Errorf("response = %s", got)
	}
	if got := HA1Base64(vecUser, vecRealm, secret.FromString(vecPass)).RevealString(); got != "TB9bdRXspjQP2HDNyZ9/vw==" {
		t.Errorf("HA1Base64 = %s", got)
	}
}

// The vector of spec/redirection.md §3 (HA2 over POST:/RedirectionService).
func TestRedirectionVector(t *testing.T) {
	ha1 := HA1Hex(vecUser, vecRealm, secret.FromString(vecPass)).RevealString()
	if got := HA2("POST", RedirectionURI); got != "63719ae578d1b7ff84edbc5762bd658b" {
		t.Errorf("HA2 = %s", got)
	}
	if got := Response(ha1, vecNonce, vecNC, vecCNonce, "auth", "POST", RedirectionURI); got != "469aeedf1ed83575e31619daf942dd26" {
		t.Errorf("response = %s", got)
	}
}

// Password-hash vectors of go-wsman-messages ips/hostbasedsetup (spec/wsman.md §2).
func TestHA1HexVectors(t *testing.T) {
	tests := []struct{ realm, pass, want string }{
		{"Digest:Realm", "bebb3497d69b544c732651365cc3462d", "f73b2c17b1ecbd7a235ec37d66cbed71"},
		{"digestRealm1", "adminPassword1", "7eab95087308c968d56947a05e916d6b"},
	}
	for _, tt := range tests {
		if got := HA1Hex("admin", tt.realm, secret.FromString(tt.pass)).RevealString(); got != tt.want {
			t.Errorf("HA1Hex(%q, %q) = %s, want %s", tt.realm, tt.pass, got, tt.want)
		}
	}
	if s := HA1Hex("admin", "r", secret.FromString("p")).String(); s != "[redacted]" {
		t.Errorf("HA1Hex prints %q; must be a secret", s)
	}
}

func TestParseChallenge(t *testing.T) {
	tests := []struct {
		name, in string
		want     Challenge
		wantErr  string
	}{
		{"amt", `Digest realm="Digest:56ABC7BE224EF620C69EB88F01071DC8", nonce="abc", stale="false", qop="auth"`,
			Challenge{Realm: vecRealm, Nonce: "abc", QOP: []string{"auth"}}, ""},
		{"auth-int list", `Digest realm="Digest:56ABC7BE224EF620C69EB88F01071DC8", nonce="n1", stale="true", qop="auth-int, auth", opaque="op"`,
			Challenge{Realm: vecRealm, Nonce: "n1", Stale: true, Opaque: "op", QOP: []string{"auth-int", "auth"}}, ""},
		{"unquoted", `digest realm=R,nonce=N, qop=auth ,stale=TRUE, algorithm=MD5`,
			Challenge{Realm: "R", Nonce: "N", Stale: true, Algorithm: "MD5", QOP: []string{"auth"}}, ""},
		{"escaped quote", `Digest realm="a\"b", nonce="n"`, Challenge{Realm: `a"b`, Nonce: "n"}, ""},
		{"basic", `Basic realm="x"`, Challenge{}, "not Digest"},
		{"no nonce", `Digest realm="x"`, Challenge{}, "no nonce"},
		{"no realm", `Digest nonce="x"`, Challenge{}, "no realm"},
		{"qop without auth", `Digest realm="x", nonce="n", qop="auth-int"`, Challenge{}, `does not offer "auth"`},
		{"sha256", `Digest realm="x", nonce="n", algorithm=SHA-256`, Challenge{}, "not supported"},
		{"unterminated", `Digest realm="x, nonce=n`, Challenge{}, "unterminated"},
		{"duplicate", `Digest realm="x", realm="y", nonce=n`, Challenge{}, "twice"},
		{"huge", "Digest realm=" + strings.Repeat("x", 5000), Challenge{}, "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseChallenge(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Realm != tt.want.Realm || got.Nonce != tt.want.Nonce || got.Stale != tt.want.Stale ||
				got.Opaque != tt.want.Opaque || got.Algorithm != tt.want.Algorithm || strings.Join(got.QOP, "|") != strings.Join(tt.want.QOP, "|") {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestValidateRealm(t *testing.T) {
	for _, ok := range []string{vecRealm, "Digest:f3eb554784e729164447a89f60b641c5"} {
		if err := ValidateRealm(ok); err != nil {
			t.Errorf("ValidateRealm(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Digest:", "Digest:Realm", "digest:56ABC7BE224EF620C69EB88F01071DC8", "Digest:56ABC7BE224EF620C69EB88F01071DCZ", vecRealm + "0"} {
		err := ValidateRealm(bad)
		if !errors.Is(err, ErrBadRealm) {
			t.Errorf("ValidateRealm(%q) = %v, want ErrBadRealm", bad, err)
		}
	}
	c := &Client{Username: "admin", Password: secret.FromString("x"), RequireAMTRealm: true}
	if err := c.Accept(Challenge{Realm: "Digest:Realm", Nonce: "n"}); !errors.Is(err, ErrBadRealm) || !strings.Contains(err.Error(), "32 hex") {
		t.Errorf("Accept with a bad realm = %v", err)
	}
}

// The client's header reproduces the spec vector and counts nc per nonce.
func TestClientAuthorize(t *testing.T) {
	c := &Client{Username: vecUser, Password: secret.FromString(vecPass), cnonce: func() string { return vecCNonce }}
	if _, err := c.Authorize("POST", WSManURI); err == nil {
		t.Fatal("Authorize before any challenge succeeded")
	}
	ch, err := ParseChallenge(`Digest realm="` + vecRealm + `", nonce="` + vecNonce + `", stale="false", qop="auth-int, auth", opaque="xyz"`)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Accept(ch); err != nil {
		t.Fatal(err)
	}
	h, err := c.Authorize("POST", WSManURI)
	if err != nil {
		t.Fatal(err)
	}
	want := `Digest username="admin",realm="` + vecRealm + `",nonce="` + vecNonce + `",uri="/wsman",qop="auth",response="160825311e4df53ceb0fc4579738973d",nc="00000001",cnonce="0a4f113b",opaque="xyz"`
	if h != want {
		t.Fatalf("header\n got %s\nwant %s", h, want)
	}
	h2, _ := c.Authorize("POST", WSManURI)
	if !strings.Contains(h2, `nc="00000002"`) {
		t.Errorf("second header %s lacks nc 00000002", h2)
	}
	if strings.Contains(h+h2, vecPass) {
		t.Error("header contains the password")
	}
	ch.Nonce = "other"
	_ = c.Accept(ch)
	h3, _ := c.Authorize("POST", WSManURI)
	if !strings.Contains(h3, `nc="00000001"`) {
		t.Errorf("nc did not restart under a new nonce: %s", h3)
	}
}

func TestServerRoundTrip(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := NewServer(vecRealm)
	creds := PasswordCredentials("admin", vecRealm, secret.FromString(vecPass))
	c := &Client{Username: "admin", Password: secret.FromString(vecPass), RequireAMTRealm: true}
	ch, err := ParseChallenge(s.Challenge(now, false))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Accept(ch); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		h, _ := c.Authorize("POST", WSManURI)
		user, err := s.Verify(now, "POST", h, creds)
		if err != nil || user != "admin" {
			t.Fatalf("request %d: Verify = %q, %v", i, user, err)
		}
		// The same header again is a replay.
		if _, err := s.Verify(now, "POST", h, creds); !errors.Is(err, ErrReplay) {
			t.Fatalf("replayed header: err = %v, want ErrReplay", err)
		}
	}
	// Another method changes HA2.
	h, _ := c.Authorize("POST", WSManURI)
	if _, err := s.Verify(now, "GET", h, creds); !errors.Is(err, ErrDenied) {
		t.Errorf("wrong method: %v", err)
	}
	// Expired nonce with the right password → stale.
	h, _ = c.Authorize("POST", WSManURI)
	if _, err := s.Verify(now.Add(6*time.Minute), "POST", h, creds); !errors.Is(err, ErrStale) {
		t.Errorf("expired nonce: %v, want ErrStale", err)
	}
	if !strings.Contains(s.Challenge(now, true), `stale="true"`) {
		t.Error("stale challenge lacks stale=\"true\"")
	}
	// Wrong password.
	bad := &Client{Username: "admin", Password: secret.FromString("nope")}
	_ = bad.Accept(ch)
	h, _ = bad.Authorize("POST", WSManURI)
	if _, err := s.Verify(now, "POST", h, creds); !errors.Is(err, ErrDenied) {
		t.Errorf("wrong password: %v", err)
	}
	// Wrong password with an expired nonce is still a denial, not stale.
	if _, err := s.Verify(now.Add(time.Hour), "POST", h, creds); !errors.Is(err, ErrDenied) {
		t.Errorf("wrong password, old nonce: %v", err)
	}
	// Unknown user.
	unk := &Client{Username: "root", Password: secret.FromString(vecPass)}
	_ = unk.Accept(ch)
	h, _ = unk.Authorize("POST", WSManURI)
	if _, err := s.Verify(now, "POST", h, creds); !errors.Is(err, ErrDenied) {
		t.Errorf("unknown user: %v", err)
	}
	// A nonce from another server (another key) is refused.
	other := NewServer(vecRealm)
	och, _ := ParseChallenge(other.Challenge(now, false))
	_ = c.Accept(och)
	h, _ = c.Authorize("POST", WSManURI)
	if _, err := s.Verify(now, "POST", h, creds); !errors.Is(err, ErrDenied) {
		t.Errorf("foreign nonce: %v", err)
	}
	// Malformed headers.
	for _, hdr := range []string{"", "Basic YWRtaW46eA==", `Digest username="admin"`,
		strings.Replace(h, `nc="00000001"`, `nc="1"`, 1)} {
		if _, err := s.Verify(now, "POST", hdr, creds); !errors.Is(err, ErrDenied) {
			t.Errorf("Verify(%q) = %v, want ErrDenied", hdr, err)
		}
	}
}

// When the nonce table overflows, evicted nonces cannot be replayed: they
// come back stale.
func TestServerEviction(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := NewServer(vecRealm)
	s.MaxNonces = 4
	creds := PasswordCredentials("admin", vecRealm, secret.FromString(vecPass))
	var first string
	for i := 0; i < 10; i++ {
		c := &Client{Username: "admin", Password: secret.FromString(vecPass)}
		ch, _ := ParseChallenge(s.Challenge(now.Add(time.Duration(i)*time.Second), false))
		_ = c.Accept(ch)
		h, _ := c.Authorize("POST", WSManURI)
		if i == 0 {
			first = h
		}
		if _, err := s.Verify(now.Add(time.Duration(i)*time.Second), "POST", h, creds); err != nil {
			t.Fatalf("nonce %d: %v", i, err)
		}
	}
	if n := len(s.seen); n > 4 {
		t.Errorf("table holds %d nonces, limit 4", n)
	}
	if _, err := s.Verify(now.Add(10*time.Second), "POST", first, creds); !errors.Is(err, ErrStale) {
		t.Errorf("replay of an evicted nonce: %v, want ErrStale", err)
	}
}
