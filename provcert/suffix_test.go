package provcert

import (
	"errors"
	"strings"
	"testing"
)

func errorsAs(err error, target any) bool { return errors.As(err, target) }

func TestCheckSuffix(t *testing.T) {
	tests := []struct {
		cn, suffix string
		errs, warn int
	}{
		{"amtprov.corp.example.com", "corp.example.com", 0, 0}, // vendor style: a host in the suffix
		{"amtprov.corp.example.com", "example.com", 0, 0},
		{"corp.example.com", "corp.example.com", 0, 0},
		{"example.com", "site1.corp.example.com", 0, 0}, // MeshCentral: the suffix is under the CN
		{"*.corp.example.com", "corp.example.com", 0, 1},
		{"amtprov.sales.example.com", "eng.example.com", 0, 1}, // RPS last-two-labels only
		{"AMTPROV.Corp.Example.COM.", "corp.example.com.", 0, 0},
		{"amtprov.corp.example.net", "corp.example.com", 1, 0},
		{"example.com", "com", 1, 0}, // a public suffix is no domain
		{"a.shop.co.uk", "other.co.uk", 1, 0},
		{"a.shop.co.uk", "b.shop.co.uk", 0, 1},
		{"", "corp.example.com", 1, 0},
		{"amtprov.corp.example.com", "corp_example.com", 1, 0},
		{"*.example.org", "corp.example.com", 1, 1},
		{"amtprov.corp.example.com", "site.corp.local", 1, 0},
		{"amt.site.corp.local", "site.corp.local", 0, 0}, // an internal CA may issue for .local
	}
	if ps := CheckSuffix("amtprov.corp.example.com", "site.corp.local"); !strings.Contains(ps.Error(), "KB 000100444") {
		t.Errorf(".local suffix: %v", ps)
	}
	for _, tc := range tests {
		ps := CheckSuffix(tc.cn, tc.suffix)
		if len(ps.Errors()) != tc.errs || len(ps.Warnings()) != tc.warn {
			t.Errorf("CheckSuffix(%q, %q) = %v; want %d errors, %d warnings", tc.cn, tc.suffix, ps, tc.errs, tc.warn)
		}
		for _, p := range ps {
			if p.Check != CheckDomain {
				t.Errorf("CheckSuffix(%q, %q): check %s", tc.cn, tc.suffix, p.Check)
			}
		}
	}
}

func TestNormalizeSuffix(t *testing.T) {
	for in, want := range map[string]string{"Corp.Example.COM.": "corp.example.com", " lab.example.co.uk ": "lab.example.co.uk", "x-1.example.com": "x-1.example.com"} {
		if got, err := NormalizeSuffix(in); got != want || err != nil {
			t.Errorf("NormalizeSuffix(%q) = %q, %v", in, got, err)
		}
	}
	for in, want := range map[string]string{"": "empty", "com": "public suffix", "co.uk": "public suffix", "-a.example.com": "not a DNS label", "a..example.com": "not a DNS label", "a b.com": "not a DNS label", strings.Repeat("a.", 127) + "com": "longer"} {
		if _, err := NormalizeSuffix(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NormalizeSuffix(%q) = %v, want %q", in, err, want)
		}
	}
}
