package apf

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

func addSeeds(f *testing.F) {
	wire, _ := stream(f)
	f.Add(wire)
	for _, tc := range allMessages() {
		f.Add(mustMarshal(f, tc.m))
	}
	f.Add(unhex(f, "50 0000000D 74 63 70 69 70 2d 66 6f 72 77 61 72 64 00 00000003 000000 00004260"))
	f.Add(unhex(f, "D3 0000001E 0000000A"))
	f.Add(unhex(f, "5E 00000001 00100001"))
	f.Add(unhex(f, "FA 00000002 7b7d"))
}

// FuzzAPFParse checks that Parse never panics, never claims more bytes than
// it was given, reports only ErrShort or a *ParseError, and that whatever it
// decodes re-encodes to the same message.
func FuzzAPFParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, n, err := Parse(data)
		if err != nil {
			var pe *ParseError
			if !errors.Is(err, ErrShort) && !errors.As(err, &pe) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if pe != nil && (pe.Offset < 0 || pe.Offset >= len(data)) {
				t.Fatalf("error offset %d outside %d bytes: %v", pe.Offset, len(data), err)
			}
			return
		}
		if n <= 0 || n > len(data) {
			t.Fatalf("Parse used %d of %d bytes", n, len(data))
		}
		b, err := Marshal(m)
		if err != nil {
			t.Fatalf("re-encode %v: %v", m, err)
		}
		// A following KEEPALIVE_REQUEST settles the two length-ambiguous replies.
		m2, n2, err := Parse(append(b, byte(TypeKeepaliveRequest), 0, 0, 0, 0))
		if err != nil || n2 != len(b) || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-parse of %v = %v, %d, %v", m, m2, n2, err)
		}
	})
}

// FuzzAPFReader checks that the Reader gives the same messages and the same
// outcome however the stream is cut into reads.
func FuzzAPFReader(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		whole := NewReader(bytes.NewReader(data), Limits{MaxData: 64 << 10})
		chunk := 1 + len(data)%13
		pieces := NewReader(&chunkReader{b: data, n: chunk}, Limits{MaxData: 64 << 10})
		for i := 0; ; i++ {
			m1, err1 := whole.ReadMessage()
			m2, err2 := pieces.ReadMessage()
			if (err1 == nil) != (err2 == nil) || !reflect.DeepEqual(m1, m2) {
				t.Fatalf("message %d: whole %v/%v, in %d-byte reads %v/%v", i, m1, err1, chunk, m2, err2)
			}
			if err1 != nil {
				if err1.Error() != err2.Error() {
					t.Fatalf("errors differ: %v / %v", err1, err2)
				}
				if err1 != io.EOF && whole.Offset() >= int64(len(data)) {
					t.Fatalf("error %v at offset %d past the %d bytes", err1, whole.Offset(), len(data))
				}
				return
			}
		}
	})
}
