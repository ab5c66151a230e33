package redir

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"amtd/secret"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustMarshal(t testing.TB, m Message) []byte {
	t.Helper()
	b, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func allMessages() []struct {
	m    Message
	wire string
} {
	return []struct {
		m    Message
		wire string
	}{
		{StartSession{Type: SessionSOL}, "10 000000 534f4c20"},
		{StartSession{Reserved: [3]byte{1}, Type: SessionKVM}, "10 010000 4b564d52"}, // MeshCentral's KVM form
		{StartSession{Type: SessionIDER}, "10 000000 49444552"},
		{StartSessionReply{Status: StartSuccess, Header: [10]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0}, OEM: []byte{0xaa, 0xbb}},
			"11 00 01000000000000000000 02 aabb"},
		{StartSessionReply{Status: StartSuccess, OEM: []byte{}}, "11 00 00000000000000000000 00"},
		{StartSessionReply{Status: StartBusy}, "11 02 0000"},
		{EndSession{}, "12 000000"},
		{AuthenticateSession{Type: AuthQuery, Data: []byte{}}, "13 00 00 00 00 00 00 00 00"}, // spec/redirection.md §2
		{AuthenticateSessionReply{Status: AuthSuccess, Type: AuthQuery, Data: []byte{1, 3, 4}}, "14 00 0000 00 03000000 010304"},
		{SOLSettings{Sequence: 1, MaxTxBuffer: 10000, TxTimeout: 100, RxTimeout: 10000, RxFlushTimeout: 100},
			"20 000000 01000000 1027 6400 0000 1027 6400 0000 00000000"},
		{SOLSettingsReply{Raw: [22]byte{1, 2, 3}}, "21 010203" + strings.Repeat("00", 19)},
		{SOLDataFromAMT{Header: [7]byte{0, 0, 0, 5}, Data: []byte("login: ")}, "2a 00000005000000 0700 6c6f67696e3a20"},
		{KVMStart{}, "40 00000000000000"},
		{KVMStartReply{}, "41 00000000000000"},
	}
}

func TestMessages(t *testing.T) {
	for _, tc := range allMessages() {
		t.Run(tc.m.String(), func(t *testing.T) {
			want := unhex(t, tc.wire)
			got := mustMarshal(t, tc.m)
			if !bytes.Equal(got, want) {
				t.Errorf("Marshal = % x\nwant      % x", got, want)
			}
			m, n, err := Parse(append(want, 0x99)) // a following byte is not consumed
			if err != nil || n != len(want) || !reflect.DeepEqual(m, tc.m) {
				t.Fatalf("Parse = %#v, %d, %v", m, n, err)
			}
			for i := 0; i < len(want); i++ {
				if _, _, err := Parse(want[:i]); !errors.Is(err, ErrShort) {
					// A failure StartSessionReply is complete at 4 bytes.
					t.Fatalf("Parse(first %d of %d) = %v, want ErrShort", i, len(want), err)
				}
			}
		})
	}
}

func TestStartReplyWaitsForStatus(t *testing.T) {
	// "Wait for ≥ 4 bytes before reading the status" (spec/redirection.md §2).
	if _, _, err := Parse([]byte{0x11, 0x00, 0x00}); !errors.Is(err, ErrShort) {
		t.Errorf("3 bytes: %v", err)
	}
	// Success with 4 bytes is still short: the full length is 13 + byte 12.
	if _, _, err := Parse(unhex(t, "11 00 0100 0000000000000000")); !errors.Is(err, ErrShort) {
		t.Errorf("12 bytes of a success reply: %v", err)
	}
	if _, _, err := Parse(unhex(t, "11 00 01000000000000000000 03 aabb")); !errors.Is(err, ErrShort) {
		t.Errorf("success reply missing one OEM byte: %v", err)
	}
	m, n, err := Parse(unhex(t, "11 ff 0000"))
	if err != nil || n != 4 || m.(StartSessionReply).Status != StartError {
		t.Errorf("error reply = %v %d %v", m, n, err)
	}
}

func TestDigestChallengeRequest(t *testing.T) {
	// [len(user)] user [0] [0] [len(uri)] uri [0] [0] [0] [0]; L = 5 + 19 + 8.
	m, err := ChallengeRequest("admin").Message()
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, "13 000000 04 20000000 05"+hex.EncodeToString([]byte("admin"))+"0000 13"+hex.EncodeToString([]byte(DigestURI))+"00000000")
	if got := mustMarshal(t, m); !bytes.Equal(got, want) {
		t.Errorf("challenge request = % x\nwant               % x", got, want)
	}
}

