package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"amtd/secret"
)

// The crash test re-executes the test binary as a child that writes device
// passwords as fast as it can and reports each commit on a pipe; the parent
// kills it with SIGKILL at a random moment and checks the database.
const (
	crashChildEnv = "AMTD_STORE_CRASH_CHILD" // "dbpath keypath start"
	crashDevices  = 16
	crashRounds   = 150
)

func TestMain(m *testing.M) {
	if v := os.Getenv(crashChildEnv); v != "" {
		os.Exit(crashChild(v))
	}
	code := m.Run()
	removeBenchFixture()
	os.Exit(code)
}

func crashDevice(i int) string   { return fmt.Sprintf("00000000-0000-0000-0000-%012x", i%crashDevices) }
func crashPassword(i int) string { return fmt.Sprintf("Crash!%07d-pw", i) }

func crashIndex(v secret.Value) int {
	var i int
	fmt.Sscanf(v.RevealString(), "Crash!%07d-pw", &i)
	return i
}

// crashChild writes pending then promotes, for ever; each commit is reported
// as "P i" or "C i" on fd 3 only after the store call returned.
func crashChild(arg string) int {
	f := strings.Fields(arg)
	start, _ := strconv.Atoi(f[2])
	report := os.NewFile(3, "report")
	ctx := context.Background()
	s, err := Open(ctx, Options{Path: f[0], KeyFile: f[1]})
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 1
	}
	for i := start; ; i++ {
		dev := crashDevice(i)
		err := s.Secrets().SetPending(ctx, dev, AMTAdmin, secret.FromString(crashPassword(i)), "crash test")
		if errors.Is(err, ErrPendingExists) {
			// Left by a killed child: resolve it as a resumer whose device
			// took the pending password would, then go on.
			err = s.Secrets().Promote(ctx, dev, AMTAdmin)
			if err == nil {
				err = s.Secrets().SetPending(ctx, dev, AMTAdmin, secret.FromString(crashPassword(i)), "crash test")
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			return 1
		}
		fmt.Fprintf(report, "P %d\n", i)
		if err := s.Secrets().Promote(ctx, dev, AMTAdmin); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			return 1
		}
		fmt.Fprintf(report, "C %d\n", i)
	}
}

func TestCrashNeverLosesAPassword(t *testing.T) {
	ctx := context.Background()
	s, opts := newTestStore(t)
	must(t, s.Close())

	exe, err := os.Executable()
	must(t, err)
	// last[device] is the newest commit the child reported for it.
	type commit struct {
		state string
		i     int
	}
	last := map[string]commit{}
	next, commits, started := 0, 0, time.Now()
	for round := 0; round < crashRounds; round++ {
		pr, pw, err := os.Pipe()
		must(t, err)
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %d", crashChildEnv, opts.Path, opts.KeyFile, next))
		cmd.ExtraFiles = []*os.File{pw}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		must(t, cmd.Start())
		pw.Close()

		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
			pr.Close()
		}()
		// Kill at a random moment once the child is writing.
		first, ok := <-lines
		if !ok {
			cmd.Wait()
			t.Fatalf("round %d: child wrote nothing: %s", round, stderr.String())
		}
		time.Sleep(time.Duration(rand.IntN(30000)) * time.Microsecond)
		must(t, cmd.Process.Signal(syscall.SIGKILL))
		werr := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("round %d: child ended by itself (%v): %s", round, werr, stderr.String())
		}
		reported := []string{first}
		for l := range lines {
			reported = append(reported, l)
		}
		for _, l := range reported {
			var st string
			var i int
			if _, err := fmt.Sscanf(l, "%s %d", &st, &i); err != nil {
				t.Fatalf("round %d: report %q", round, l)
			}
			last[crashDevice(i)] = commit{st, i}
			next = max(next, i+2) // i+1 may have committed unreported
			commits++
		}

		s, err := Open(ctx, opts)
		if err != nil {
			t.Fatalf("round %d: open after SIGKILL: %v", round, err)
		}
		var ic string
		must(t, s.db.QueryRow(`PRAGMA integrity_check`).Scan(&ic))
		if ic != "ok" {
			t.Fatalf("round %d: integrity_check: %s", round, ic)
		}
		checked, fails, err := s.Verify(ctx)
		must(t, err)
		if len(fails) > 0 {
			t.Fatalf("round %d: %d of %d sealed values fail to open: %v", round, len(fails), checked, fails[0].Err)
		}
		for dev, c := range last {
			cs, err := s.Secrets().Candidates(ctx, dev, AMTAdmin)
			if err != nil {
				t.Fatalf("round %d: %s: %v", round, dev, err)
			}
			want := crashPassword(c.i)
			found := false
			for _, cand := range cs {
				found = found || cand.Value.RevealString() == want
			}
			switch {
			case c.state == "C" && (cs[0].State != StateCurrent || crashIndex(cs[0].Value) < c.i):
				// Current is the last promotion reported, or a later one the
				// child committed but was killed before reporting.
				t.Fatalf("round %d: %s: promoted password %d is not current: %s", round, dev, c.i, candidateStates(t, cs))
			case !found && (cs[0].State != StateCurrent || crashIndex(cs[0].Value) <= c.i):
				// Lost, unless a later password was written and promoted
				// (by a child killed before it could report it), which
				// legitimately pushes old ones out of the three kept.
				t.Fatalf("round %d: %s: committed password %d lost: %s", round, dev, c.i, candidateStates(t, cs))
			}
		}
		must(t, s.Close())
	}
	t.Logf("%d rounds, %d reported commits, %v", crashRounds, commits, time.Since(started).Round(time.Millisecond))
	if commits < crashRounds*2 {
		t.Errorf("only %d commits in %d rounds: the kills did not land among writes", commits, crashRounds)
	}
}
