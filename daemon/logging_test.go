package daemon

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestJournalHandlerPrefixes(t *testing.T) {
	var buf bytes.Buffer
	lv := new(slog.LevelVar)
	lv.Set(slog.LevelDebug)
	log := slog.New(NewJournalHandler(&buf, lv)).With("svc", "dns")
	log.Debug("query", "name", "provisionserver.example.com.")
	log.Info("ready")
	log.Warn("slow upstream", "rtt", "2s")
	log.Error("listen failed", "err", "address in use")
	want := []string{
		`<7>msg=query svc=dns name=provisionserver.example.com.`,
		`<6>msg=ready svc=dns`,
		`<4>msg="slow upstream" svc=dns rtt=2s`,
		`<3>msg="listen failed" svc=dns err="address in use"`,
	}
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("journal lines:\n%s\nwant:\n%s", buf.String(), strings.Join(want, "\n"))
	}
	lv.Set(slog.LevelWarn)
	buf.Reset()
	log.Info("hidden")
	if buf.Len() != 0 {
		t.Fatalf("info logged at level warn: %q", buf.String())
	}
}

func TestNewLoggerPicksJournalOnlyForTheMatchingStream(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	match := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	other := fmt.Sprintf("%d:%d", st.Dev, st.Ino+1)
	tests := []struct {
		name, format, stream, level string
		wantPrefix                  string
		wantJSON                    bool
	}{
		{"journal stream matches", "auto", match, "info", "<6>", false},
		{"inherited stream of another file", "auto", other, "info", "time=", false},
		{"no journal", "", "", "debug", "time=", false},
		{"forced json", "json", match, "info", "{", true},
		{"forced journal", "journal", "", "info", "<6>", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.Truncate(0)
			f.Seek(0, 0)
			log, _, err := NewLogger(f, LogOptions{Level: tt.level, Format: tt.format, JournalStream: tt.stream})
			if err != nil {
				t.Fatal(err)
			}
			log.Info("hello", "k", "v")
			b, _ := os.ReadFile(f.Name())
			if !strings.HasPrefix(string(b), tt.wantPrefix) {
				t.Fatalf("line %q, want prefix %q", b, tt.wantPrefix)
			}
		})
	}
	if _, _, err := NewLogger(f, LogOptions{Level: "loud"}); err == nil || !strings.Contains(err.Error(), "debug, info, warn or error") {
		t.Fatalf("bad level: %v", err)
	}
	if _, _, err := NewLogger(f, LogOptions{Format: "xml"}); err == nil {
		t.Fatal("bad format accepted")
	}
}
