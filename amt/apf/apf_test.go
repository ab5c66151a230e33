package apf

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"amtd/amt/guid"
	"amtd/secret"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "\n", "").Replace(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustMarshal(t testing.TB, m Message) []byte {
	t.Helper()
	b, err := Marshal(m)
	if err != nil {
		t.Fatalf("Marshal(%v): %v", m, err)
	}
	return b
}

// The byte vectors of spec/apf.md §3.
func TestSpecVectors(t *testing.T) {
	tests := []struct {
		name string
		wire string
		want Message
	}{
		{
			"GWM tcpip-forward (30 bytes)",
			"50 0000000D 74 63 70 69 70 2d 66 6f 72 77 61 72 64 00 00000003 000000 00004260",
			TCPIPForward{WantReply: false, Address: "\x00\x00\x00", Port: 16992},
		},
		{
			"SERVICE_REQUEST auth (23 bytes)",
			"05 00000012" + hex.EncodeToString([]byte("auth@amt.intel.com")),
			ServiceRequest{Service: ServiceAuth},
		},
		{
			"SERVICE_REQUEST pfwd (23 bytes)",
			"05 00000012" + hex.EncodeToString([]byte("pfwd@amt.intel.com")),
			ServiceRequest{Service: ServicePortForward},
		},
		{
			"KEEPALIVE_OPTIONS_REPLY 30/10",
			"D3 0000001E 0000000A",
			KeepaliveOptionsReply{Interval: 30, Timeout: 10},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wire := unhex(t, tc.wire)
			m, n, err := Parse(wire)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if n != len(wire) {
				t.Errorf("Parse used %d of %d bytes", n, len(wire))
			}
			if !reflect.DeepEqual(m, tc.want) {
				t.Errorf("Parse = %#v, want %#v", m, tc.want)
			}
			if got := mustMarshal(t, tc.want); !bytes.Equal(got, wire) {
				t.Errorf("Marshal = % x, want % x", got, wire)
			}
		})
	}
	if n := len(unhex(t, tests[0].wire)); n != 30 {
		t.Errorf("tcpip-forward vector is %d bytes, spec says 30", n)
	}
	if n := len(unhex(t, tests[1].wire)); n != 23 {
		t.Errorf("SERVICE_REQUEST vector is %d bytes, spec says 23", n)
	}
}

var testUUID = guid.FromSMBIOS([16]byte{0x4b, 0x52, 0x9b, 0x93, 0xd4, 0x13, 0x18, 0x1d, 0xe4, 0x87, 0x1c, 0x69, 0x7a, 0x6b, 0x7a, 0x2b})

