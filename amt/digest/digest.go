// Package digest implements HTTP Digest authentication (RFC 2617/7616, MD5,
// qop=auth) as Intel AMT speaks it on WS-Management and, with another URI, on
// the redirection port (spec/wsman.md §2, spec/redirection.md §3).
//
// It is pure: no sockets, no logging, no clock. The client side parses a
// WWW-Authenticate challenge and builds Authorization headers; the server side
// (server.go) issues challenges and verifies answers, for the AMT simulator
// and for any endpoint that must behave like AMT.
package digest

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"amtd/secret"
)

// WSManURI is the request URI of every WS-Management call (spec/wsman.md §1).
const WSManURI = "/wsman"

// RedirectionURI is the digest URI of the redirection protocol's
// authentication (spec/redirection.md §3).
const RedirectionURI = "/RedirectionService"

// ErrBadRealm means a realm is not AMT's `Digest:` + 32 hex form.
var ErrBadRealm = errors.New("digest realm is not \"Digest:\" followed by 32 hex digits")

// ValidateRealm checks AMT's realm format. RPS requires ^Digest:[0-9A-F]{32}$
// (spec/wsman.md §2); amtd also accepts lower-case hex because nothing in the
// protocol depends on the case and a lower-case realm still hashes correctly.
func ValidateRealm(realm string) error {
	const prefix = "Digest:"
	rest, ok := strings.CutPrefix(realm, prefix)
	if !ok || len(rest) != 32 {
		return fmt.Errorf("digest: realm %q: %w", clip(realm), ErrBadRealm)
	}
	for i := 0; i < len(rest); i++ {
		if !isHex(rest[i]) {
			return fmt.Errorf("digest: realm %q: %w", clip(realm), ErrBadRealm)
		}
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// clip shortens hostile strings before they go into an error message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

func md5Hex(parts ...string) string {
	h := md5.New()
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{':'})
		}
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ha1Raw is MD5(user ":" realm ":" password) as 16 raw bytes.
func ha1Raw(user, realm string, password secret.Value) [16]byte {
	buf := make([]byte, 0, len(user)+len(realm)+password.Len()+2)
	buf = append(buf, user...)
	buf = append(buf, ':')
	buf = append(buf, realm...)
	buf = append(buf, ':')
	buf = append(buf, password.Reveal()...)
	sum := md5.Sum(buf)
	clear(buf)
	return sum
}

// HA1Hex is the lower-case hex MD5 of user:realm:password. AMT takes it as
// NetworkAdminPassword in Setup and AdminSetup with
// NetAdminPassEncryptionType=2 (spec/wsman.md §2). It is as sensitive as the
// password, so it comes back as a secret.
func HA1Hex(user, realm string, password secret.Value) secret.Value {
	sum := ha1Raw(user, realm, password)
	out := make([]byte, hex.EncodedLen(len(sum)))
	hex.Encode(out, sum[:])
	return secret.New(out)
}

// HA1Base64 is the base64 of the 16 raw bytes of the same MD5, the form
// SetAdminAclEntryEx's DigestPassword takes (spec/wsman.md §2).
func HA1Base64(user, realm string, password secret.Value) secret.Value {
	sum := ha1Raw(user, realm, password)
	return secret.FromString(base64.StdEncoding.EncodeToString(sum[:]))
}

// HA2 is MD5(method ":" uri) for qop=auth.
func HA2(method, uri string) string { return md5Hex(method, uri) }

// Response is the qop=auth response value:
// MD5(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2(method, uri)).
func Response(ha1Hex, nonce, nc, cnonce, qop, method, uri string) string {
	return md5Hex(ha1Hex, nonce, nc, cnonce, qop, HA2(method, uri))
}

// Challenge is a parsed WWW-Authenticate: Digest header.
type Challenge struct {
	Realm     string
	Nonce     string
	Opaque    string
	Algorithm string   // empty means MD5
	QOP       []string // e.g. ["auth-int", "auth"]
	Stale     bool
}

// maxHeaderLen bounds a challenge or authorization header; AMT's are ~150
// bytes, so 4 KiB leaves room for any honest peer.
const maxHeaderLen = 4096

// ParseChallenge parses a WWW-Authenticate header value. Parameters may be
// quoted or not, in any order; unknown parameters are ignored. It fails on a
// non-Digest scheme, a missing realm or nonce, a non-MD5 algorithm, or a qop
// list without "auth": amtd always answers qop=auth, as go-wsman-messages
// does (spec/wsman.md §2).
func ParseChallenge(header string) (Challenge, error) {
	params, err := parseDigestHeader(header)
	if err != nil {
		return Challenge{}, fmt.Errorf("digest: challenge: %w", err)
	}
	c := Challenge{
		Realm:     params["realm"],
		Nonce:     params["nonce"],
		Opaque:    params["opaque"],
		Algorithm: params["algorithm"],
		Stale:     strings.EqualFold(params["stale"], "true"),
	}
	if c.Nonce == "" {
		return Challenge{}, errors.New("digest: challenge has no nonce")
	}
	if _, ok := params["realm"]; !ok {
		return Challenge{}, errors.New("digest: challenge has no realm")
	}
	if c.Algorithm != "" && !strings.EqualFold(c.Algorithm, "MD5") {
		return Challenge{}, fmt.Errorf("digest: challenge algorithm %q is not supported (AMT uses MD5)", clip(c.Algorithm))
	}
	if q, ok := params["qop"]; ok {
		for _, v := range strings.Split(q, ",") {
			if v = strings.TrimSpace(v); v != "" {
				c.QOP = append(c.QOP, v)
			}
		}
		if !c.offersAuth() {
			return Challenge{}, fmt.Errorf("digest: challenge qop %q does not offer \"auth\"", clip(q))
		}
	}
	return c, nil
}

func (c Challenge) offersAuth() bool {
	for _, q := range c.QOP {
		if strings.EqualFold(q, "auth") {
			return true
		}
	}
	return false
}

// String renders the challenge the way AMT sends it:
// Digest realm="…", nonce="…", stale="false", qop="auth".
func (c Challenge) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Digest realm=%s, nonce=%s", quote(c.Realm), quote(c.Nonce))
	if c.Opaque != "" {
		fmt.Fprintf(&b, ", opaque=%s", quote(c.Opaque))
	}
	fmt.Fprintf(&b, ", stale=\"%t\"", c.Stale)
	qop := "auth"
	if len(c.QOP) > 0 {
		qop = strings.Join(c.QOP, ", ")
	}
	fmt.Fprintf(&b, ", qop=%s", quote(qop))
	return b.String()
}

