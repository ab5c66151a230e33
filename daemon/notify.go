package daemon

import (
	"fmt"
	"strings"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// Notify sends one sd_notify(3) message (one or more VAR=value lines).
type Notify func(state string) error

// SystemdNotify sends state to $NOTIFY_SOCKET, as sd_notify(3) does. Without
// $NOTIFY_SOCKET (not run by systemd) it does nothing.
func SystemdNotify(state string) error {
	_, err := sddaemon.SdNotify(false, state)
	if err != nil {
		return fmt.Errorf("sd_notify %q: %w", firstLine(state), err)
	}
	return nil
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds: systemd matches the
// MONOTONIC_USEC= of a RELOADING=1 against the time it sent SIGHUP
// (sd_notify(3), Type=notify-reload).
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}

// statusLine makes s fit one STATUS= line: sd_notify splits on newlines.
func statusLine(s string) string {
	return "STATUS=" + strings.ReplaceAll(s, "\n", " ")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