// allMessages holds one value of every message type with the length the
// table of spec/apf.md §2 gives for it.
func allMessages() []struct {
	m   Message
	len int
} {
	return []struct {
		m   Message
		len int
	}{
		{Disconnect{Reason: DisconnectByApplication}, 7},
		{ServiceRequest{Service: ServiceAuth}, 23},
		{ServiceAccept{Service: ServicePortForward}, 23},
		{UserauthRequest{User: "cira", Service: ServicePortForward, Method: MethodPassword, Password: secret.FromString("P@ssw0rd")}, 18 + 4 + 18 + 8 + 8},
		{UserauthRequest{User: "cira", Service: ServicePortForward, Method: MethodNone}, 13 + 4 + 18 + 4},
		{UserauthFailure{Methods: MethodPassword}, 15},
		{UserauthFailure{Methods: MethodPassword, OneByteFlag: true}, 14},
		{UserauthFailure{Methods: MethodPassword, PartialSuccess: true}, 15},
		{UserauthFailure{Methods: MethodPassword, PartialSuccess: true, OneByteFlag: true}, 14},
		{UserauthSuccess{}, 1},
		{TCPIPForward{WantReply: true, Address: "amt-host", Port: 16993}, 14 + 13 + 8},
		{CancelTCPIPForward{WantReply: true, Address: "10.0.0.5", Port: 5900}, 14 + 20 + 8},
		{UDPSendTo{WantReply: false, Address: "10.0.0.9", Port: 162, OriginatorAddress: "10.0.0.5", OriginatorPort: 40000, Data: []byte("trap")}, 26 + 25 + 8 + 8 + 4},
		{GlobalRequest{Name: "keepalive@openssh.com", WantReply: true}, 6 + 21},
		{RequestSuccess{HasPort: true, Port: 16992}, 5},
		{RequestSuccess{}, 1},
		{RequestFailure{}, 1},
		{ChannelOpen{ChannelType: ChannelForwardedTCPIP, SenderChannel: 4, InitialWindow: 81920, Reserved: ChannelOpenReserved,
			ConnectedAddress: "", ConnectedPort: 16992, OriginatorAddress: "1.2.3.4", OriginatorPort: 1028}, 33 + 15 + 0 + 7},
		{ChannelOpenConfirmation{RecipientChannel: 4, SenderChannel: 7, InitialWindow: 4096, Reserved: ChannelOpenReserved}, 17},
		{ChannelOpenFailure{RecipientChannel: 4, Reason: OpenResourceShortage}, 17},
		{ChannelWindowAdjust{RecipientChannel: 7, BytesToAdd: 499}, 9},
		{ChannelData{RecipientChannel: 7, Data: []byte("POST /wsman HTTP/1.1\r\n")}, 9 + 22},
		{ChannelData{RecipientChannel: 7, Data: []byte{}}, 9},
		{ChannelClose{RecipientChannel: 7}, 5},
		{ProtocolVersion{Major: 1, Minor: 0, Trigger: TriggerPeriodic, UUID: testUUID}, 93},
		{KeepaliveRequest{Cookie: 0xdeadbeef}, 5},
		{KeepaliveReply{Cookie: 0xdeadbeef}, 5},
		{KeepaliveOptionsRequest{Interval: 30, Timeout: 90}, 9},
		{KeepaliveOptionsReply{Interval: 30, Timeout: 0}, 9},
	}
}

func TestRoundTripEveryType(t *testing.T) {
	seen := map[MsgType]bool{}
	for _, tc := range allMessages() {
		t.Run(tc.m.String(), func(t *testing.T) {
			wire := mustMarshal(t, tc.m)
			if len(wire) != tc.len {
				t.Errorf("encoded %d bytes, want %d: % x", len(wire), tc.len, wire)
			}
			if MsgType(wire[0]) != tc.m.Type() {
				t.Errorf("type byte %d, want %d", wire[0], tc.m.Type())
			}
			// A trailing KEEPALIVE_REQUEST settles the two messages whose
			// length depends on the next byte.
			next := mustMarshal(t, KeepaliveRequest{Cookie: 1})
			m, n, err := Parse(append(wire, next...))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if n != len(wire) {
				t.Errorf("Parse used %d bytes, want %d", n, len(wire))
			}
			if !reflect.DeepEqual(m, tc.m) {
				t.Errorf("Parse = %#v\nwant    %#v", m, tc.m)
			}
			// Every strict prefix is incomplete, never an error or a
			// different message.
			for i := 0; i < len(wire); i++ {
				if _, _, err := Parse(wire[:i]); !errors.Is(err, ErrShort) {
					t.Fatalf("Parse(first %d of %d bytes) = %v, want ErrShort", i, len(wire), err)
				}
			}
			seen[tc.m.Type()] = true
		})
	}
	for typ := range typeNames {
		if typ != TypeJSONControl && !seen[typ] {
			t.Errorf("no round-trip test for %s", typ)
		}
	}
}

