package daemon

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestHarden runs Harden in a child process (it changes the process for good)
// and reads back what the kernel says.
func TestHarden(t *testing.T) {
	if os.Getenv("AMTD_HARDEN_CHILD") == "1" {
		if err := Harden(true); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		d, err := Dumpable()
		var lim unix.Rlimit
		unix.Getrlimit(unix.RLIMIT_CORE, &lim)
		fmt.Printf("dumpable=%d err=%v core=%d/%d\n", d, err, lim.Cur, lim.Max)
		os.Exit(0)
	}
	before, err := Dumpable()
	if err != nil || before != 1 {
		t.Fatalf("test process: dumpable %d, %v; want 1 before hardening", before, err)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestHarden$")
	cmd.Env = append(os.Environ(), "AMTD_HARDEN_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "dumpable=0 err=<nil> core=0/0") {
		t.Fatalf("after Harden: %s", out)
	}
}

func TestHardenRefusesRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: checks that uid 0 is refused without AllowRoot=yes")
	}
	err := Harden(false)
	if !errors.Is(err, ErrRoot) || !strings.Contains(err.Error(), "User=amtd") || !strings.Contains(err.Error(), "AllowRoot=yes") {
		t.Fatalf("Harden(false) as root = %v", err)
	}
}
