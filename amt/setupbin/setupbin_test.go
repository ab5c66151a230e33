package setupbin

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

var le = binary.LittleEndian

func bareMetal(t *testing.T, newPW string) Settings {
	t.Helper()
	sum := sha256.Sum256([]byte("appliance root"))
	return Settings{
		CurrentMEBxPassword: "admin",
		NewMEBxPassword:     newPW,
		PKIDNSSuffix:        "site.example.com",
		ConfigServerFQDN:    "site.example.com",
		HostName:            "amt-0123456789-r1",
		RootHash:            &RootHash{Algorithm: 2, Hash: sum[:], Name: "amtd site.example.com"},
		ServerAddr:          netip.MustParseAddr("192.0.2.10"),
		ServerPort:          9971,
		Start:               true,
	}
}

func fileOf(t *testing.T, flags uint32, pws ...string) *File {
	t.Helper()
	f := &File{Version: 3}
	for _, pw := range pws {
		vs, err := bareMetal(t, pw).Vars()
		if err != nil {
			t.Fatal(err)
		}
		f.Records = append(f.Records, Record{Flags: flags, Vars: vs})
	}
	return f
}

// The header and record layout, byte by byte, as spec/network.md §3.1 gives it.
func TestEncodeLayout(t *testing.T) {
	b, err := Encode(fileOf(t, RecordValid, "N3w-Pass!", "0ther-Pass!"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 3*ChunkSize {
		t.Fatalf("%d bytes, want 3 chunks", len(b))
	}
	if got := hex.EncodeToString(b[:16]); got != "a7f7f6c689c4f64793ede2e5020da51d" {
		t.Fatalf("FileTypeUUID %s, want the v3 identifier", got)
	}
	for _, c := range []struct {
		off  int
		got  uint64
		want uint64
		what string
	}{
		{16, uint64(le.Uint16(b[16:])), 1, "RecordChunkCount"},
		{18, uint64(le.Uint16(b[18:])), 42 + 2*2, "RecordHeaderBytes (two modules)"},
		{24, uint64(b[24]), 3, "Major"},
		{25, uint64(b[25]), 0, "Minor"},
		{26, uint64(le.Uint16(b[26:])), 0, "Flags"},
		{28, uint64(le.Uint32(b[28:])), 2, "DataRecordCount"},
		{32, uint64(le.Uint32(b[32:])), 0, "DataRecordsConsumed"},
		{36, uint64(le.Uint16(b[36:])), 1, "DataRecordChunkCount"},
		{40, uint64(le.Uint16(b[40:])), 1, "first module"},
		{42, uint64(le.Uint16(b[42:])), 2, "second module"},
		{44, uint64(le.Uint16(b[44:])), 0, "module list terminator"},
		{512, uint64(le.Uint32(b[512:])), 1, "record type"},
		{516, uint64(le.Uint32(b[516:])), 1, "record flags"},
		{528, uint64(le.Uint16(b[528:])), 1, "record chunk count"},
		{530, uint64(le.Uint16(b[530:])), 24, "record header bytes"},
		{532, uint64(le.Uint32(b[532:])), 1, "record number"},
		{1044, uint64(le.Uint32(b[1044:])), 2, "second record number"},
		// First entry: module 1, var 1, length 5, reserved, "admin", padded to 8.
		{536, uint64(le.Uint16(b[536:])), 1, "entry module"},
		{538, uint64(le.Uint16(b[538:])), 1, "entry var"},
		{540, uint64(le.Uint16(b[540:])), 5, "entry length"},
		{552, uint64(le.Uint16(b[552:])), 1, "second entry module (after 4-byte padding)"},
		{554, uint64(le.Uint16(b[554:])), 2, "second entry var"},
	} {
		if c.got != c.want {
			t.Errorf("offset %d %s = %d, want %d", c.off, c.what, c.got, c.want)
		}
	}
	if string(b[544:549]) != "admin" {
		t.Errorf("first value %q", b[544:549])
	}
	// The server address is little-endian: 192.0.2.10 is stored 10 2 0 192.
	if !bytes.Contains(b[512:1024], []byte{2, 0, 17, 0, 4, 0, 0, 0, 10, 2, 0, 192}) {
		t.Error("2/17 is not 192.0.2.10 stored little-endian")
	}
	if !bytes.Contains(b[512:1024], []byte{2, 0, 18, 0, 2, 0, 0, 0, 0xf3, 0x26}) {
		t.Error("2/18 is not 9971 little-endian")
	}
}

func TestRoundTrip(t *testing.T) {
	for _, flags := range []uint32{RecordValid, RecordValid | RecordScrambled} {
		in := fileOf(t, flags, "N3w-Pass!", "0ther-Pass!", "Thi3d-Pass!")
		in.Flags = FlagDoNotConsume
		b, err := Encode(in)
		if err != nil {
			t.Fatal(err)
		}
		out, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Notes) != 0 {
			t.Errorf("notes on amtd's own file: %v", out.Notes)
		}
		if out.Version != 3 || out.Major != 3 || out.Flags != FlagDoNotConsume || len(out.Records) != 3 {
			t.Fatalf("decoded %s", out)
		}
		for i, r := range out.Records {
			if r.Number != uint32(i+1) || r.Flags != flags || !reflect.DeepEqual(r.Vars, in.Records[i].Vars) {
				t.Fatalf("flags %d record %d: %+v, want %+v", flags, i, r, in.Records[i])
			}
		}
		s, unknown, err := SettingsOf(out.Records[1])
		if err != nil || len(unknown) != 0 {
			t.Fatalf("SettingsOf: %v %v", err, unknown)
		}
		if want := bareMetal(t, "0ther-Pass!"); !reflect.DeepEqual(s, want) {
			t.Fatalf("settings %+v, want %+v", s, want)
		}
	}
}

// A scrambled record stores every byte after its 24-byte header as
// (b + 17) mod 256, including the zero padding.
func TestScrambledBytes(t *testing.T) {
	plain, _ := Encode(fileOf(t, RecordValid, "N3w-Pass!"))
	scr, err := Encode(fileOf(t, RecordValid|RecordScrambled, "N3w-Pass!"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain[512:516], scr[512:516]) || !bytes.Equal(plain[520:536], scr[520:536]) {
		t.Fatal("record header changed by scrambling")
	}
	for i := 536; i < 1024; i++ {
		if scr[i] != plain[i]+17 {
			t.Fatalf("byte %d: %#x, want %#x+17", i, scr[i], plain[i])
		}
	}
	if scr[1023] != 17 {
		t.Fatalf("padding byte %#x, want 0x11", scr[1023])
	}
}

// MeshCentral's decoder reads the record header fields at 8/10/12; a file
// written that way is read, with a note (spec/network.md §3.1: accept both).
func TestDecoderLayoutRecordAccepted(t *testing.T) {
	b, _ := Encode(fileOf(t, RecordValid, "N3w-Pass!"))
	r := b[512:1024]
	copy(r[8:16], r[16:24])
	clear(r[16:24])
	f, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Records[0].Number != 1 || len(f.Records[0].Vars) != 10 {
		t.Fatalf("record %+v", f.Records[0])
	}
	if len(f.Notes) != 1 || !strings.Contains(f.Notes[0], "offsets 8-15") {
		t.Fatalf("notes %v", f.Notes)
	}
}

func TestConsume(t *testing.T) {
	f := fileOf(t, RecordValid, "N3w-Pass!", "0ther-Pass!")
	r, ok := f.Consume()
	if !ok || string(mustVar(t, r, ModME, VarNewMEBxPassword)) != "N3w-Pass!" {
		t.Fatalf("first consume %v %+v", ok, r)
	}
	if f.Consumed != 1 || f.Records[0].Valid() {
		t.Fatalf("after consume: consumed %d, first valid %v", f.Consumed, f.Records[0].Valid())
	}
	// Written back and read again, the next machine takes record 2.
	b, _ := Encode(f)
	g, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	r, ok = g.Consume()
	if !ok || string(mustVar(t, r, ModME, VarNewMEBxPassword)) != "0ther-Pass!" {
		t.Fatalf("second consume %v %+v", ok, r)
	}
	if _, ok := g.Consume(); ok || g.Next() != -1 {
		t.Fatal("a third record was handed out of a two-record file")
	}

	keep := fileOf(t, RecordValid, "N3w-Pass!")
	keep.Flags = FlagDoNotConsume
	for range 3 {
		if _, ok := keep.Consume(); !ok {
			t.Fatal("a do-not-consume file ran out")
		}
	}
	if keep.Consumed != 0 || !keep.Records[0].Valid() {
		t.Fatal("a do-not-consume file was consumed")
	}
}

func mustVar(t *testing.T, r Record, mod, id uint16) []byte {
	t.Helper()
	v, ok := r.Var(mod, id)
	if !ok {
		t.Fatalf("record lacks %d/%d", mod, id)
	}
	return v
}

func TestDecodeRefuses(t *testing.T) {
	good, _ := Encode(fileOf(t, RecordValid, "N3w-Pass!", "0ther-Pass!"))
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "header alone"},
		{"half chunk", good[:700], "whole number"},
		{"unknown type", mod(func(b []byte) []byte { b[0] ^= 1; return b }), "unknown file type"},
		{"count mismatch", mod(func(b []byte) []byte { le.PutUint32(b[28:], 3); return b }), "header says 3 records, the file holds 2"},
		{"overconsumed", mod(func(b []byte) []byte { le.PutUint32(b[32:], 5); return b }), "5 of 2 records consumed"},
		{"multi-chunk records", mod(func(b []byte) []byte { le.PutUint16(b[36:], 2); return b }), "records of 2 chunks"},
		{"record type", mod(func(b []byte) []byte { le.PutUint32(b[512:], 7); return b }), "record 1: not a valid setup.bin: record type 7"},
		{"value past record", mod(func(b []byte) []byte { le.PutUint16(b[540:], 600); return b }), "600-byte value runs past"},
		{"no header length", mod(func(b []byte) []byte { le.PutUint16(b[530:], 9); return b }), "neither at offset 18 nor 10"},
		{"too large", make([]byte, MaxFileLen+ChunkSize), "the largest amtd reads"},
	} {
		_, err := Decode(c.in)
		if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrFormat with %q", c.name, err, c.want)
		}
	}
}

