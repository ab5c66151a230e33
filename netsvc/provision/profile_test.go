package provision

import (
	"encoding/json"
	"strings"
	"testing"

	"amtd/store"
)

func prof(name, settings, rules string) store.Profile {
	return store.Profile{Name: name, Settings: json.RawMessage(settings), MatchRules: json.RawMessage(rules)}
}

func TestSelectProfile(t *testing.T) {
	ps := []store.Profile{
		prof("site", `{"mode":"acm","cira":true}`, `{"suffixes":["corp.example.com"]}`),
		prof("lab", `{"mode":"acm","cira":false}`, `{"suffixes":["lab.corp.example.com"]}`),
		prof("kiosk", `{"mode":"ccm"}`, `{"uuids":["11111111-2222-3333-4444-555555555555"]}`),
		prof("fallback", `{"mode":"acm","cira":true}`, `{"default":true}`),
		prof("agents-only", `{"mode":"ccm"}`, `[]`),
	}
	for _, c := range []struct{ uuid, suffix, want string }{
		{"11111111-2222-3333-4444-555555555555", "lab.corp.example.com", "kiosk"},
		{"00000000-0000-0000-0000-000000000001", "pc.lab.corp.example.com", "lab"},
		{"00000000-0000-0000-0000-000000000001", "corp.example.com", "site"},
		{"00000000-0000-0000-0000-000000000001", "elsewhere.example", "fallback"},
	} {
		name, _, err := SelectProfile(ps, c.uuid, c.suffix)
		if err != nil || name != c.want {
			t.Errorf("%s %s: %q %v, want %q", c.uuid, c.suffix, name, err, c.want)
		}
	}
	name, s, err := SelectProfile(ps[:3], "00000000-0000-0000-0000-000000000001", "elsewhere.example")
	if err != nil || name != "" || s != DefaultProfile {
		t.Errorf("no default: %q %+v %v", name, s, err)
	}
	two := append(ps, prof("fallback2", `{"mode":"acm"}`, `{"default":true}`))
	if _, _, err := SelectProfile(two, "", "x"); err == nil || !strings.Contains(err.Error(), "all marked default") {
		t.Errorf("two defaults: %v", err)
	}
	if _, _, err := SelectProfile([]store.Profile{prof("bad", `{"mode":"tcm"}`, `{}`)}, "", ""); err == nil {
		t.Error("mode tcm accepted")
	}
}
