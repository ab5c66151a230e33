package daemon

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ErrRoot is returned by Harden when the daemon runs as uid 0 without
// [Site] AllowRoot=yes.
var ErrRoot = errors.New("refusing to run as root: amtd.service runs the daemon as User=amtd " +
	"with its privileged sockets passed in by amtd-*.socket units, so it needs no root; " +
	"start it with 'systemctl start amtd', or for development set AllowRoot=yes in [Site] of amtd.conf")

// Harden makes the process unfit for leaking secrets through the kernel:
// it may not be ptraced or dumped by other processes of the same user
// (PR_SET_DUMPABLE 0, which also makes /proc/PID files root-owned), and it
// writes no core file (RLIMIT_CORE 0). The store mlocks its own key material;
// this keeps everything else (device passwords in flight) out of core dumps.
// It refuses uid 0 unless allowRoot.
func Harden(allowRoot bool) error {
	if os.Geteuid() == 0 && !allowRoot {
		return ErrRoot
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("harden: prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("harden: setrlimit(RLIMIT_CORE, 0): %w", err)
	}
	return nil
}

// Dumpable reports prctl(PR_GET_DUMPABLE): 0 after Harden.
func Dumpable() (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_PRCTL, unix.PR_GET_DUMPABLE, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}
