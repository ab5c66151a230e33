package main

import (
	"bytes"
	"strings"
	"testing"
)

func runMain(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	c := &cli{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	code = c.main(args)
	return code, out.String(), errb.String()
}

// Every subcommand answers -h with its usage on stdout and exit 0, as an
// administrator trying the tool expects.
func TestEverySubcommandHasHelp(t *testing.T) {
	for _, cmd := range commands() {
		code, out, _ := runMain(cmd.name, "-h")
		if code != exitOK || !strings.Contains(out, "Usage: amtd "+cmd.name) {
			t.Errorf("amtd %s -h: exit %d, stdout %q; want exit 0 and a usage line", cmd.name, code, firstLine(out))
		}
	}
}

func TestUnknownCommandIsUsageError(t *testing.T) {
	code, _, errOut := runMain("frobnicate")
	if code != exitUsage || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if code, _, _ := runMain("version", "extra"); code != exitUsage {
		t.Fatalf("amtd version extra: exit %d, want %d", code, exitUsage)
	}
}
