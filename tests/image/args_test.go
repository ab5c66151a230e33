package image

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildRejectsBadSite: build.sh checks the site it is asked for before it
// builds anything, and says what is wrong. Needs no root: the checks come
// first.
func TestBuildRejectsBadSite(t *testing.T) {
	top, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pfx := filepath.Join(dir, "site.pfx")
	if err := os.WriteFile(pfx, []byte("not checked here"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no domain", nil, "--domain is required"},
		{"domain not a name", []string{"--domain", "site_example"}, "is not a DNS name"},
		{"domain one label", []string{"--domain", "site"}, "is not a DNS name"},
		{"address without prefix", []string{"--domain", "s.example.com", "--address", "10.0.0.5"}, "is not ADDRESS/PREFIX"},
		{"address not IPv4", []string{"--domain", "s.example.com", "--address", "10.0.300.5/24"}, "is not an IPv4 address"},
		{"prefix too long", []string{"--domain", "s.example.com", "--address", "10.0.0.5/31"}, "the prefix must be /8 to /30"},
		{"network address", []string{"--domain", "s.example.com", "--address", "10.0.0.0/24"}, "is the network or broadcast address"},
		{"router elsewhere", []string{"--domain", "s.example.com", "--address", "10.0.0.5/24", "--router", "10.0.1.1"}, "is not an address in 10.0.0.0/24"},
		{"range holds the appliance", []string{"--domain", "s.example.com", "--address", "10.0.0.150/24"}, "holds the appliance's own address 10.0.0.150"},
		{"range outside", []string{"--domain", "s.example.com", "--address", "10.0.0.5/24", "--range", "10.0.1.10-10.0.1.20"}, "is not a range of addresses in 10.0.0.0/24"},
		{"range backwards", []string{"--domain", "s.example.com", "--address", "10.0.0.5/24", "--range", "10.0.0.20-10.0.0.10"}, "is not a range of addresses"},
		{"small subnet, no range", []string{"--domain", "s.example.com", "--address", "10.0.0.5/28"}, "give the lease range with --range"},
		{"bad interface", []string{"--domain", "s.example.com", "--interface", "eth0; rm -rf /"}, "is not an interface name"},
		{"pfx without password", []string{"--domain", "s.example.com", "--pfx", pfx}, "--pfx needs --pfx-password-file"},
		{"missing pfx", []string{"--domain", "s.example.com", "--pfx", filepath.Join(dir, "none.pfx")}, "no such file"},
		{"disk free not a size", []string{"--domain", "s.example.com", "--disk", "--disk-free", "1G"}, "--disk-free 1G is not a size in MiB"},
		{"unknown option", []string{"--domian", "s.example.com"}, "unknown argument --domian"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, "out")
			cmd := exec.Command(filepath.Join(top, "packaging/image/build.sh"), append(tt.args, "--out", out)...)
			cmd.Dir = top
			b, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("build.sh %v: %v, want a non-zero exit\n%s", tt.args, err, b)
			}
			if !strings.Contains(string(b), tt.want) {
				t.Errorf("build.sh %v said:\n%s\nwant it to say %q", tt.args, b, tt.want)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("build.sh %v made %s though it refused the site", tt.args, out)
			}
		})
	}
}
