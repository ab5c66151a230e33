package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestNeverPrinted(t *testing.T) {
	const pw = "Sup3r$ecretPw!"
	v := FromString(pw)
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "pw", v)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "pw", v)
	js, _ := json.Marshal(struct{ P Value }{v})
	out := strings.Join([]string{
		fmt.Sprint(v), fmt.Sprintf("%v %+v %#v %s %q %x %X", v, v, v, v, v, v, v),
		fmt.Sprintf("%v", struct{ P Value }{v}), fmt.Sprintf("%+v", &struct{ P Value }{v}),
		string(js), logs.String(), fmt.Errorf("wrap: %v", v).Error(),
	}, "\n")
	for _, leak := range []string{pw, fmt.Sprintf("%x", pw)} {
		if strings.Contains(out, leak) {
			t.Fatalf("secret leaked:\n%s", out)
		}
	}
	if v.RevealString() != pw {
		t.Fatal("Reveal lost the value")
	}
}

func TestEqualAndWipe(t *testing.T) {
	a, b := FromString("abc"), FromString("abc")
	if !a.Equal(b) || a.Equal(FromString("abd")) {
		t.Fatal("Equal wrong")
	}
	a.Wipe()
	if string(a.Reveal()) != "\x00\x00\x00" {
		t.Fatal("Wipe left bytes")
	}
}