// parseDigestHeader splits `Digest k=v, k="v", …` into lower-cased keys.
func parseDigestHeader(header string) (map[string]string, error) {
	if len(header) > maxHeaderLen {
		return nil, fmt.Errorf("header is %d bytes, more than %d", len(header), maxHeaderLen)
	}
	s := strings.TrimSpace(header)
	scheme, rest, _ := strings.Cut(s, " ")
	if !strings.EqualFold(scheme, "Digest") {
		return nil, fmt.Errorf("scheme %q is not Digest", clip(scheme))
	}
	params := make(map[string]string)
	for {
		rest = strings.TrimLeft(rest, " \t,")
		if rest == "" {
			return params, nil
		}
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("parameter %q has no value", clip(rest))
		}
		key := strings.ToLower(strings.TrimSpace(rest[:eq]))
		rest = strings.TrimLeft(rest[eq+1:], " \t")
		var val string
		if strings.HasPrefix(rest, `"`) {
			var b strings.Builder
			i := 1
			closed := false
			for ; i < len(rest); i++ {
				ch := rest[i]
				if ch == '\\' && i+1 < len(rest) {
					i++
					b.WriteByte(rest[i])
					continue
				}
				if ch == '"' {
					closed = true
					break
				}
				b.WriteByte(ch)
			}
			if !closed {
				return nil, fmt.Errorf("parameter %q: unterminated quoted value", clip(key))
			}
			val = b.String()
			rest = rest[i+1:]
		} else {
			end := strings.IndexByte(rest, ',')
			if end < 0 {
				end = len(rest)
			}
			val = strings.TrimSpace(rest[:end])
			rest = rest[end:]
		}
		if _, dup := params[key]; dup {
			return nil, fmt.Errorf("parameter %q appears twice", clip(key))
		}
		params[key] = val
	}
}

