package setupbin

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecode: any input decodes or is refused with ErrFormat; what decodes
// without notes encodes back to the same bytes' meaning.
// Seeds: testdata/fuzz/FuzzDecode (amtd-written files, plain and scrambled,
// and one in the MeshCentral decoder layout).
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Decode(b)
		if err != nil {
			return
		}
		for _, r := range file.Records {
			SettingsOf(r)
		}
		if len(file.Notes) != 0 {
			return
		}
		again, err := Encode(file)
		if err != nil {
			t.Fatalf("decoded file does not encode: %v", err)
		}
		back, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded file does not decode: %v", err)
		}
		if len(back.Records) != len(file.Records) {
			t.Fatalf("%d records became %d", len(file.Records), len(back.Records))
		}
		for i := range back.Records {
			a, b := file.Records[i], back.Records[i]
			if a.Flags != b.Flags || !reflect.DeepEqual(normalize(a.Vars), normalize(b.Vars)) {
				t.Fatalf("record %d changed: %+v -> %+v", i, a, b)
			}
		}
		if !bytes.Equal(again[:16], b[:16]) {
			t.Fatal("file type changed")
		}
	})
}

func normalize(vs []Var) []Var {
	out := make([]Var, 0, len(vs))
	for _, v := range vs {
		if v.Value == nil {
			v.Value = []byte{}
		}
		out = append(out, v)
	}
	return out
}
