package deb

import (
	"bytes"
	"compress/gzip"
	"io"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// cliCommand is one command of the amtd CLI, as its -h describes it.
type cliCommand struct {
	path  []string // e.g. ["store", "init"]
	flags []string // option names without dashes, e.g. "key-file", "c"
}

var (
	// Lines under "Commands:": the command's words, then two spaces.
	commandLine = regexp.MustCompile(`^  ([a-z][a-z-]*(?: [a-z][a-z-]*)*)(?: [A-Z]+)?\s{2,}`)
	// Option lines of Go's flag package ("  -key-file FILE") and of
	// hand-written usages ("  --json      print JSON").
	optionLine = regexp.MustCompile(`^\s+--?([a-z][a-z0-9-]*)\b`)
)

// cliCommands walks the binary's help: `amtd -h`, then `amtd CMD -h` for
// every command listed, down to the leaves, collecting each leaf's options.
func cliCommands(t *testing.T, bin string) []cliCommand {
	t.Helper()
	var out []cliCommand
	var walk func(path []string)
	walk = func(path []string) {
		args := append(append([]string(nil), path...), "-h")
		help, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatalf("amtd %s: %v", strings.Join(args, " "), err)
		}
		var subs [][]string
		var flags []string
		inCommands := false
		for _, line := range strings.Split(string(help), "\n") {
			switch {
			case line == "Commands:":
				inCommands = true
				continue
			case line == "":
				inCommands = false
			}
			if inCommands {
				if m := commandLine.FindStringSubmatch(line); m != nil {
					subs = append(subs, strings.Fields(m[1]))
				}
				continue
			}
			if m := optionLine.FindStringSubmatch(line); m != nil {
				flags = append(flags, m[1])
			}
		}
		if len(subs) == 0 {
			out = append(out, cliCommand{path: path, flags: flags})
			return
		}
		seen := map[string]bool{}
		for _, sub := range subs {
			// "amtd dns -h" lists "tsig add" and "tsig list": walk each full path.
			key := strings.Join(sub, " ")
			if !seen[key] {
				seen[key] = true
				walk(append(append([]string(nil), path...), sub...))
			}
		}
	}
	walk(nil)
	if len(out) < 10 {
		t.Fatalf("found only %d commands in amtd's help: %v", len(out), out)
	}
	return out
}

// manSection is the text of amtd.8 from `.SS "amtd CMD` to the next heading.
func manSection(page, cmd string) string {
	start := strings.Index(page, `.SS "amtd `+roffEscape(cmd))
	if start < 0 {
		return ""
	}
	rest := page[start+4:]
	end := len(rest)
	for _, h := range []string{"\n.SS ", "\n.SH "} {
		if i := strings.Index(rest, h); i >= 0 && i < end {
			end = i
		}
	}
	return rest[:end]
}

func roffEscape(s string) string { return strings.ReplaceAll(s, "-", `\-`) }

func gunzip(t *testing.T, b []byte) string {
	t.Helper()
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	text, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(text)
}

