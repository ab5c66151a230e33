package digest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"amtd/secret"
)

// Errors Verify returns; callers branch on them to choose the 401 they send.
var (
	// ErrStale: the nonce was ours but has expired; answer with a new
	// challenge carrying stale=true so the client retries without asking the
	// user again (RFC 7616 §3.3).
	ErrStale = errors.New("digest: nonce expired")
	// ErrReplay: the nonce count did not increase.
	ErrReplay = errors.New("digest: nonce count replayed")
	// ErrDenied: wrong user, password or malformed answer.
	ErrDenied = errors.New("digest: authentication failed")
)

// Server issues challenges and verifies answers. Nonces are self-validating
// (timestamp + random + HMAC), so a server restart only costs clients one
// stale round trip; the replay table is bounded by MaxNonces.
type Server struct {
	Realm string
	// NonceTTL is how long a nonce is accepted; 0 means 5 minutes.
	NonceTTL time.Duration
	// MaxNonces bounds the nonce-count table; 0 means 4096. When full, the
	// oldest nonces are forgotten and their clients get stale=true.
	MaxNonces int

	key [32]byte

	mu        sync.Mutex
	seen      map[string]*nonceState
	watermark time.Time // newest issue time of an evicted nonce
}

type nonceState struct {
	issued time.Time
	maxNC  uint32
}

// NewServer returns a Server for realm with a fresh random HMAC key.
func NewServer(realm string) *Server {
	s := &Server{Realm: realm, seen: make(map[string]*nonceState)}
	_, _ = rand.Read(s.key[:]) // never fails (Go ≥ 1.24)
	return s
}

func (s *Server) ttl() time.Duration {
	if s.NonceTTL > 0 {
		return s.NonceTTL
	}
	return 5 * time.Minute
}

func (s *Server) maxNonces() int {
	if s.MaxNonces > 0 {
		return s.MaxNonces
	}
	return 4096
}

// nonce layout: 8 bytes Unix nanoseconds, 8 random bytes, 16 bytes HMAC.
const nonceRawLen = 8 + 8 + 16

func (s *Server) newNonce(now time.Time) string {
	var raw [nonceRawLen]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(now.UnixNano()))
	_, _ = rand.Read(raw[8:16])
	copy(raw[16:], s.mac(raw[:16]))
	return hex.EncodeToString(raw[:])
}

func (s *Server) mac(b []byte) []byte {
	m := hmac.New(sha256.New, s.key[:])
	m.Write(b)
	return m.Sum(nil)[:16]
}

// checkNonce returns when the nonce was issued, or an error if it is not ours.
func (s *Server) checkNonce(nonce string) (time.Time, error) {
	raw, err := hex.DecodeString(nonce)
	if err != nil || len(raw) != nonceRawLen {
		return time.Time{}, fmt.Errorf("%w: nonce not issued here", ErrDenied)
	}
	if !hmac.Equal(raw[16:], s.mac(raw[:16])) {
		return time.Time{}, fmt.Errorf("%w: nonce not issued here", ErrDenied)
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(raw[:8]))), nil
}

// Challenge returns a fresh WWW-Authenticate value in AMT's shape; stale is
// true when answering an expired nonce.
func (s *Server) Challenge(now time.Time, stale bool) string {
	return Challenge{Realm: s.Realm, Nonce: s.newNonce(now), Stale: stale, QOP: []string{"auth"}}.String()
}

// Credentials looks up the HA1 (lower-case hex MD5 of user:realm:password)
// for a user; ok is false for an unknown user.
type Credentials func(user string) (ha1Hex secret.Value, ok bool)

// PasswordCredentials serves a single user with a plain password.
func PasswordCredentials(user, realm string, password secret.Value) Credentials {
	ha1 := HA1Hex(user, realm, password)
	return func(u string) (secret.Value, bool) {
		if u != user {
			return secret.Value{}, false
		}
		return ha1, true
	}
}

