package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"amtd/secret"
)

// isTerminal reports whether r is a terminal (a person typing).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// promptPassword asks for the .pfx password on the terminal with echo off,
// restoring the terminal whatever happens: on return, and on Ctrl-C or
// SIGTERM while the prompt waits (then amtd exits 130).
func promptPassword(c *cli) (secret.Value, error) {
	f := c.stdin.(*os.File)
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return secret.Value{}, err
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	sigs := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	var once sync.Once
	restore := func() { once.Do(func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }) }
	go func() {
		select {
		case <-sigs:
			restore()
			fmt.Fprintln(c.stderr)
			os.Exit(130)
		case <-done:
		}
	}()
	defer func() {
		signal.Stop(sigs)
		close(done)
		restore()
		fmt.Fprintln(c.stderr)
	}()
	// Echo goes off before the prompt shows: nothing typed after it echoes.
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return secret.Value{}, err
	}
	fmt.Fprint(c.stderr, "Password of the .pfx: ")
	line, err := bufio.NewReader(io.LimitReader(f, maxPassword+1)).ReadBytes('\n')
	defer clear(line)
	if err != nil && err != io.EOF {
		return secret.Value{}, fmt.Errorf("reading the password: %w", err)
	}
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return secret.New(line), nil
}
