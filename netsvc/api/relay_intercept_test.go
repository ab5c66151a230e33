package api

import (
	"bytes"
	"errors"
	"testing"

	"amtd/amt/redir"
	"amtd/secret"
)

// The vector of spec/redirection.md §3.
const (
	vecRealm    = "Digest:56ABC7BE224EF620C69EB88F01071DC8"
	vecPassword = "P@ssw0rd1"
	vecNonce    = "9b2c1d2e3f40516273849a0b1c2d3e4f"
	vecCNonce   = "0a4f113b"
	vecResponse = "469aeedf1ed83575e31619daf942dd26"
)

func mustMarshal(t testing.TB, m redir.Message) []byte {
	t.Helper()
	b, err := redir.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// transcript is a console's and AMT's messages up to a successful digest
// authentication, as MeshCentral's amt-redir sends them, with the console
// offering its own (wrong) user and password.
type transcript struct {
	start, startReply, query, queryReply, conChallenge, challenge, conResponse, success []byte
}

func newTranscript(t testing.TB) transcript {
	ch, err := redir.DigestChallenge{Realm: vecRealm, Nonce: vecNonce, QOP: "auth"}.Data()
	if err != nil {
		t.Fatal(err)
	}
	conCh, err := redir.ChallengeRequest("console-user").Message()
	if err != nil {
		t.Fatal(err)
	}
	conResp, err := redir.DigestFields{User: "console-user", Realm: vecRealm, Nonce: vecNonce, URI: redir.DigestURI,
		CNonce: "ffff", NC: "00000001", Response: secret.FromString("00000000000000000000000000000000"), QOP: "auth"}.Message()
	if err != nil {
		t.Fatal(err)
	}
	return transcript{
		start:        mustMarshal(t, redir.StartSession{Reserved: [3]byte{1}, Type: redir.SessionKVM}),
		startReply:   mustMarshal(t, redir.StartSessionReply{Status: redir.StartSuccess, Header: [10]byte{0, 0, 1}, OEM: []byte("oem")}),
		query:        mustMarshal(t, redir.AuthenticateSession{Type: redir.AuthQuery}),
		queryReply:   mustMarshal(t, redir.AuthenticateSessionReply{Status: redir.AuthSuccess, Type: redir.AuthQuery, Data: []byte{4}}),
		conChallenge: mustMarshal(t, conCh),
		challenge:    mustMarshal(t, redir.AuthenticateSessionReply{Status: redir.AuthFailure, Type: redir.AuthDigest, Data: ch}),
		conResponse:  mustMarshal(t, conResp),
		success:      mustMarshal(t, redir.AuthenticateSessionReply{Status: redir.AuthSuccess, Type: redir.AuthDigest}),
	}
}

// vecInterceptor returns an interceptor for the vector's password, and the
// bytes that hold it.
func vecInterceptor() (*interceptor, []byte) {
	pw := secret.FromString(vecPassword)
	x := newInterceptor(redir.SessionKVM, pw)
	x.cnonce = func() string { return vecCNonce }
	return x, pw.Reveal()
}

// feed passes b through f in pieces of n bytes (0: whole).
func feed(t *testing.T, f func([]byte) ([]byte, error), b []byte, n int) []byte {
	t.Helper()
	if n == 0 {
		n = len(b)
	}
	var out []byte
	for len(b) > 0 {
		k := min(n, len(b))
		o, err := f(b[:k])
		if err != nil {
			t.Fatalf("feeding %x: %v", b[:k], err)
		}
		out = append(out, o...)
		b = b[k:]
	}
	return out
}

// TestInterceptorInjects: whatever the console offers, AMT receives the
// challenge request and the response of spec/redirection.md §3 for user
// admin and the stored password; everything else passes unchanged, and
// after AMT's success both directions are raw, whole or byte by byte.
func TestInterceptorInjects(t *testing.T) {
	tr := newTranscript(t)
	for _, n := range []int{0, 1, 3} {
		x, _ := vecInterceptor()
		con := func(b []byte) []byte { return feed(t, x.fromConsole, b, n) }
		amt := func(b []byte) []byte { return feed(t, x.fromAMT, b, n) }
		if got := con(tr.start); !bytes.Equal(got, tr.start) {
			t.Fatalf("start: %x", got)
		}
		if got := amt(tr.startReply); !bytes.Equal(got, tr.startReply) {
			t.Fatalf("start reply: %x", got)
		}
		if got := con(tr.query); !bytes.Equal(got, tr.query) {
			t.Fatalf("query: %x", got)
		}
		if got := amt(tr.queryReply); !bytes.Equal(got, tr.queryReply) {
			t.Fatalf("query reply: %x", got)
		}
		if x.isDirect() {
			t.Fatal("direct after a query's success")
		}
		wantCh, _ := redir.ChallengeRequest("admin").Message()
		if got := con(tr.conChallenge); !bytes.Equal(got, mustMarshal(t, wantCh)) {
			t.Fatalf("challenge request: got %x, want admin's", got)
		}
		if got := amt(tr.challenge); !bytes.Equal(got, tr.challenge) {
			t.Fatalf("challenge: %x", got)
		}
		got := con(tr.conResponse)
		m, used, err := redir.Parse(got)
		if err != nil || used != len(got) {
			t.Fatalf("response %x: %v", got, err)
		}
		f, err := redir.ParseDigestFields(m.(redir.AuthenticateSession).Data)
		if err != nil {
			t.Fatal(err)
		}
		if f.User != "admin" || f.Realm != vecRealm || f.Nonce != vecNonce || f.URI != redir.DigestURI ||
			f.CNonce != vecCNonce || f.NC != "00000001" || f.QOP != "auth" || f.RevealResponse() != vecResponse {
			t.Fatalf("response fields %+v %s", f, f.RevealResponse())
		}
		// AMT's success and the first RFB bytes in one read.
		rfb := []byte("RFB 003.008\n")
		if got := amt(append(append([]byte(nil), tr.success...), rfb...)); !bytes.Equal(got, append(tr.success, rfb...)) {
			t.Fatalf("success: %x", got)
		}
		if !x.isDirect() || !x.authorized {
			t.Fatal("not direct after AMT's success")
		}
		// Raw both ways, even bytes that look like commands.
		for _, b := range [][]byte{{0x13, 0, 0, 0, 4, 0, 0, 0, 0}, {0x40, 0, 0, 0, 0, 0, 0, 0}, {0xff}} {
			if got := con(b); !bytes.Equal(got, b) {
				t.Fatalf("console raw %x -> %x", b, got)
			}
			if got := amt(b); !bytes.Equal(got, b) {
				t.Fatalf("AMT raw %x -> %x", b, got)
			}
		}
	}
}

// TestInterceptorWipesPassword: the password's bytes are zero once the
// response is computed.
func TestInterceptorWipesPassword(t *testing.T) {
	tr := newTranscript(t)
	x, pw := vecInterceptor()
	feed(t, x.fromConsole, tr.start, 0)
	feed(t, x.fromAMT, tr.startReply, 0)
	feed(t, x.fromConsole, tr.conChallenge, 0)
	if !bytes.Equal(pw, []byte(vecPassword)) {
		t.Fatal("password wiped before it was used")
	}
	feed(t, x.fromAMT, tr.challenge, 0)
	feed(t, x.fromConsole, tr.conResponse, 0)
	if !bytes.Equal(pw, make([]byte, len(pw))) {
		t.Fatalf("password not wiped after the response: %q", pw)
	}
	x2, pw2 := vecInterceptor()
	x2.wipe()
	if !bytes.Equal(pw2, make([]byte, len(pw2))) {
		t.Fatal("wipe left the password")
	}
}

// TestInterceptorPasswordRefused: AMT's failure after amtd's response is
// errPasswordRefused, and the failure reply still reaches the console.
func TestInterceptorPasswordRefused(t *testing.T) {
	tr := newTranscript(t)
	x, _ := vecInterceptor()
	feed(t, x.fromConsole, tr.start, 0)
	feed(t, x.fromAMT, tr.startReply, 0)
	feed(t, x.fromConsole, tr.conChallenge, 0)
	feed(t, x.fromAMT, tr.challenge, 0)
	feed(t, x.fromConsole, tr.conResponse, 0)
	fail := mustMarshal(t, redir.AuthenticateSessionReply{Status: redir.AuthFailure, Type: redir.AuthDigest})
	out, err := x.fromAMT(fail)
	if !errors.Is(err, errPasswordRefused) || !bytes.Equal(out, fail) {
		t.Fatalf("got %x, %v; want the failure and errPasswordRefused", out, err)
	}
	if x.isDirect() {
		t.Fatal("direct after a refusal")
	}
}

// TestInterceptorProtocolErrors: what may not come before authentication
// ends the session, and nothing of it is forwarded.
func TestInterceptorProtocolErrors(t *testing.T) {
	tr := newTranscript(t)
	sol := mustMarshal(t, redir.StartSession{Type: redir.SessionSOL})
	basic := mustMarshal(t, redir.AuthenticateSession{Type: redir.AuthUserPass, Data: []byte("admin:pw")})
	kvmStart := mustMarshal(t, redir.KVMStart{})
	for _, c := range []struct {
		name       string
		con, amt   [][]byte // sent in turn: con[i] then amt[i]
		fromAMT    bool     // the last message is AMT's
		wantInText string
	}{
		{"KVM start before auth", [][]byte{tr.start, kvmStart}, [][]byte{tr.startReply}, false, "KVMStart"},
		{"SOL on a KVM relay", [][]byte{sol}, nil, false, "opened for"},
		{"basic auth", [][]byte{tr.start, basic}, [][]byte{tr.startReply}, false, "digest (type 4) only"},
		{"unknown byte", [][]byte{{0x99, 0, 0, 0}}, nil, false, "0x99"},
		{"second response", [][]byte{tr.start, tr.conChallenge, tr.conResponse, tr.conResponse}, [][]byte{tr.startReply, tr.challenge, nil}, false, "second digest"},
		{"AMT KVM reply before auth", [][]byte{tr.start}, [][]byte{mustMarshal(t, redir.KVMStartReply{})}, true, "KVMStartReply"},
		{"AMT bad challenge", [][]byte{tr.start, tr.conChallenge}, [][]byte{tr.startReply, mustMarshal(t, redir.AuthenticateSessionReply{Status: redir.AuthFailure, Type: redir.AuthDigest, Data: []byte{9, 'x'}})}, true, "challenge"},
		{"AMT oversize auth", [][]byte{tr.start}, [][]byte{{0x14, 1, 0, 0, 4, 0xff, 0xff, 0, 0}}, true, "length over limit"},
	} {
		t.Run(c.name, func(t *testing.T) {
			x, _ := vecInterceptor()
			var err error
			var out []byte
			for i := 0; i < max(len(c.con), len(c.amt)) && err == nil; i++ {
				if i < len(c.con) {
					out, err = x.fromConsole(c.con[i])
				}
				if err == nil && i < len(c.amt) && c.amt[i] != nil {
					out, err = x.fromAMT(c.amt[i])
				}
			}
			if !errors.Is(err, errRelayProtocol) || !bytes.Contains([]byte(err.Error()), []byte(c.wantInText)) {
				t.Fatalf("err %v, want a protocol error naming %q", err, c.wantInText)
			}
			if out != nil {
				t.Fatalf("forwarded %x with the error", out)
			}
		})
	}
}

// FuzzRelayInterceptor drives the interceptor with hostile bytes from both
// sides. Byte 0 of each chunk picks the side, byte 1 the chunk's length.
// Invariants: no panic; the accumulators stay within one message; once
// direct, bytes pass unchanged; nothing is forwarded with an error other
// than AMT's refusal.
func FuzzRelayInterceptor(f *testing.F) {
	tr := newTranscript(f)
	var seed []byte
	add := func(side byte, b []byte) {
		for len(b) > 0 {
			k := min(len(b), 255)
			seed = append(seed, side, byte(k))
			seed = append(seed, b[:k]...)
			b = b[k:]
		}
	}
	add(0, tr.start)
	add(1, tr.startReply)
	add(0, tr.query)
	add(1, tr.queryReply)
	add(0, tr.conChallenge)
	add(1, tr.challenge)
	add(0, tr.conResponse)
	add(1, append(append([]byte(nil), tr.success...), "RFB 003.008\n"...))
	add(0, []byte{0x40, 0, 0, 0, 0, 0, 0, 0})
	f.Add(seed)
	f.Add([]byte{0, 9, 0x13, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{1, 4, 0x11, 0, 0, 0, 1, 1, 0x14})
	f.Fuzz(func(t *testing.T, in []byte) {
		x, _ := vecInterceptor()
		for len(in) >= 2 {
			side, n := in[0], int(in[1])
			in = in[2:]
			n = min(n, len(in))
			chunk := in[:n]
			in = in[n:]
			wasDirect := x.isDirect()
			var out []byte
			var err error
			if side&1 == 0 {
				out, err = x.fromConsole(chunk)
			} else {
				out, err = x.fromAMT(chunk)
			}
			if wasDirect && (err != nil || !bytes.Equal(out, chunk)) {
				t.Fatalf("direct: %x -> %x, %v", chunk, out, err)
			}
			if err != nil && !errors.Is(err, errPasswordRefused) && out != nil {
				t.Fatalf("forwarded %x with %v", out, err)
			}
			if len(x.fromCon) > maxRedirMessage || len(x.fromDev) > maxRedirMessage {
				t.Fatalf("accumulators %d, %d bytes", len(x.fromCon), len(x.fromDev))
			}
			if err != nil {
				return
			}
		}
	})
}
