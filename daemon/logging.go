package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// LogOptions choose how the daemon logs. Level and Format take the values of
// [Log] Level= and Format= in amtd.conf.
type LogOptions struct {
	Level  string // debug, info, warn, error ("" = info)
	Format string // auto, journal, text, json ("" = auto)
	// JournalStream is the value of $JOURNAL_STREAM ("dev:inode"), which
	// systemd sets when it connects stderr to journald.
	JournalStream string
}

// ParseLevel turns a [Log] Level= or --log-level value into a slog level.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error", "err":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
}

// NewLogger builds the process logger writing to w (stderr). The returned
// LevelVar lets a reload change the level in place.
//
// Under journald (Format=auto and $JOURNAL_STREAM naming w's device and inode,
// as systemd.exec(5) describes) each line starts with a sd-daemon(3) priority
// prefix such as "<6>", so journalctl shows the right priority, and carries no
// timestamp, which journald adds itself.
func NewLogger(w io.Writer, opts LogOptions) (*slog.Logger, *slog.LevelVar, error) {
	level, err := ParseLevel(opts.Level)
	if err != nil {
		return nil, nil, err
	}
	lv := new(slog.LevelVar)
	lv.Set(level)
	format := strings.ToLower(opts.Format)
	if format == "" || format == "auto" {
		format = "text"
		if f, ok := w.(*os.File); ok && OnJournal(f, opts.JournalStream) {
			format = "journal"
		}
	}
	var h slog.Handler
	switch format {
	case "text":
		h = slog.NewTextHandler(w, &slog.HandlerOptions{Level: lv})
	case "json":
		h = slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv})
	case "journal":
		h = NewJournalHandler(w, lv)
	default:
		return nil, nil, fmt.Errorf("log format %q: want auto, journal, text or json", opts.Format)
	}
	return slog.New(h), lv, nil
}

// OnJournal reports whether f is the stream $JOURNAL_STREAM names: systemd
// sets it to "DEV:INODE" of the journald stream it connected (systemd.exec(5)).
// A child whose stderr was redirected elsewhere inherits the variable, hence
// the fstat comparison.
func OnJournal(f *os.File, journalStream string) bool {
	devStr, inoStr, ok := strings.Cut(journalStream, ":")
	if !ok {
		return false
	}
	dev, err1 := strconv.ParseUint(devStr, 10, 64)
	ino, err2 := strconv.ParseUint(inoStr, 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && st.Ino == ino
}

// journalHandler writes key=value text lines with sd-daemon(3) priority prefixes.
type journalHandler struct {
	inner  slog.Handler
	shared *journalOut
}

type journalOut struct {
	mu  sync.Mutex
	buf bytes.Buffer
	w   io.Writer
}

// NewJournalHandler returns a handler for stderr connected to journald.
func NewJournalHandler(w io.Writer, level slog.Leveler) slog.Handler {
	out := &journalOut{w: w}
	inner := slog.NewTextHandler(&out.buf, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			// journald stamps each line itself, and the prefix carries the level.
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
				return slog.Attr{}
			}
			return a
		},
	})
	return &journalHandler{inner: inner, shared: out}
}

// Priority returns the syslog priority sd-daemon(3) prefixes use for a level.
func Priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3 // SD_ERR
	case l >= slog.LevelWarn:
		return 4 // SD_WARNING
	case l >= slog.LevelInfo:
		return 6 // SD_INFO
	default:
		return 7 // SD_DEBUG
	}
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	o := h.shared
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Reset()
	fmt.Fprintf(&o.buf, "<%d>", Priority(r.Level))
	if err := h.inner.Handle(ctx, r); err != nil {
		return err
	}
	_, err := o.w.Write(o.buf.Bytes())
	return err
}

func (h *journalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &journalHandler{inner: h.inner.WithAttrs(attrs), shared: h.shared}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{inner: h.inner.WithGroup(name), shared: h.shared}
}
