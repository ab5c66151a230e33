package main

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair: what a person types goes into
// master, the program reads slave.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// TestPasswordPrompt: on a terminal the password is asked for, read without
// echo, and the terminal is left as it was.
func TestPasswordPrompt(t *testing.T) {
	master, slave := openPTY(t)
	if !isTerminal(slave) || isTerminal(strings.NewReader("")) {
		t.Fatal("isTerminal is wrong")
	}
	before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if before.Lflag&unix.ECHO == 0 {
		t.Fatal("a new terminal without echo: the test would prove nothing")
	}
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	var mu sync.Mutex
	prompted := make(chan struct{})
	go func() {
		buf := make([]byte, 256)
		once := sync.Once{}
		for {
			n, err := pr.Read(buf)
			mu.Lock()
			stderr.Write(buf[:n])
			if strings.Contains(stderr.String(), "Password") {
				once.Do(func() { close(prompted) })
			}
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	c := &cli{stdin: slave, stdout: io.Discard, stderr: pw, getenv: func(string) string { return "" }}
	type result struct {
		v   string
		err error
	}
	res := make(chan result, 1)
	go func() {
		v, err := readPassword(c, "")
		res <- result{string(v.Reveal()), err}
		v.Wipe()
	}()
	select {
	case <-prompted:
	case <-time.After(10 * time.Second):
		t.Fatal("no prompt on standard error")
	}
	if _, err := master.Write([]byte("typed secret p@ss\n")); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-res:
	case <-time.After(10 * time.Second):
		t.Fatal("the password was not read")
	}
	pw.Close()
	if r.err != nil || r.v != "typed secret p@ss" {
		t.Fatalf("readPassword = %q, %v", r.v, r.err)
	}
	after, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if after.Lflag != before.Lflag {
		t.Errorf("terminal flags %#x after the prompt, %#x before", after.Lflag, before.Lflag)
	}
	// Whatever the terminal echoed is in master's buffer by now (the line
	// discipline echoes before it hands the line to the reader); read it
	// without blocking: it must not be the password.
	// (Fd puts the file in blocking mode: take it once, then set O_NONBLOCK.)
	mfd := int(master.Fd())
	if err := unix.SetNonblock(mfd, true); err != nil {
		t.Fatal(err)
	}
	var echo []byte
	buf := make([]byte, 256)
	for {
		n, err := unix.Read(mfd, buf)
		if n <= 0 || err != nil {
			break
		}
		echo = append(echo, buf[:n]...)
	}
	if bytes.Contains(echo, []byte("secret")) {
		t.Errorf("the terminal echoed the password: %q", echo)
	}
}
