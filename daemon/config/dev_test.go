package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestDevParses(t *testing.T) {
	dir := t.TempDir()
	ports := DevPorts{DNS: 20053, DHCP: 20067, Hello: 29971, Agent: 28443, CIRA: 24433, API: 23000, Metrics: 29100}
	cfg, err := Parse("dev.conf", strings.NewReader(Dev(dir, ports)))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"domain", cfg.Site.Domains[0], DevDomain},
		{"address", cfg.Site.Addresses[0].String(), "127.0.0.1"},
		{"store", cfg.Store.Path, filepath.Join(dir, "amtd.db")},
		{"key file", cfg.Store.KeyFile, filepath.Join(dir, "master.key")},
		{"socket", cfg.Control.Socket, filepath.Join(dir, "control.sock")},
		{"dns", cfg.DNS.Enable, true},
		{"dns listen", cfg.DNS.Listen, "127.0.0.1:20053"},
		{"dhcp", cfg.DHCP.Enable, false},
		{"dhcp listen", cfg.DHCP.Listen, "127.0.0.1:20067"},
		{"hello", cfg.Provisioning.HelloListen, "127.0.0.1:29971"},
		{"agent", cfg.Provisioning.AgentListen, "127.0.0.1:28443"},
		{"cira", cfg.CIRA.Listen, "127.0.0.1:24433"},
		{"api", cfg.API.Listen, "127.0.0.1:23000"},
		{"metrics", cfg.API.MetricsListen, "127.0.0.1:29100"},
		{"services", strings.Join(cfg.Services(), ","), "dns"},
		{"warnings", len(cfg.Warnings), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}

	// The default ports and port 0 (the kernel picks) parse too, and a
	// relative directory is made absolute.
	for _, p := range []DevPorts{DefaultDevPorts(), {}} {
		if _, err := Parse("dev.conf", strings.NewReader(Dev("rel/dir", p))); err != nil {
			t.Errorf("Dev(rel/dir, %+v): %v", p, err)
		}
	}
	cfg, _ = Parse("dev.conf", strings.NewReader(Dev("rel/dir", DefaultDevPorts())))
	if cfg == nil || !filepath.IsAbs(cfg.Store.Path) || cfg.DNS.Listen != "127.0.0.1:10053" {
		t.Errorf("relative dir: %+v", cfg)
	}
}