func TestEncodeRefuses(t *testing.T) {
	full := &File{Records: []Record{{Flags: RecordValid, Vars: []Var{{ModCM, VarPKIDNSSuffix, make([]byte, 300)}, {ModCM, VarConfigServerFQDN, make([]byte, 200)}}}}}
	if _, err := Encode(full); err == nil || !strings.Contains(err.Error(), "more than the 488 bytes") {
		t.Errorf("overfull record: %v", err)
	}
	if _, err := Encode(&File{Version: 5}); err == nil {
		t.Error("version 5 encoded")
	}
	if _, err := Encode(&File{Records: make([]Record, MaxRecords+1)}); err == nil {
		t.Error("too many records encoded")
	}

	for _, c := range []struct {
		name string
		s    Settings
		want string
	}{
		{"long password", Settings{CurrentMEBxPassword: "admin", NewMEBxPassword: strings.Repeat("a", 33)}, "at most 32"},
		{"new without current", Settings{NewMEBxPassword: "N3w-Pass!"}, "needs the current one"},
		{"bad hash", Settings{RootHash: &RootHash{Algorithm: 2, Hash: make([]byte, 20)}}, "algorithm 2 with 20 bytes"},
		{"ipv6 server", Settings{ServerAddr: netip.MustParseAddr("2001:db8::1")}, "IPv4"},
		{"long suffix", Settings{PKIDNSSuffix: strings.Repeat("a", 256)}, "at most 255"},
	} {
		if _, err := c.s.Vars(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}
