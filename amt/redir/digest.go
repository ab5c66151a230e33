package redir

import (
	"fmt"

	"amtd/secret"
)

// DigestURI is the URI of redirection digest authentication; HA2 is
// MD5("POST:" + DigestURI) (spec/redirection.md §3).
const DigestURI = "/RedirectionService"

// DigestFields is the data of a type-4 AuthenticateSession: eight fields,
// each a 1-byte length and its bytes, in this order (spec/redirection.md §3).
// Response is the computed digest: it proves knowledge of the password, so
// it is a secret.Value and never printed.
type DigestFields struct {
	User     string
	Realm    string
	Nonce    string
	URI      string
	CNonce   string
	NC       string
	Response secret.Value
	QOP      string
}

// ChallengeRequest is the first digest message: only user and URI set, which
// makes AMT answer with a failure carrying realm, nonce and qop
// (spec/redirection.md §3 step 1).
func ChallengeRequest(user string) DigestFields {
	return DigestFields{User: user, URI: DigestURI}
}

// Data encodes the fields; L = sum of the lengths + 8.
func (d DigestFields) Data() ([]byte, error) {
	fields := [8][]byte{[]byte(d.User), []byte(d.Realm), []byte(d.Nonce), []byte(d.URI),
		[]byte(d.CNonce), []byte(d.NC), d.Response.Reveal(), []byte(d.QOP)}
	names := [8]string{"user", "realm", "nonce", "uri", "cnonce", "nc", "response", "qop"}
	var b []byte
	for i, f := range fields {
		if len(f) > 255 {
			return nil, fmt.Errorf("redir: digest %s is %d bytes, the length field is one byte", names[i], len(f))
		}
		b = append(b, byte(len(f)))
		b = append(b, f...)
	}
	return b, nil
}

// Message wraps the fields in an AuthenticateSession of type digest.
func (d DigestFields) Message() (AuthenticateSession, error) {
	data, err := d.Data()
	if err != nil {
		return AuthenticateSession{}, err
	}
	return AuthenticateSession{Type: AuthDigest, Data: data}, nil
}

// lengthPrefixed splits data into n 1-byte-length fields.
// Trailing bytes are an error when strict; AMT's challenge is read leniently,
// as MPS reads it positionally and ignores the rest.
func lengthPrefixed(data []byte, n int, what string, strict bool) ([][]byte, error) {
	out := make([][]byte, 0, n)
	off := 0
	for i := 0; i < n; i++ {
		if off >= len(data) {
			return nil, fmt.Errorf("redir: %s: field %d of %d missing at byte %d of %d", what, i+1, n, off, len(data))
		}
		l := int(data[off])
		off++
		if len(data)-off < l {
			return nil, fmt.Errorf("redir: %s: field %d announces %d bytes, %d left", what, i+1, l, len(data)-off)
		}
		out = append(out, data[off:off+l])
		off += l
	}
	if strict && off != len(data) {
		return nil, fmt.Errorf("redir: %s: %d bytes after the last field", what, len(data)-off)
	}
	return out, nil
}

// ParseDigestFields decodes the data of a type-4 AuthenticateSession.
func ParseDigestFields(data []byte) (DigestFields, error) {
	f, err := lengthPrefixed(data, 8, "digest request", true)
	if err != nil {
		return DigestFields{}, err
	}
	return DigestFields{User: string(f[0]), Realm: string(f[1]), Nonce: string(f[2]), URI: string(f[3]),
		CNonce: string(f[4]), NC: string(f[5]), Response: secret.New(f[6]), QOP: string(f[7])}, nil
}

// DigestChallenge is what AMT's failure reply to a digest request carries:
// `[rl] realm [nl] nonce [ql] qop` (spec/redirection.md §3 step 2).
type DigestChallenge struct {
	Realm, Nonce, QOP string
}

// ParseDigestChallenge decodes the data of an AuthenticateSessionReply with
// type digest and status failure.
func ParseDigestChallenge(data []byte) (DigestChallenge, error) {
	f, err := lengthPrefixed(data, 3, "digest challenge", false)
	if err != nil {
		return DigestChallenge{}, err
	}
	return DigestChallenge{Realm: string(f[0]), Nonce: string(f[1]), QOP: string(f[2])}, nil
}

// Data encodes the challenge, as AMT (or a simulator) sends it.
func (c DigestChallenge) Data() ([]byte, error) {
	var b []byte
	for _, f := range []string{c.Realm, c.Nonce, c.QOP} {
		if len(f) > 255 {
			return nil, fmt.Errorf("redir: digest challenge field of %d bytes, the length is one byte", len(f))
		}
		b = append(b, byte(len(f)))
		b = append(b, f...)
	}
	return b, nil
}

// SupportedAuthTypes reads the data of a reply to a query: one byte per type
// AMT supports (spec/redirection.md §2).
func (r AuthenticateSessionReply) SupportedAuthTypes() []AuthType {
	out := make([]AuthType, len(r.Data))
	for i, b := range r.Data {
		out[i] = AuthType(b)
	}
	return out
}

// RevealResponse returns the digest response. The caller must not log it.
func (d DigestFields) RevealResponse() string { return d.Response.RevealString() }