// TestManPageCoversCLI: amtd(8) in the package describes every command and
// every option the packaged binary's -h lists, in that command's section;
// names the environment systemd passes and the files the package makes; and
// man renders it without a warning.
func TestManPageCoversCLI(t *testing.T) {
	deb := buildDeb(t, versionNew)
	page := gunzip(t, debContents(t, deb)["/usr/share/man/man8/amtd.8.gz"].data)
	bin := extractBinary(t, deb)

	for _, c := range cliCommands(t, bin) {
		section := manSection(page, c.path[0])
		if section == "" {
			t.Errorf("amtd(8) has no section .SS \"amtd %s\"", c.path[0])
			continue
		}
		for _, word := range c.path[1:] {
			if !strings.Contains(section, roffEscape(word)) {
				t.Errorf("amtd(8) section amtd %s does not describe %q (amtd %s)", c.path[0], word, strings.Join(c.path, " "))
			}
		}
		for _, f := range c.flags {
			want := `\-\-` + roffEscape(f)
			if len(f) == 1 {
				want = `\-` + f
			}
			if f == "h" || f == "help" {
				continue
			}
			if !strings.Contains(section, want) {
				t.Errorf("amtd(8): amtd %s has option -%s, not described in its section (want %s)", strings.Join(c.path, " "), f, want)
			}
		}
	}

	for _, want := range []string{
		".SH ENVIRONMENT", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "LISTEN_FDS", "JOURNAL_STREAM",
		".SH FILES", `/etc/amtd/master\-key.cred`, "/var/lib/amtd/amtd.db", "/etc/amtd/amtd.conf",
		".SH \"SEE ALSO\"", ".BR amtd.conf (5)", `.BR systemd\-creds (1)`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("amtd(8) lacks %q", want)
		}
	}

	if _, err := exec.LookPath("man"); err != nil {
		t.Skip("man not installed (Debian packages man-db, groff): the page's rendering is not checked")
	}
	// lintian's check: groff's warnings, at 80 columns.
	cmd := exec.Command("man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", "-")
	cmd.Stdin = strings.NewReader(page)
	cmd.Env = append(cmd.Environ(), "LC_ALL=C.UTF-8", "MANWIDTH=80", "MANROFFSEQ=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("man --warnings amtd.8: %v\n%s", err, stderr.String())
	}
}

// TestBashCompletion: the packaged completion, run by bash with
// bash-completion loaded, offers every command and, after "-", every option
// of every command the binary's -h lists.
func TestBashCompletion(t *testing.T) {
	needTools(t, "bash")
	const bashCompletion = "/usr/share/bash-completion/bash_completion"
	if _, err := exec.Command("test", "-r", bashCompletion).Output(); err != nil {
		t.Skip("bash-completion not installed (Debian package bash-completion)")
	}
	deb := buildDeb(t, versionNew)
	script := string(debContents(t, deb)["/usr/share/bash-completion/completions/amtd"].data)
	bin := extractBinary(t, deb)

	// complete returns what the completion offers for the words typed, the
	// last one being completed.
	complete := func(words ...string) []string {
		t.Helper()
		line := strings.Join(words, " ")
		prog := `source ` + bashCompletion + `
` + script + `
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="` + line + `"; COMP_POINT=${#COMP_LINE}
_amtd amtd "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"`
		out, err := exec.Command("bash", append([]string{"-c", prog, "amtd"}, words...)...).Output()
		if err != nil {
			t.Fatalf("completing %q: %v", line, err)
		}
		got := strings.Fields(string(out))
		sort.Strings(got)
		return got
	}
	has := func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	}

	cmds := cliCommands(t, bin)
	for _, c := range cmds {
		// Each word of the command is offered after the words before it.
		for i := range c.path {
			typed := append([]string{"amtd"}, c.path[:i]...)
			if got := complete(append(typed, "")...); !has(got, c.path[i]) {
				t.Errorf("%q + TAB offers %v, not %q", strings.Join(typed, " ")+" ", got, c.path[i])
			}
		}
		words := append(append([]string{"amtd"}, c.path...), "-")
		got := complete(words...)
		for _, f := range c.flags {
			if f == "h" || f == "help" {
				continue
			}
			want := "--" + f
			if len(f) == 1 {
				want = "-" + f
			}
			// Go's flag package takes -flag and --flag alike; Go prints the
			// long ones with one dash, the completion offers two.
			if !has(got, want) {
				t.Errorf("%q + TAB offers %v, not %s", strings.Join(words, " "), got, want)
			}
		}
	}
	if got := complete("amtd", "store", "export-secret", "--reason", "x", "0123", ""); !has(got, "amt_admin") {
		t.Errorf("export-secret KIND offers %v, not amt_admin", got)
	}
	if got := complete("amtd", "run", "--log-level", ""); strings.Join(got, " ") != "debug error info warn" {
		t.Errorf("--log-level offers %v", got)
	}
}
