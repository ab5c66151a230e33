package hello

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"amtd/amt/guid"
	"amtd/amt/roots"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// extraHash stands for the unknown hash MeshCentral's sample 2 inserts after
// entry 18; only its first and last bytes are published, so the middle is
// made up.
const extraHash = "a267c480" + "00112233445566778899aabbccddeeff0011223344556677" + "8d456079"

// sample builds MeshCentral's samples from spec/activation.md §2.3: the
// published header bytes plus the §14 default hashes in order.
func sample(t testing.TB, header string, extraAfter int) []byte {
	t.Helper()
	b := unhex(t, header)
	for i, r := range roots.Default() {
		b = append(b, 2, 32)
		b = append(b, unhex(t, r.SHA256)...)
		if i == extraAfter {
			b = append(b, 2, 32)
			b = append(b, unhex(t, extraHash)...)
		}
	}
	return b
}

const (
	header1 = "01 00 03 00 00 00 00 00 4b 52 9b 93 d4 13 18 1d e4 87 1c 69 7a 6b 7a 2b 17"
	header2 = "01 00 03 00 00 00 00 00 4b 52 9b 93 d4 13 18 1d e4 87 1c 69 7a 6b 7a 2b 18"
	header3 = "01 00 03 00 01 00 00 00 3e c2 ff d2 d1 9d 2d 41 86 0a 54 b2 03 9b 72 ff 18"
)

func TestSample1(t *testing.T) {
	b := sample(t, header1, -1)
	if len(b) != 807 {
		t.Fatalf("sample 1 is %d bytes, spec says 807", len(b))
	}
	// The published prefix of sample 1.
	if !bytes.HasPrefix(b, unhex(t, header1+" 02 20 c3 84 6b f2 4b 9e")) {
		t.Fatalf("sample 1 does not start as published: % x", b[:35])
	}
	h, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !h.AdminCredentialsSet || h.RetryCount != 0 || h.TrailingBytes != 0 {
		t.Errorf("admin=%v retry=%d trailing=%d", h.AdminCredentialsSet, h.RetryCount, h.TrailingBytes)
	}
	if got := h.UUID.String(); got != "939b524b-13d4-1d18-e487-1c697a6b7a2b" {
		t.Errorf("UUID = %s", got)
	}
	if len(h.Hashes) != 23 {
		t.Fatalf("%d hashes, want 23", len(h.Hashes))
	}
	for i, r := range roots.Default() {
		x := h.Hashes[i]
		if x.Type != SHA256 || x.Hex() != r.SHA256 {
			t.Errorf("hash %d = %s, want sha-256:%s (%s)", i, x, r.SHA256, r.CA)
		}
	}
	again, err := h.MarshalBinary()
	if err != nil || !bytes.Equal(again, b) {
		t.Errorf("re-encoding sample 1 differs (%v)", err)
	}
}

func TestSample2(t *testing.T) {
	b := sample(t, header2, 18)
	if len(b) != 841 {
		t.Fatalf("sample 2 is %d bytes, spec says 841", len(b))
	}
	h, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Hashes) != 24 {
		t.Fatalf("%d hashes, want 24 (not capped at the IRG's 23)", len(h.Hashes))
	}
	if got := h.Hashes[19].Hex(); got != extraHash {
		t.Errorf("entry 19 = %s, want the inserted %s", got, extraHash)
	}
	if _, known := roots.LookupHex(h.Hashes[19].Hex()); known {
		t.Error("the inserted hash is reported as a default root")
	}
	if h.Hashes[18].Hex() != roots.Default()[18].SHA256 || h.Hashes[20].Hex() != roots.Default()[19].SHA256 {
		t.Error("entries around the inserted one moved")
	}
}

func TestSample3Header(t *testing.T) {
	h, err := Parse(sample(t, header3, 18))
	if err != nil {
		t.Fatal(err)
	}
	if h.RetryCount != 1 || !h.AdminCredentialsSet || len(h.Hashes) != 24 {
		t.Errorf("retry=%d admin=%v hashes=%d", h.RetryCount, h.AdminCredentialsSet, len(h.Hashes))
	}
	if got := h.UUID.String(); got != "d2ffc23e-9dd1-412d-860a-54b2039b72ff" {
		t.Errorf("UUID = %s", got)
	}
}

