package control

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeRequest: whatever a local client sends, DecodeRequest returns a
// request with a clean command name or an error, and never panics.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"cmd":"status"}`))
	f.Add([]byte(`{"cmd":"devices","args":{"limit":10}}`))
	f.Add([]byte(`{"cmd":"status"} {"cmd":"status"}`))
	f.Add([]byte(`{"cmd":"st\u0000atus"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, line []byte) {
		req, err := DecodeRequest(line)
		if err != nil {
			return
		}
		if checkCmd(req.Cmd) != nil {
			t.Fatalf("accepted bad command %q", req.Cmd)
		}
		if len(req.Args) > 0 && !json.Valid(req.Args) {
			t.Fatalf("accepted invalid args %q", req.Args)
		}
	})
}
