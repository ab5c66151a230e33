package api

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"
)

// Redirection tokens (spec/redirection.md §6, §9): what
// GET /api/v1/authorize/redirection/{guid} hands a console and
// /relay/webrelay.ashx takes in Sec-WebSocket-Protocol. An HS256 JWT as MPS
// issues it ({"deviceId": guid, "exp": ...}), with a key drawn at random when
// the relay state is made and never stored: a restart voids every token.
// amtd adds a jti and keeps the ones it issued until used or expired, so a
// token works once (spec/redirection.md §9 "ideally one use").

const (
	// redirTokenLifetime is MPS's default for the redirection token.
	redirTokenLifetime = 5 * time.Minute
	// maxOutstandingTokens bounds the issued-token table. Only operator keys
	// can issue, so reaching it means a runaway script; issuing then fails
	// with 503 until tokens are used or expire.
	maxOutstandingTokens = 10000
	// maxTokenBytes bounds what the relay parses from the header.
	maxTokenBytes = 2048
)

var errTooManyTokens = errors.New("too many redirection tokens outstanding")

type tokenIssuer struct {
	key [32]byte

	mu     sync.Mutex
	issued map[string]time.Time // jti → exp
}

func newTokenIssuer() *tokenIssuer {
	t := &tokenIssuer{issued: map[string]time.Time{}}
	_, _ = rand.Read(t.key[:])
	return t
}

type redirClaims struct {
	DeviceID string `json:"deviceId"`
	Exp      int64  `json:"exp"`
	Iat      int64  `json:"iat"`
	JTI      string `json:"jti"`
	Iss      string `json:"iss"`
	Sub      string `json:"sub"` // the API key that asked, for the audit trail
}

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

func (t *tokenIssuer) sign(signingInput string) string {
	m := hmac.New(sha256.New, t.key[:])
	m.Write([]byte(signingInput))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// issue returns a token for device uuid (lower case) valid until
// now+lifetime, asked for by API key keyID.
func (t *tokenIssuer) issue(uuid, keyID string, now time.Time) (string, error) {
	var j [16]byte
	_, _ = rand.Read(j[:])
	c := redirClaims{DeviceID: uuid, Iat: now.Unix(), Exp: now.Add(redirTokenLifetime).Unix(),
		JTI: hex.EncodeToString(j[:]), Iss: "amtd", Sub: keyID}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.issued) >= maxOutstandingTokens {
		t.pruneLocked(now)
		if len(t.issued) >= maxOutstandingTokens {
			return "", errTooManyTokens
		}
	}
	body, _ := json.Marshal(c)
	in := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(body)
	t.issued[c.JTI] = time.Unix(c.Exp, 0)
	return in + "." + t.sign(in), nil
}

func (t *tokenIssuer) pruneLocked(now time.Time) {
	for j, exp := range t.issued {
		if !now.Before(exp) {
			delete(t.issued, j)
		}
	}
}

// Why a token is refused; the relay's 401 says which, since none of these
// reveal anything a holder of the token does not know.
var (
	errTokenMalformed = errors.New("not a redirection token from this amtd (want GET /api/v1/authorize/redirection/{guid})")
	errTokenSignature = errors.New("token signature invalid (tokens from another amtd, or from before amtd restarted, do not work)")
	errTokenExpired   = errors.New("token expired (redirection tokens live 5 minutes)")
	errTokenDevice    = errors.New("token is for another device")
	errTokenUsed      = errors.New("token already used (a redirection token opens one session)")
)

// redeem checks tok for device uuid and spends it. host is compared
// case-insensitively, as Console does (spec/redirection.md §6).
func (t *tokenIssuer) redeem(tok, uuid string, now time.Time) (redirClaims, error) {
	if len(tok) > maxTokenBytes {
		return redirClaims{}, errTokenMalformed
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != jwtHeader {
		return redirClaims{}, errTokenMalformed
	}
	want := t.sign(parts[0] + "." + parts[1])
	if !hmac.Equal([]byte(want), []byte(parts[2])) {
		return redirClaims{}, errTokenSignature
	}
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return redirClaims{}, errTokenMalformed
	}
	var c redirClaims
	if err := json.Unmarshal(body, &c); err != nil {
		return redirClaims{}, errTokenMalformed
	}
	if !now.Before(time.Unix(c.Exp, 0)) {
		return redirClaims{}, errTokenExpired
	}
	if !strings.EqualFold(c.DeviceID, uuid) {
		return redirClaims{}, errTokenDevice
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.issued[c.JTI]; !ok {
		return redirClaims{}, errTokenUsed
	}
	delete(t.issued, c.JTI)
	return c, nil
}