func TestMixedHashTypes(t *testing.T) {
	u, _ := guid.Parse("01020304-0506-0708-090a-0b0c0d0e0f10")
	in := &Hello{RetryCount: 14, UUID: u, Hashes: []Hash{
		{SHA1, bytes.Repeat([]byte{1}, 20)},
		{SHA384, bytes.Repeat([]byte{3}, 48)},
		{SHA256, bytes.Repeat([]byte{2}, 32)},
	}}
	b, err := in.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 25+22+50+34 {
		t.Errorf("encoded %d bytes", len(b))
	}
	if !bytes.Equal(b[8:24], unhex(t, "04030201060508070 90a0b0c0d0e0f10")) {
		t.Errorf("UUID not in SMBIOS order: % x", b[8:24])
	}
	out, err := Parse(b)
	if err != nil || !reflect.DeepEqual(in, out) {
		t.Errorf("round trip = %+v, %v", out, err)
	}
	empty, _ := (&Hello{}).MarshalBinary()
	if h, err := Parse(empty); err != nil || len(h.Hashes) != 0 {
		t.Errorf("hello with no hashes (25 bytes) = %+v, %v", h, err)
	}
}

func TestRejects(t *testing.T) {
	good := sample(t, header1, -1)
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "0 bytes"},
		{"24 bytes", good[:24], "24 bytes, a hello has at least 25"},
		{"admin 2", mod(func(b []byte) []byte { b[0] = 2; return b }), "admin-credentials flag at offset 0 is 2"},
		{"admin 0x100", mod(func(b []byte) []byte { b[1] = 1; return b }), "is 257"},
		{"version 4", mod(func(b []byte) []byte { b[2] = 4; return b }), "interface version at offset 2 is 4"},
		{"count beyond data", good[:25+34*22+10], "hash 22 of 23 at offset 775: 32 bytes announced, 8 left"},
		{"entry header cut", good[:25+34*22+1], "hash 22 of 23: entry header at offset 773 is cut off"},
		{"sha-256 with length 48", mod(func(b []byte) []byte { b[26] = 48; return b }), "type 2 with length 48"},
		{"type 4", mod(func(b []byte) []byte { b[25] = 4; return b }), "type 4 with length 32"},
		{"MD5 length", mod(func(b []byte) []byte { b[25], b[26] = 1, 16; return b }), "type 1 with length 16"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.b)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestTrailingBytesTolerated(t *testing.T) {
	h, err := Parse(append(sample(t, header1, -1), 0, 0, 0))
	if err != nil || h.TrailingBytes != 3 || len(h.Hashes) != 23 {
		t.Errorf("trailing = %v, %v", h, err)
	}
}

func TestPSK(t *testing.T) {
	u, _ := guid.Parse("d2ffc23e-9dd1-412d-860a-54b2039b72ff")
	b := MarshalPSK(false, 3, u, [8]byte{'A', 'B', 'C', 'D', '-', '1', '2', '3'})
	if len(b) != 32 {
		t.Fatalf("PSK hello is %d bytes", len(b))
	}
	_, err := Parse(b)
	var psk *PSKError
	if !errors.As(err, &psk) || !errors.Is(err, ErrPSK) {
		t.Fatalf("err = %v, want *PSKError", err)
	}
	if psk.UUID != u || psk.RetryCount != 3 || string(psk.PID) != "ABCD-123" {
		t.Errorf("PSK report = %+v", psk)
	}
	if !strings.Contains(err.Error(), "AMT 11") || !strings.Contains(err.Error(), u.String()) {
		t.Errorf("error does not explain: %v", err)
	}
	// A PSK hello cut after the header still reports PSK, without the PID.
	if _, err := Parse(b[:25]); !errors.As(err, &psk) || psk.PID != nil {
		t.Errorf("short PSK hello = %v", err)
	}
}

func TestEncodeRefuses(t *testing.T) {
	if _, err := (&Hello{Hashes: []Hash{{SHA256, make([]byte, 20)}}}).MarshalBinary(); err == nil {
		t.Error("SHA-256 entry of 20 bytes encoded")
	}
	if _, err := (&Hello{Hashes: make([]Hash, 256)}).MarshalBinary(); err == nil {
		t.Error("256 hashes encoded")
	}
}

// FuzzHello checks Parse never panics and that what it accepts re-encodes to
// the same packet (without the tolerated trailing bytes).
func FuzzHello(f *testing.F) {
	f.Add(sample(f, header1, -1))
	f.Add(sample(f, header2, 18))
	f.Add(sample(f, header3, 18))
	f.Add(MarshalPSK(true, 1, guid.UUID{}, [8]byte{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(b)
		if err != nil {
			var psk *PSKError
			if !errors.Is(err, ErrMalformed) && !errors.As(err, &psk) {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			return
		}
		again, err := h.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(again, b[:len(b)-h.TrailingBytes]) {
			t.Fatalf("re-encoding differs:\n% x\n% x", again, b)
		}
	})
}
