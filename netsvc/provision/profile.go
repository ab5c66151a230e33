package provision

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"amtd/store"
)

// ProfileSettings is what a profile sets on a device; it is the JSON of
// store.Profile.Settings.
type ProfileSettings struct {
	// Mode is "acm" or "ccm". Bare-metal activation from a hello is always
	// ACM; agents get what the profile says.
	Mode string `json:"mode"`
	// CIRA makes the device keep a CIRA connection to this appliance
	// (when [CIRA] is enabled).
	CIRA bool `json:"cira"`
	// TLS gives the device's TLS listener a certificate from the appliance
	// CA (TLS mode 2: server authentication, non-TLS still accepted).
	TLS bool `json:"tls,omitempty"`
	// Features, when set, are the redirection and consent settings given
	// to the device; nil leaves the device's own.
	Features *Features `json:"features,omitempty"`
	// Network is what the wired port gets: NetworkDHCP, NetworkStatic, or
	// NetworkKeep ("", the device's own).
	Network string `json:"network,omitempty"`
	// WiFi and IEEE8021x are read only to refuse them: a profile written
	// for RPS with wireless or 802.1X settings must not pass as applied.
	// Pointers keep the settings comparable.
	WiFi      *json.RawMessage `json:"wifi,omitempty"`
	IEEE8021x *json.RawMessage `json:"ieee8021x,omitempty"`
}

// Validate checks the settings.
func (s ProfileSettings) Validate() error {
	switch s.Mode {
	case "acm", "ccm":
	default:
		return fmt.Errorf("mode %q: want acm or ccm", s.Mode)
	}
	if s.WiFi != nil || s.IEEE8021x != nil {
		return errors.New(errWireless)
	}
	if s.Network != NetworkKeep {
		if _, ok := networkModes[s.Network]; !ok {
			return fmt.Errorf("network %q: want dhcp, static or keep", s.Network)
		}
	}
	return s.Features.validate(s.Mode)
}

// MatchRules say which devices a profile applies to without an agent
// naming it; the JSON of store.Profile.MatchRules.
type MatchRules struct {
	// UUIDs are devices this profile is for, whatever their domain.
	UUIDs []string `json:"uuids,omitempty"`
	// Suffixes are DNS suffixes (a device's or above it).
	Suffixes []string `json:"suffixes,omitempty"`
	// Default applies to every device nothing else matches.
	Default bool `json:"default,omitempty"`
}

// ParseProfile reads a stored profile's JSON.
func ParseProfile(p store.Profile) (ProfileSettings, MatchRules, error) {
	var s ProfileSettings
	var m MatchRules
	if err := json.Unmarshal(p.Settings, &s); err != nil {
		return s, m, fmt.Errorf("profile %s: settings: %w", p.Name, err)
	}
	// An empty rule set is stored as [] by the schema's default.
	if r := strings.TrimSpace(string(p.MatchRules)); r != "" && r != "[]" && r != "{}" {
		if err := json.Unmarshal(p.MatchRules, &m); err != nil {
			return s, m, fmt.Errorf("profile %s: match rules: %w", p.Name, err)
		}
	}
	return s, m, s.Validate()
}

// DefaultProfile is what a device gets when no stored profile matches it:
// ACM with CIRA.
var DefaultProfile = ProfileSettings{Mode: "acm", CIRA: true}

// SelectProfile picks the profile for a device: one listing its UUID
// first, then one listing its suffix (the longest suffix wins), then the
// default one, else DefaultProfile with name "".
func SelectProfile(profiles []store.Profile, uuid, suffix string) (string, ProfileSettings, error) {
	type cand struct {
		name string
		s    ProfileSettings
		m    MatchRules
	}
	var cs []cand
	for _, p := range profiles {
		s, m, err := ParseProfile(p)
		if err != nil {
			return "", ProfileSettings{}, err
		}
		cs = append(cs, cand{p.Name, s, m})
	}
	for _, c := range cs {
		if slices.ContainsFunc(c.m.UUIDs, func(u string) bool { return strings.EqualFold(u, uuid) }) {
			return c.name, c.s, nil
		}
	}
	best, bestLen := -1, -1
	for i, c := range cs {
		for _, sfx := range c.m.Suffixes {
			if suffixMatches(suffix, sfx) && len(sfx) > bestLen {
				best, bestLen = i, len(sfx)
			}
		}
	}
	if best >= 0 {
		return cs[best].name, cs[best].s, nil
	}
	var defaults []string
	for _, c := range cs {
		if c.m.Default {
			defaults = append(defaults, c.name)
		}
	}
	switch len(defaults) {
	case 0:
		return "", DefaultProfile, nil
	case 1:
		i := slices.IndexFunc(cs, func(c cand) bool { return c.name == defaults[0] })
		return cs[i].name, cs[i].s, nil
	}
	return "", ProfileSettings{}, errors.New("profiles " + strings.Join(defaults, ", ") + " are all marked default; keep one")
}