func TestUserauthFailureBothForms(t *testing.T) {
	// MPS/MeshCentral: 2-byte flag; GWM: SSH's 1-byte boolean (spec/apf.md §2).
	fifteen := unhex(t, "33 00000008 70617373776f7264 00 00")
	fourteen := unhex(t, "33 00000008 70617373776f7264 00")
	if len(fifteen) != 15 || len(fourteen) != 14 {
		t.Fatal("bad test vectors")
	}
	if got := mustMarshal(t, UserauthFailure{Methods: MethodPassword}); !bytes.Equal(got, fifteen) {
		t.Errorf("amtd encodes % x, want the 15-byte form % x", got, fifteen)
	}
	next := unhex(t, "34") // USERAUTH_SUCCESS after it, as a retry would bring
	for _, tc := range []struct {
		wire []byte
		one  bool
	}{{fifteen, false}, {fourteen, true}} {
		m, n, err := Parse(append(append([]byte(nil), tc.wire...), next...))
		if err != nil {
			t.Fatal(err)
		}
		want := UserauthFailure{Methods: "password", OneByteFlag: tc.one}
		if n != len(tc.wire) || !reflect.DeepEqual(m, want) {
			t.Errorf("Parse(% x) = %#v, %d", tc.wire, m, n)
		}
		// At the end of a stream the 14-byte form is settled by the Reader.
		r := NewReader(bytes.NewReader(tc.wire), Limits{})
		m, err = r.ReadMessage()
		if err != nil || !reflect.DeepEqual(m, want) {
			t.Errorf("ReadMessage(% x) = %#v, %v", tc.wire, m, err)
		}
		if _, err := r.ReadMessage(); err != io.EOF {
			t.Errorf("after it: %v, want EOF", err)
		}
	}
	if _, _, err := Parse(fourteen); !errors.Is(err, ErrShort) {
		t.Errorf("Parse of exactly 14 bytes = %v, want ErrShort until the next byte tells the form", err)
	}
}

func TestRequestSuccessForms(t *testing.T) {
	bare := []byte{81}
	withPort := unhex(t, "51 00004260")
	r := NewReader(bytes.NewReader(append(append(append([]byte(nil), withPort...), bare...), bare...)), Limits{})
	want := []Message{RequestSuccess{HasPort: true, Port: 16992}, RequestSuccess{}, RequestSuccess{}}
	for i, w := range want {
		m, err := r.ReadMessage()
		if err != nil || !reflect.DeepEqual(m, w) {
			t.Errorf("message %d = %#v, %v; want %#v", i, m, err, w)
		}
	}
	if _, err := r.ReadMessage(); err != io.EOF {
		t.Errorf("end = %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name   string
		wire   string
		lim    Limits
		is     error
		offset int
		text   string
	}{
		{"unknown type", "07 00000000", Limits{}, ErrUnknownType, 0, "0x07"},
		{"type zero", "00", Limits{}, ErrUnknownType, 0, "0x00"},
		{"JSON_CONTROL", "FA 00000002 7b7d", Limits{}, ErrJSONControl, 0, "MeshCentral"},
		// The length is refused before the 2049 bytes arrive.
		{"service name over 2048", "05 00000801", Limits{}, ErrTooLong, 1, "2049 bytes, limit 2048"},
		{"channel data over 1 MiB", "5E 00000001 00100001", Limits{}, ErrTooLong, 5, "1048577 bytes, limit 1048576"},
		{"channel data over configured window", "5E 00000001 00001001", Limits{MaxData: 4096}, ErrTooLong, 5, "4097 bytes, limit 4096"},
		{"channel open address too long", "5A 0000000f" + hex.EncodeToString([]byte(ChannelForwardedTCPIP)) + "00000004 00001000 ffffffff 7fffffff",
			Limits{}, ErrTooLong, 32, "2147483647 bytes"},
		{"huge length u32", "05 ffffffff", Limits{}, ErrTooLong, 1, "4294967295 bytes"},
		{"userauth publickey", "32 00000001 61 00000012" + hex.EncodeToString([]byte(ServicePortForward)) + "00000009" + hex.EncodeToString([]byte("publickey")),
			Limits{}, ErrMalformed, 28, `"publickey"`},
		{"password change flag", "32 00000001 61 00000012" + hex.EncodeToString([]byte(ServicePortForward)) + "00000008" + hex.EncodeToString([]byte("password")) + "01",
			Limits{}, ErrMalformed, 40, "password change"},
		{"udp-send-to data too long", "50 00000019" + hex.EncodeToString([]byte(RequestUDPSendTo)) + "00 00000000 00000001 00000000 00000000 00000801",
			Limits{}, ErrTooLong, 47, "2049 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := tc.lim.Parse(unhex(t, tc.wire))
			if !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err %T is not a *ParseError", err)
			}
			if pe.Offset != tc.offset {
				t.Errorf("offset %d, want %d (%v)", pe.Offset, tc.offset, err)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q does not mention %q", err, tc.text)
			}
		})
	}
}

