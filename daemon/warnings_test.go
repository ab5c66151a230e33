package daemon

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"amtd/daemon/config"
)

func TestLogWarningsNamesFileAndLine(t *testing.T) {
	cfg, err := config.Parse("amtd.conf", strings.NewReader("[Site]\nDomain=corp.local\nAddress=192.0.2.1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) == 0 {
		t.Fatal("a .local site domain gave no warning; this test needs one")
	}
	var buf bytes.Buffer
	LogWarnings(slog.New(slog.NewTextHandler(&buf, nil)), cfg)
	if !strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), "amtd.conf:2:") {
		t.Fatalf("warning not logged with FILE:LINE:\n%s", buf.String())
	}
}