// Authorization is the content of an Authorization: Digest header.
type Authorization struct {
	Username, Realm, Nonce, URI, Response, Opaque, Algorithm string
	QOP, NC, CNonce                                          string
}

// String renders the header value with every parameter quoted, as RPS and
// go-wsman-messages send it and AMT accepts (spec/wsman.md §2).
func (a Authorization) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Digest username=%s,realm=%s,nonce=%s,uri=%s", quote(a.Username), quote(a.Realm), quote(a.Nonce), quote(a.URI))
	if a.QOP != "" {
		fmt.Fprintf(&b, ",qop=%s", quote(a.QOP))
	}
	fmt.Fprintf(&b, ",response=%s", quote(a.Response))
	if a.QOP != "" {
		fmt.Fprintf(&b, ",nc=%s,cnonce=%s", quote(a.NC), quote(a.CNonce))
	}
	if a.Opaque != "" {
		fmt.Fprintf(&b, ",opaque=%s", quote(a.Opaque))
	}
	if a.Algorithm != "" {
		fmt.Fprintf(&b, ",algorithm=%s", quote(a.Algorithm))
	}
	return b.String()
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// ParseAuthorization parses an Authorization: Digest header value.
func ParseAuthorization(header string) (Authorization, error) {
	p, err := parseDigestHeader(header)
	if err != nil {
		return Authorization{}, fmt.Errorf("digest: authorization: %w", err)
	}
	a := Authorization{
		Username: p["username"], Realm: p["realm"], Nonce: p["nonce"], URI: p["uri"],
		Response: p["response"], Opaque: p["opaque"], Algorithm: p["algorithm"],
		QOP: p["qop"], NC: p["nc"], CNonce: p["cnonce"],
	}
	for _, f := range []struct{ name, v string }{{"username", a.Username}, {"nonce", a.Nonce}, {"uri", a.URI}, {"response", a.Response}} {
		if f.v == "" {
			return Authorization{}, fmt.Errorf("digest: authorization has no %s", f.name)
		}
	}
	if _, ok := p["realm"]; !ok {
		return Authorization{}, errors.New("digest: authorization has no realm")
	}
	return a, nil
}

// Client holds the digest state of one AMT session: the last challenge and
// the nonce count under it. It is not safe for concurrent use; wsman.Client
// guards it.
type Client struct {
	Username string
	Password secret.Value
	// RequireAMTRealm makes Accept reject realms not in AMT's
	// Digest:<32 hex> form, as RPS does (INVALID_DIGEST_REALM).
	RequireAMTRealm bool

	ch     Challenge
	ha1    string
	nc     uint32
	cnonce func() string
}

// Accept adopts a new challenge (from a 401) and restarts nonce counting.
func (c *Client) Accept(ch Challenge) error {
	if c.RequireAMTRealm {
		if err := ValidateRealm(ch.Realm); err != nil {
			return err
		}
	}
	if c.ha1 == "" || ch.Realm != c.ch.Realm {
		sum := ha1Raw(c.Username, ch.Realm, c.Password)
		c.ha1 = hex.EncodeToString(sum[:])
	}
	c.ch = ch
	c.nc = 0
	return nil
}

// HasChallenge reports whether a challenge has been accepted, so requests
// can carry credentials pre-emptively.
func (c *Client) HasChallenge() bool { return c.ch.Nonce != "" }

// Authorize returns the Authorization header value for the next request,
// counting nc up (00000001, 00000002, …) under the current nonce.
func (c *Client) Authorize(method, uri string) (string, error) {
	if !c.HasChallenge() {
		return "", errors.New("digest: no challenge to answer yet")
	}
	c.nc++
	nc := fmt.Sprintf("%08x", c.nc)
	cnonce := newCNonce()
	if c.cnonce != nil {
		cnonce = c.cnonce()
	}
	a := Authorization{
		Username: c.Username, Realm: c.ch.Realm, Nonce: c.ch.Nonce, URI: uri,
		QOP: "auth", NC: nc, CNonce: cnonce, Opaque: c.ch.Opaque,
		Response: Response(c.ha1, c.ch.Nonce, nc, cnonce, "auth", method, uri),
	}
	return a.String(), nil
}

// newCNonce returns 16 random hex characters; any opaque token works
// (spec/wsman.md §2).
func newCNonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b[:])
}