func TestEncodeLimits(t *testing.T) {
	if _, err := Marshal(ServiceRequest{Service: strings.Repeat("x", MaxStringLen+1)}); err == nil {
		t.Error("2049-byte service name encoded")
	}
	if _, err := Marshal(ServiceRequest{Service: strings.Repeat("x", MaxStringLen)}); err != nil {
		t.Errorf("2048-byte service name refused: %v", err)
	}
	if _, err := Marshal(ChannelData{Data: make([]byte, MaxDataLen+1)}); err == nil {
		t.Error("CHANNEL_DATA over 1 MiB encoded")
	}
	b, err := Marshal(ChannelData{RecipientChannel: 1, Data: make([]byte, MaxDataLen)})
	if err != nil {
		t.Fatal(err)
	}
	if m, n, err := Parse(b); err != nil || n != len(b) || len(m.(ChannelData).Data) != MaxDataLen {
		t.Errorf("1 MiB CHANNEL_DATA did not round-trip: %v", err)
	}
}

func TestStringRedactsPassword(t *testing.T) {
	m := UserauthRequest{User: "cira", Service: ServicePortForward, Method: MethodPassword, Password: secret.FromString("Sup3rS3cret!")}
	s := m.String()
	if strings.Contains(s, "Sup3rS3cret") {
		t.Fatalf("String leaks the password: %s", s)
	}
	if !strings.Contains(s, "[redacted]") || !strings.Contains(s, `user="cira"`) {
		t.Errorf("String = %s", s)
	}
	if got := (Disconnect{Reason: DisconnectTemporarilyUnavailable}).String(); got != "DISCONNECT reason=TEMPORARILY_UNAVAILABLE" {
		t.Errorf("Disconnect.String = %q", got)
	}
	if got := DisconnectReason(99).String(); got != "reason 99" {
		t.Errorf("unknown reason = %q", got)
	}
	if got := OpenFailureReason(3).String(); got != "UNKNOWN_CHANNEL_TYPE" {
		t.Errorf("open failure 3 = %q", got)
	}
	if got := TriggerLME.String(); got != "LME" {
		t.Errorf("trigger 254 = %q", got)
	}
	if got := MsgType(211).String(); got != "KEEPALIVE_OPTIONS_REPLY" {
		t.Errorf("type 211 = %q", got)
	}
}

// stream is a realistic session from AMT's side followed by the server's
// replies: every message type, in one byte string.
func stream(t testing.TB) ([]byte, []Message) {
	var wire []byte
	var msgs []Message
	for _, tc := range allMessages() {
		b, err := tc.m.AppendBinary(wire)
		if err != nil {
			t.Fatal(err)
		}
		wire = b
		msgs = append(msgs, tc.m)
	}
	return wire, msgs
}

func readAll(t *testing.T, r *Reader) []Message {
	t.Helper()
	var got []Message
	for {
		m, err := r.ReadMessage()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatalf("ReadMessage after %d messages (offset %d): %v", len(got), r.Offset(), err)
		}
		got = append(got, m)
	}
}

func TestReaderSplitsAndJoins(t *testing.T) {
	wire, want := stream(t)
	feeds := map[string]io.Reader{
		"all at once":      bytes.NewReader(wire),
		"one byte a time":  iotest.OneByteReader(bytes.NewReader(wire)),
		"half reads":       iotest.HalfReader(bytes.NewReader(wire)),
		"data with EOF":    iotest.DataErrReader(bytes.NewReader(wire)),
		"7-byte fragments": &chunkReader{b: wire, n: 7},
	}
	for name, feed := range feeds {
		t.Run(name, func(t *testing.T) {
			r := NewReader(feed, Limits{})
			got := readAll(t, r)
			if len(got) != len(want) {
				t.Fatalf("%d messages, want %d", len(got), len(want))
			}
			for i := range want {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Errorf("message %d = %#v, want %#v", i, got[i], want[i])
				}
			}
			if r.Offset() != int64(len(wire)) {
				t.Errorf("Offset = %d, want %d", r.Offset(), len(wire))
			}
		})
	}
}

type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.n)], c.b)
	c.b = c.b[n:]
	return n, nil
}

