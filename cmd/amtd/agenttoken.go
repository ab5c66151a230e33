package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
)

// cmdAgentToken writes a new enrolment token for rpc-go agents
// ([Provisioning] AgentTokenFile=) and prints it once.
func cmdAgentToken(c *cli, args []string) int {
	f := newCmdFlags(c, "agent-token", "--out FILE [--force]",
		"Write a new enrolment token for rpc-go agents to FILE (mode 0640, group amtd when it exists) and print it once.\n"+
			"Name FILE in [Provisioning] AgentTokenFile= and reload amtd; agents give the token with rpc --tenantid TOKEN.\n"+
			"A new token locks out agents that still use the old one.")
	out := f.fs.String("out", "", "the token `FILE` to write")
	force := f.fs.Bool("force", false, "replace an existing token file")
	if _, code := f.parse(c, args, 0); code >= 0 {
		return code
	}
	if *out == "" {
		fmt.Fprintln(c.stderr, "amtd agent-token: --out FILE is required (e.g. --out /etc/amtd/agent-token)")
		return exitUsage
	}
	if _, err := os.Stat(*out); err == nil && !*force {
		fmt.Fprintf(c.stderr, "amtd agent-token: %s exists; agents enrolled with it would be locked out. Use --force to replace it.\n", *out)
		return exitFailure
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(c.stderr, "amtd agent-token: %v\n", err)
		return exitFailure
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		fmt.Fprintf(c.stderr, "amtd agent-token: %v\n", err)
		return exitFailure
	}
	tok := base64.RawURLEncoding.EncodeToString(raw)
	clear(raw)
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".agent-token-*")
	if err != nil {
		fmt.Fprintf(c.stderr, "amtd agent-token: %v\n", err)
		return exitFailure
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o640); err == nil {
		// The daemon runs as the amtd user (rootfs sysusers.d): let its
		// group read the file when the group exists.
		if g, err := user.LookupGroup("amtd"); err == nil {
			if gid, err := strconv.Atoi(g.Gid); err == nil {
				_ = tmp.Chown(-1, gid)
			}
		}
	}
	if _, err := tmp.WriteString(tok + "\n"); err != nil {
		tmp.Close()
		fmt.Fprintf(c.stderr, "amtd agent-token: %v\n", err)
		return exitFailure
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		fmt.Fprintf(c.stderr, "amtd agent-token: %v\n", err)
		return exitFailure
	}
	tmp.Close()
	if err := os.Rename(tmp.Name(), *out); err != nil {
		fmt.Fprintf(c.stderr, "amtd agent-token: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(c.stdout, "wrote %s. The token (shown only now):\n\n  %s\n\nOn each host: rpc activate -u wss://APPLIANCE:PORT/activate --profile NAME --tenantid %s\n", *out, tok, tok)
	return exitOK
}
