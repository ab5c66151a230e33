package guid

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
)

// The vectors of spec/apf.md §6.
func TestSMBIOSVectors(t *testing.T) {
	tests := []struct {
		raw, text string
	}{
		{"00112233445566778899AABBCCDDEEFF", "33221100-5544-7766-8899-aabbccddeeff"}, // GWM TestHexToGUID
		{"0403020106050807090A0B0C0D0E0F10", "01020304-0506-0708-090a-0b0c0d0e0f10"},
		// A UUID without the RFC 4122 variant (group 4 starts with 0..7 or c..f)
		// must still convert: spec/apf.md §6.
		{"4b529b93d413181de4871c697a6b7a2b", "939b524b-13d4-1d18-e487-1c697a6b7a2b"},
		{"3ec2ffd2d19d2d41860a54b2039b72ff", "d2ffc23e-9dd1-412d-860a-54b2039b72ff"},
	}
	for _, tc := range tests {
		b, err := hex.DecodeString(tc.raw)
		if err != nil {
			t.Fatal(err)
		}
		u, err := FromSMBIOSBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		if got := u.String(); got != tc.text {
			t.Errorf("FromSMBIOS(%s) = %s, want %s", tc.raw, got, tc.text)
		}
		back := u.SMBIOS()
		if !strings.EqualFold(hex.EncodeToString(back[:]), tc.raw) {
			t.Errorf("SMBIOS(%s) = %x, want %s", tc.text, back, tc.raw)
		}
		p, err := Parse(strings.ToUpper(tc.text))
		if err != nil {
			t.Fatalf("Parse(%s): %v", tc.text, err)
		}
		if p != u {
			t.Errorf("Parse(upper %s) = %s", tc.text, p)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, s := range []string{
		"",
		"33221100-5544-7766-8899-aabbccddeef",   // 35 chars
		"33221100-5544-7766-8899-aabbccddeeffa", // 37 chars
		"33221100x5544-7766-8899-aabbccddeeff",
		"3322110g-5544-7766-8899-aabbccddeeff",
		"33221100554477668899aabbccddeeff",
	} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted", s)
		} else if !strings.Contains(err.Error(), "8-4-4-4-12") {
			t.Errorf("Parse(%q) error does not say what is expected: %v", s, err)
		}
	}
	if _, err := Parse("{33221100-5544-7766-8899-AABBCCDDEEFF}"); err != nil {
		t.Errorf("braced form rejected: %v", err)
	}
	if _, err := FromSMBIOSBytes(make([]byte, 15)); err == nil {
		t.Error("15-byte raw UUID accepted")
	}
}

func TestJSON(t *testing.T) {
	u, _ := Parse("33221100-5544-7766-8899-AABBCCDDEEFF")
	b, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `"33221100-5544-7766-8899-aabbccddeeff"` {
		t.Errorf("json = %s", b)
	}
	var v UUID
	if err := json.Unmarshal(b, &v); err != nil || v != u {
		t.Errorf("unmarshal = %v, %v", v, err)
	}
	if err := json.Unmarshal([]byte(`"nope"`), &v); err == nil {
		t.Error("bad json uuid accepted")
	}
	if c, err := Canonical("33221100-5544-7766-8899-AABBCCDDEEFF"); err != nil || c != "33221100-5544-7766-8899-aabbccddeeff" {
		t.Errorf("Canonical = %q, %v", c, err)
	}
}