func TestReaderCopiesChannelData(t *testing.T) {
	wire := mustMarshal(t, ChannelData{RecipientChannel: 1, Data: []byte("first")})
	wire = append(wire, mustMarshal(t, ChannelData{RecipientChannel: 1, Data: []byte("other")})...)
	r := NewReader(bytes.NewReader(wire), Limits{})
	m1, _ := r.ReadMessage()
	_, _ = r.ReadMessage()
	if got := string(m1.(ChannelData).Data); got != "first" {
		t.Errorf("first message's data changed to %q by the next read", got)
	}
}

func TestReaderErrors(t *testing.T) {
	good := mustMarshal(t, KeepaliveRequest{Cookie: 5})

	t.Run("bad type after good message", func(t *testing.T) {
		r := NewReader(bytes.NewReader(append(append([]byte(nil), good...), 0x07, 1, 2, 3)), Limits{})
		if _, err := r.ReadMessage(); err != nil {
			t.Fatal(err)
		}
		_, err := r.ReadMessage()
		var pe *ParseError
		if !errors.As(err, &pe) || !errors.Is(err, ErrUnknownType) {
			t.Fatalf("err = %v", err)
		}
		if r.Offset() != 5 || !strings.Contains(err.Error(), "stream offset 5") {
			t.Errorf("offset %d, err %v", r.Offset(), err)
		}
		if _, err2 := r.ReadMessage(); err2 == nil {
			t.Error("error is not sticky")
		}
	})
	t.Run("stream ends inside a message", func(t *testing.T) {
		r := NewReader(bytes.NewReader(append(append([]byte(nil), good...), good[:3]...)), Limits{})
		_, _ = r.ReadMessage()
		_, err := r.ReadMessage()
		if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "KEEPALIVE_REQUEST") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("read error passes through", func(t *testing.T) {
		boom := errors.New("connection reset")
		r := NewReader(io.MultiReader(bytes.NewReader(good[:2]), iotest.ErrReader(boom)), Limits{})
		if _, err := r.ReadMessage(); !errors.Is(err, boom) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("oversize data refused before buffering", func(t *testing.T) {
		// Announces 1 MiB + 1 and then streams forever: the Reader must stop
		// at the header, not buffer.
		hdr := unhex(t, "5E 00000001 00100001")
		r := NewReader(io.MultiReader(bytes.NewReader(hdr), zeros{}), Limits{})
		_, err := r.ReadMessage()
		if !errors.Is(err, ErrTooLong) {
			t.Fatalf("err = %v", err)
		}
		if cap(r.buf) > initialReadBuffer {
			t.Errorf("buffer grew to %d bytes for a refused message", cap(r.buf))
		}
	})
	t.Run("configured window bounds the buffer", func(t *testing.T) {
		lim := Limits{MaxData: 4096}
		wire := mustMarshal(t, ChannelData{RecipientChannel: 2, Data: make([]byte, 4096)})
		r := NewReader(bytes.NewReader(wire), lim)
		if _, err := r.ReadMessage(); err != nil {
			t.Fatal(err)
		}
		if cap(r.buf) > lim.MaxMessageLen() {
			t.Errorf("buffer %d > MaxMessageLen %d", cap(r.buf), lim.MaxMessageLen())
		}
		big := mustMarshal(t, ChannelData{RecipientChannel: 2, Data: make([]byte, 4097)})
		if _, err := NewReader(bytes.NewReader(big), lim).ReadMessage(); !errors.Is(err, ErrTooLong) {
			t.Errorf("4097 bytes with a 4096 window: %v", err)
		}
	})
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestReaderNoCopy: ReadMessageNoCopy gives the same messages as
// ReadMessage, each checked before the next read reuses the buffer.
func TestReaderNoCopy(t *testing.T) {
	wire, want := stream(t)
	for name, feed := range map[string]io.Reader{
		"all at once":      bytes.NewReader(wire),
		"7-byte fragments": &chunkReader{b: wire, n: 7},
	} {
		t.Run(name, func(t *testing.T) {
			r := NewReader(feed, Limits{})
			for i := range want {
				m, err := r.ReadMessageNoCopy()
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if !reflect.DeepEqual(m, want[i]) {
					t.Errorf("message %d = %#v, want %#v", i, m, want[i])
				}
			}
			if _, err := r.ReadMessageNoCopy(); err != io.EOF {
				t.Fatalf("after the stream: %v, want io.EOF", err)
			}
		})
	}
}
