package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"amtd/amt/digest"
	"amtd/amt/redir"
	"amtd/secret"
)

// The redirection relay's credential injection (spec/redirection.md §5): the
// console speaks AMT's redirection protocol through amtd with any user and
// password (empty will do); amtd drops its digest messages and sends its own,
// computed with the admin password from the store. Once AMT accepts, both
// directions are a byte pump.
//
// interceptor is the state machine alone: bytes in, bytes out, no sockets,
// clock or logging, so the fuzzer and the tests drive it directly. The relay
// calls fromConsole and fromAMT from its two pump goroutines; a mutex keeps
// the shared state (realm, direct) consistent between them.

// Why an interceptor ends a session. errPasswordRefused is the one the relay
// tells the console and the audit trail apart from a protocol error.
var (
	errRelayProtocol   = errors.New("redirection protocol error")
	errPasswordRefused = errors.New("AMT refused the admin password amtd holds")
)

// maxRedirMessage is the longest session-control message: an
// AuthenticateSession with MaxAuthData bytes. An accumulator never holds more
// than one incomplete message, so this bounds it (with one read on top).
const maxRedirMessage = 9 + redir.MaxAuthData

// relayUser is the AMT account amtd authenticates as: the admin account whose
// password amtd set at activation (spec/activation.md).
const relayUser = "admin"

type interceptor struct {
	mode     redir.SessionType // the only session type the console may start
	password secret.Value      // wiped once the response is computed, or by wipe
	cnonce   func() string

	mu         sync.Mutex
	direct     bool
	fromCon    []byte // console bytes not yet a whole message
	fromDev    []byte // AMT bytes not yet a whole message
	challenge  *redir.DigestChallenge
	nc         uint32
	responded  bool // amtd sent its digest response; AMT's next reply decides
	authorized bool
}

// newInterceptor takes ownership of password: the interceptor wipes it.
func newInterceptor(mode redir.SessionType, password secret.Value) *interceptor {
	return &interceptor{mode: mode, password: password, cnonce: randomCNonce}
}

func randomCNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// isDirect reports whether authentication is done and bytes pass unchanged.
func (x *interceptor) isDirect() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.direct
}

// wipe clears the password; the relay calls it when the session ends.
func (x *interceptor) wipe() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.password.Wipe()
	x.password = secret.Value{}
}

func protoErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errRelayProtocol, fmt.Sprintf(format, a...))
}

// fromConsole takes bytes the console sent and returns what goes to AMT.
// On error the session ends; nothing is sent.
func (x *interceptor) fromConsole(p []byte) ([]byte, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.direct {
		return p, nil
	}
	x.fromCon = append(x.fromCon, p...)
	var out []byte
	for len(x.fromCon) > 0 {
		if x.direct {
			// AMT accepted while the console had already sent more (it
			// should wait for the reply); what follows is the session's.
			out = append(out, x.fromCon...)
			x.fromCon = x.fromCon[:0]
			break
		}
		m, n, err := redir.Parse(x.fromCon)
		if errors.Is(err, redir.ErrShort) {
			break
		}
		if err != nil {
			return nil, protoErr("console: %v", err)
		}
		raw := x.fromCon[:n]
		switch m := m.(type) {
		case redir.StartSession:
			if m.Type != x.mode {
				return nil, protoErr("console started a %s session on a relay opened for %s", m.Type, x.mode)
			}
			out = append(out, raw...)
		case redir.EndSession:
			out = append(out, raw...)
		case redir.AuthenticateSession:
			switch m.Type {
			case redir.AuthQuery:
				out = append(out, raw...)
			case redir.AuthDigest:
				// The console's own fields are dropped whatever they hold
				// (spec/redirection.md §5).
				b, err := x.digestLocked()
				if err != nil {
					return nil, err
				}
				out = append(out, b...)
			default:
				return nil, protoErr("console asked for %s authentication; the relay authenticates with digest (type 4) only", m.Type)
			}
		default:
			return nil, protoErr("console sent %s before authentication completed", m.Command())
		}
		x.fromCon = x.fromCon[n:]
	}
	x.fromCon = compact(x.fromCon)
	return out, nil
}

// digestLocked is amtd's substitute for the console's type-4 message: the
// challenge request while no realm is known, else the response computed
// with the stored password (spec/redirection.md §3).
func (x *interceptor) digestLocked() ([]byte, error) {
	if x.challenge == nil {
		m, err := redir.ChallengeRequest(relayUser).Message()
		if err != nil {
			return nil, err
		}
		return redir.Marshal(m)
	}
	if x.responded || x.password.IsZero() {
		return nil, protoErr("console sent a second digest response; amtd answers AMT's challenge once per session")
	}
	ch := *x.challenge
	x.nc++
	nc := fmt.Sprintf("%08x", x.nc)
	cnonce := x.cnonce()
	ha1 := digest.HA1Hex(relayUser, ch.Realm, x.password)
	resp := secret.FromString(digest.Response(ha1.RevealString(), ch.Nonce, nc, cnonce, ch.QOP, "POST", redir.DigestURI))
	ha1.Wipe()
	x.password.Wipe()
	x.password = secret.Value{}
	f := redir.DigestFields{User: relayUser, Realm: ch.Realm, Nonce: ch.Nonce, URI: redir.DigestURI,
		CNonce: cnonce, NC: nc, Response: resp, QOP: ch.QOP}
	m, err := f.Message()
	resp.Wipe()
	if err != nil {
		return nil, fmt.Errorf("relay: AMT's digest challenge: %w", err)
	}
	x.responded = true
	return redir.Marshal(m)
}

// fromAMT takes bytes AMT sent and returns what goes to the console. With
// errPasswordRefused the returned bytes (AMT's failure reply) still go to
// the console before the session ends, so it sees the protocol's own
// failure; with other errors nothing is sent.
func (x *interceptor) fromAMT(p []byte) ([]byte, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.direct {
		return p, nil
	}
	x.fromDev = append(x.fromDev, p...)
	var out []byte
	for len(x.fromDev) > 0 {
		if x.direct {
			out = append(out, x.fromDev...)
			x.fromDev = x.fromDev[:0]
			break
		}
		m, n, err := redir.Parse(x.fromDev)
		if errors.Is(err, redir.ErrShort) {
			break
		}
		if err != nil {
			return nil, protoErr("AMT: %v", err)
		}
		raw := x.fromDev[:n]
		switch m := m.(type) {
		case redir.StartSessionReply:
			out = append(out, raw...)
		case redir.AuthenticateSessionReply:
			switch {
			case m.Status == redir.AuthSuccess && m.Type != redir.AuthQuery:
				x.direct, x.authorized = true, true
			case x.responded:
				// amtd's response was the only one sent: a failure now
				// means the stored password is wrong.
				out = append(out, raw...)
				x.fromDev = x.fromDev[n:]
				return out, errPasswordRefused
			case m.Type == redir.AuthDigest && m.Status == redir.AuthFailure:
				ch, err := redir.ParseDigestChallenge(m.Data)
				if err != nil {
					return nil, protoErr("AMT's digest challenge: %v", err)
				}
				x.challenge = &ch
			}
			out = append(out, raw...)
		default:
			return nil, protoErr("AMT sent %s before authentication completed", m.Command())
		}
		x.fromDev = x.fromDev[n:]
	}
	x.fromDev = compact(x.fromDev)
	return out, nil
}

// compact moves a leftover partial message to the front of a fresh slice, so
// the accumulator does not pin the backing array of a large read.
func compact(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}