// The vector of spec/redirection.md §3, computed with crypto/md5 here.
func TestDigestVector(t *testing.T) {
	md5hex := func(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
	const (
		user   = "admin"
		realm  = "Digest:56ABC7BE224EF620C69EB88F01071DC8"
		pass   = "P@ssw0rd1"
		nonce  = "9b2c1d2e3f40516273849a0b1c2d3e4f"
		nc     = "00000001"
		cnonce = "0a4f113b"
		qop    = "auth"
	)
	ha1 := md5hex(user + ":" + realm + ":" + pass)
	ha2 := md5hex("POST:" + DigestURI)
	if ha2 != "63719ae578d1b7ff84edbc5762bd658b" {
		t.Errorf("HA2 = %s", ha2)
	}
	resp := md5hex(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":" + qop + ":" + ha2)
	if resp != "469aeedf1ed83575e31619daf942dd26" {
		t.Errorf("response = %s", resp)
	}

	// AMT's challenge as it arrives, then the response amtd substitutes.
	chData, _ := DigestChallenge{Realm: realm, Nonce: nonce, QOP: qop}.Data()
	reply := mustMarshal(t, AuthenticateSessionReply{Status: AuthFailure, Type: AuthDigest, Data: chData})
	m, _, err := Parse(reply)
	if err != nil {
		t.Fatal(err)
	}
	r := m.(AuthenticateSessionReply)
	ch, err := ParseDigestChallenge(r.Data)
	if err != nil || ch.Realm != realm || ch.Nonce != nonce || ch.QOP != qop {
		t.Fatalf("challenge = %+v, %v", ch, err)
	}

	f := DigestFields{User: user, Realm: ch.Realm, Nonce: ch.Nonce, URI: DigestURI, CNonce: cnonce, NC: nc,
		Response: secret.FromString(resp), QOP: ch.QOP}
	am, err := f.Message()
	if err != nil {
		t.Fatal(err)
	}
	wantL := len(user) + len(realm) + len(nonce) + len(DigestURI) + len(cnonce) + len(nc) + len(resp) + len(qop) + 8
	if len(am.Data) != wantL {
		t.Errorf("L = %d, want %d", len(am.Data), wantL)
	}
	wire := mustMarshal(t, am)
	if wire[4] != byte(AuthDigest) || int(wire[5]) != wantL%256 || int(wire[6]) != wantL/256 {
		t.Errorf("header % x", wire[:9])
	}
	m2, _, err := Parse(wire)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseDigestFields(m2.(AuthenticateSession).Data)
	if err != nil {
		t.Fatal(err)
	}
	if back.RevealResponse() != resp || back.User != user || back.Realm != realm || back.QOP != qop || back.NC != nc {
		t.Errorf("fields = %+v", back)
	}
	if s := fmt.Sprintf("%v %+v %s", m2, back, m2); strings.Contains(s, resp) {
		t.Errorf("printing leaks the digest response: %s", s)
	}
}

func TestParseErrors(t *testing.T) {
	_, _, err := Parse([]byte{0x55, 1, 2})
	var pe *ParseError
	if !errors.As(err, &pe) || !errors.Is(err, ErrUnknownCommand) || !strings.Contains(err.Error(), "0x55") {
		t.Errorf("unknown command: %v", err)
	}
	// A huge announced length is refused from the 9-byte header alone.
	_, _, err = Parse(unhex(t, "13 000000 04 ffffff7f"))
	if !errors.Is(err, ErrTooLong) || !errors.As(err, &pe) || pe.Offset != 5 {
		t.Errorf("huge auth data: %v", err)
	}
	if _, err := ParseDigestFields([]byte{5, 'a'}); err == nil {
		t.Error("truncated digest fields accepted")
	}
	if _, err := ParseDigestFields(append(make([]byte, 8), 1)); err == nil {
		t.Error("digest fields with trailing byte accepted")
	}
	if ch, err := ParseDigestChallenge([]byte{1, 'r', 1, 'n', 4, 'a', 'u', 't', 'h', 0}); err != nil || ch.QOP != "auth" {
		t.Errorf("challenge with a trailing byte: %+v %v", ch, err)
	}
	if _, err := (DigestFields{User: strings.Repeat("u", 256)}).Data(); err == nil {
		t.Error("256-byte user encoded")
	}
}

func TestSupportedAuthTypes(t *testing.T) {
	m, _, err := Parse(unhex(t, "14 00 0000 00 02000000 0304"))
	if err != nil {
		t.Fatal(err)
	}
	got := m.(AuthenticateSessionReply).SupportedAuthTypes()
	if !reflect.DeepEqual(got, []AuthType{AuthBadDigest, AuthDigest}) {
		t.Errorf("types = %v", got)
	}
}

func FuzzRedir(f *testing.F) {
	for _, tc := range allMessages() {
		f.Add(unhex(f, tc.wire))
	}
	f.Add(unhex(f, "13 000000 04 ffffff7f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, n, err := Parse(b)
		if err != nil {
			var pe *ParseError
			if !errors.Is(err, ErrShort) && !errors.As(err, &pe) {
				t.Fatalf("error %T: %v", err, err)
			}
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("used %d of %d bytes", n, len(b))
		}
		again, err := Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, n2, err := Parse(again)
		if err != nil || n2 != len(again) || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-parse %v = %v %d %v", m, m2, n2, err)
		}
		if a, ok := m.(AuthenticateSession); ok && a.Type == AuthDigest {
			if f, err := ParseDigestFields(a.Data); err == nil {
				d, err := f.Data()
				if err != nil || !bytes.Equal(d, a.Data) {
					t.Fatalf("digest fields re-encode differently")
				}
			}
		}
		if r, ok := m.(AuthenticateSessionReply); ok {
			_, _ = ParseDigestChallenge(r.Data)
		}
	})
}
