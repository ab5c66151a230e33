package main

import (
	"flag"
	"fmt"
	"strings"
)

// cmdFlags is the flag handling every subcommand shares, so they all behave
// alike for an administrator: -h answers on stdout with exit 0; a usage error
// prints the usage on stderr with exit 2; flags are accepted anywhere among the
// arguments (operators type "export-secret UUID KIND --reason ..."); and the
// number of positional arguments is checked.
type cmdFlags struct {
	fs *flag.FlagSet
}

// newCmdFlags starts the flags of "amtd NAME". synopsis follows the command
// name in the usage line (e.g. "[-c FILE] [--json]"); about is a paragraph.
func newCmdFlags(c *cli, name, synopsis, about string) *cmdFlags {
	f := &cmdFlags{fs: flag.NewFlagSet("amtd "+name, flag.ContinueOnError)}
	f.fs.SetOutput(c.stderr)
	f.fs.Usage = func() {
		w := f.fs.Output()
		fmt.Fprintf(w, "Usage: %s\n\n%s\n\nOptions:\n", strings.TrimSpace("amtd "+name+" "+synopsis), about)
		f.fs.PrintDefaults()
	}
	return f
}

// anyArgs, as npos, accepts any number of positional arguments.
const anyArgs = -1

// parse reads the flags wherever they are among args and returns the
// positional arguments, of which there must be npos (or any number, for
// anyArgs). A non-negative code means: stop and exit with it.
func (f *cmdFlags) parse(c *cli, args []string, npos int) ([]string, int) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			f.fs.SetOutput(c.stdout)
			f.fs.Usage()
			f.fs.SetOutput(c.stderr)
			return nil, exitOK
		}
	}
	var pos []string
	for {
		if err := f.fs.Parse(args); err != nil {
			return nil, exitUsage // flag has printed the error and the usage
		}
		args = f.fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if npos != anyArgs && len(pos) != npos {
		if npos == 0 {
			fmt.Fprintf(c.stderr, "%s: unexpected argument %q\n\n", f.fs.Name(), pos[0])
		} else {
			fmt.Fprintf(c.stderr, "%s: want %d argument(s), got %d\n\n", f.fs.Name(), npos, len(pos))
		}
		f.fs.Usage()
		return nil, exitUsage
	}
	return pos, -1
}
