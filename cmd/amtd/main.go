// Command amtd is the Intel AMT site appliance daemon and its command-line tool.
//
// main stays thin (../shared/STYLE.md): it picks the subcommand, and each
// subcommand parses its own flags, loads what it needs and calls into the
// packages that do the work. Exit codes: 0 ok, 1 failure, 2 usage.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// Exit codes shared by every subcommand.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// defaultConfigPath is where the Debian package installs amtd.conf.
const defaultConfigPath = "/etc/amtd/amtd.conf"

// cli is what a subcommand may touch: its streams and its environment. Tests
// run subcommands in-process with buffers.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

type command struct {
	name    string
	summary string
	run     func(c *cli, args []string) int
}

func commands() []command {
	return []command{
		{"run", "run the daemon (the default with no subcommand)", cmdRun},
		{"check-config", "validate amtd.conf and report every problem as FILE:LINE: message", cmdCheckConfig},
		{"status", "show the running daemon's services, devices and activations", cmdStatus},
		{"profile", "manage activation profiles: ACM or CCM, CIRA, and which devices each is for (profile add|list|show|remove)", cmdProfile},
		{"apikey", "manage console API keys: create one for a role, list them, revoke one (apikey create|list|revoke)", cmdAPIKey},
		{"agent-token", "write a new enrolment token for rpc-go agents ([Provisioning] AgentTokenFile=)", cmdAgentToken},
		{"usb-setup", "write a USB setup.bin for one-touch setup of machines in a domain (usb-setup, usb-setup list|export)", cmdUSBSetup},
		{"forward", "tunnel a local TCP port to a device's AMT port over its CIRA link (forward UUID --port 16993)", cmdForward},
		{"devices", "list devices and show one's provisioning state, history and stored password states (devices list|show|history)", cmdDevices},
		{"store", "manage the encrypted credential store (init, rotate-key, backup, verify, export-secret)", cmdStore},
		{"domain", "manage provisioning domains and their certificates (domain add|list|show|replace-cert|remove)", cmdDomain},
		{"dns", "manage TSIG keys for DNS updates and the registrar (dns tsig add|list)", cmdDNS},
		{"check-network", "check that the site's DHCP serves option 15 and ProvisionServer resolves to this appliance", cmdCheckNetwork},
		{"debug", "decode captures: debug decode hello|apf|wsman FILE|-", cmdDebug},
		{"version", "print the version", cmdVersion},
	}
}

func main() {
	c := &cli{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(c.main(os.Args[1:]))
}

func (c *cli) main(args []string) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help" {
		return cmdRun(c, args)
	}
	name := args[0]
	if name == "-h" || name == "--help" || name == "help" {
		c.usage(c.stdout)
		return exitOK
	}
	for _, cmd := range commands() {
		if cmd.name == name {
			return cmd.run(c, args[1:])
		}
	}
	fmt.Fprintf(c.stderr, "amtd: unknown command %q\n\n", name)
	c.usage(c.stderr)
	return exitUsage
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: amtd [COMMAND] [OPTIONS]\n\nCommands:\n")
	for _, cmd := range commands() {
		fmt.Fprintf(w, "  %-14s %s\n", cmd.name, cmd.summary)
	}
	fmt.Fprintf(w, "\nRun 'amtd COMMAND -h' for the options of a command.\n")
}

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

func cmdVersion(c *cli, args []string) int {
	switch {
	case len(args) == 1 && (args[0] == "-h" || args[0] == "--help"):
		fmt.Fprintln(c.stdout, "Usage: amtd version\n\nPrints the version of this amtd binary.")
		return exitOK
	case len(args) > 0:
		fmt.Fprintf(c.stderr, "amtd version: unexpected argument %q\nUsage: amtd version\n", args[0])
		return exitUsage
	}
	fmt.Fprintf(c.stdout, "amtd %s\n", version)
	return exitOK
}