// Verify checks an Authorization header for method against creds. It returns
// the user name on success; ErrStale for an expired nonce of ours (send a
// new challenge with stale=true); ErrReplay for a nonce count that did not
// increase; ErrDenied otherwise. Comparison of the response is constant-time.
func (s *Server) Verify(now time.Time, method, header string, creds Credentials) (string, error) {
	a, err := ParseAuthorization(header)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrDenied, err)
	}
	if a.Realm != s.Realm {
		return "", fmt.Errorf("%w: realm %q is not %q", ErrDenied, clip(a.Realm), s.Realm)
	}
	if a.QOP != "" && a.QOP != "auth" {
		return "", fmt.Errorf("%w: qop %q is not auth", ErrDenied, clip(a.QOP))
	}
	if a.Algorithm != "" && !strings.EqualFold(a.Algorithm, "MD5") {
		return "", fmt.Errorf("%w: algorithm %q", ErrDenied, clip(a.Algorithm))
	}
	issued, err := s.checkNonce(a.Nonce)
	if err != nil {
		return "", err
	}
	var nc uint64
	if a.QOP != "" {
		if len(a.NC) != 8 {
			return "", fmt.Errorf("%w: nc %q is not 8 hex digits", ErrDenied, clip(a.NC))
		}
		nc, err = strconv.ParseUint(a.NC, 16, 32)
		if err != nil || nc == 0 {
			return "", fmt.Errorf("%w: nc %q is not 8 hex digits", ErrDenied, clip(a.NC))
		}
	}
	ha1, ok := creds(a.Username)
	if !ok {
		// Same work as for a known user, so timing does not reveal users.
		ha1 = secret.FromString(strings.Repeat("0", 32))
	}
	var want string
	if a.QOP == "" {
		want = md5Hex(ha1.RevealString(), a.Nonce, HA2(method, a.URI)) // RFC 2069 form
	} else {
		want = Response(ha1.RevealString(), a.Nonce, a.NC, a.CNonce, a.QOP, method, a.URI)
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(a.Response))) != 1 || !ok {
		return "", fmt.Errorf("%w: wrong user name or password", ErrDenied)
	}
	// Expiry is checked only after the response proved the password, so a
	// stale=true answer never tells a guesser anything.
	if now.Sub(issued) > s.ttl() || now.Before(issued.Add(-time.Minute)) {
		return "", ErrStale
	}
	if a.QOP != "" {
		if err := s.recordNC(now, a.Nonce, issued, uint32(nc)); err != nil {
			return "", err
		}
	}
	return a.Username, nil
}

// recordNC enforces a strictly increasing nonce count per nonce.
func (s *Server) recordNC(now time.Time, nonce string, issued time.Time, nc uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = make(map[string]*nonceState)
	}
	st, ok := s.seen[nonce]
	if !ok {
		if !issued.After(s.watermark) {
			return ErrStale
		}
		if len(s.seen) >= s.maxNonces() {
			s.evict(now)
		}
		st = &nonceState{issued: issued}
		s.seen[nonce] = st
	}
	if nc <= st.maxNC {
		return fmt.Errorf("%w: nc %08x after %08x", ErrReplay, nc, st.maxNC)
	}
	st.maxNC = nc
	return nil
}

// evict makes room in the table: first expired nonces, then the oldest. A
// forgotten nonce's count history is gone, so the watermark remembers the
// newest issue time evicted; recordNC answers any unknown nonce issued at or
// before it with ErrStale, which sends the client for a fresh nonce instead
// of letting a captured header be replayed.
func (s *Server) evict(now time.Time) {
	drop := func(k string, st *nonceState) {
		if st.issued.After(s.watermark) {
			s.watermark = st.issued
		}
		delete(s.seen, k)
	}
	for k, st := range s.seen {
		if now.Sub(st.issued) > s.ttl() {
			drop(k, st)
		}
	}
	for len(s.seen) >= s.maxNonces() {
		var oldestK string
		var oldest *nonceState
		for k, st := range s.seen {
			if oldest == nil || st.issued.Before(oldest.issued) {
				oldestK, oldest = k, st
			}
		}
		drop(oldestK, oldest)
	}
}
