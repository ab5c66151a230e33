package config

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The sample amtd.conf and amtd.conf(5) document every key once (STYLE.md);
// these tests hold them to the parser's table, both ways.

const (
	samplePath = "../../amtd.conf"
	manPath    = "../../man/amtd.conf.5"
)

// docKey is one key as a document shows it.
type docKey struct {
	section, name, value string
	line                 int
	text                 string // the documentation around it
}

var (
	headerRE     = regexp.MustCompile(`^#?\[([A-Za-z]+)\]$`)
	sampleKeyRE  = regexp.MustCompile(`^#?([A-Za-z]+)=(.*)$`)
	manSectionRE = regexp.MustCompile(`^\.SS "\[([A-Za-z]+)\] section"$`)
	manKeyRE     = regexp.MustCompile(`^\.BI ([A-Za-z]+)= `)
)

// sampleParts splits the sample into its documentation and its worked
// example (from the last "#[Site]" to the end).
func sampleParts(t *testing.T) (doc, example []string) {
	t.Helper()
	b, err := os.ReadFile(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	start := -1
	for i, l := range lines {
		if l == "#[Site]" {
			start = i
		}
	}
	if start < 0 {
		t.Fatal("the sample has no worked example starting with #[Site]")
	}
	return lines[:start], lines[start:]
}

// sampleKeys lists the Key= lines of the sample's documentation part, each
// with the comment block just above it.
func sampleKeys(t *testing.T, doc []string) []docKey {
	var keys []docKey
	section := ""
	var comment []string
	for i, l := range doc {
		if m := headerRE.FindStringSubmatch(l); m != nil {
			section, comment = m[1], nil
			continue
		}
		if m := sampleKeyRE.FindStringSubmatch(l); m != nil {
			if section == "" {
				t.Errorf("amtd.conf:%d: %s= before any section", i+1, m[1])
			}
			keys = append(keys, docKey{section, m[1], m[2], i + 1, strings.Join(comment, " ")})
			comment = nil
			continue
		}
		if strings.HasPrefix(l, "#") {
			comment = append(comment, strings.TrimSpace(strings.TrimPrefix(l, "#")))
		} else {
			comment = nil
		}
	}
	return keys
}

// manKeys lists the keys amtd.conf(5) documents under OPTIONS, each with its
// paragraph.
func manKeys(t *testing.T) []docKey {
	t.Helper()
	b, err := os.ReadFile(manPath)
	if err != nil {
		t.Fatal(err)
	}
	var keys []docKey
	section := ""
	inOptions := false
	for i, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, ".SH "):
			inOptions = l == ".SH OPTIONS"
			section = ""
		case !inOptions:
		case manSectionRE.MatchString(l):
			section = manSectionRE.FindStringSubmatch(l)[1]
		case strings.HasPrefix(l, ".SS "):
			t.Errorf("amtd.conf.5:%d: subsection %q is not written .SS \"[Name] section\"", i+1, l)
		case manKeyRE.MatchString(l):
			keys = append(keys, docKey{section: section, name: manKeyRE.FindStringSubmatch(l)[1], line: i + 1})
		case l == ".TP":
		case len(keys) > 0:
			keys[len(keys)-1].text += l + "\n"
		}
	}
	return keys
}

// roffText is s as it appears in roff source: '-' escaped.
func roffText(s string) string { return strings.ReplaceAll(s, "-", `\-`) }

// checkAgainstTable compares the keys a document shows with the table:
// the same sections and keys in the same order, nothing missing, nothing extra.
func checkAgainstTable(t *testing.T, doc string, keys []docKey) map[string]docKey {
	t.Helper()
	var want, got []string
	for _, s := range Keys() {
		for _, k := range s.Keys {
			want = append(want, "["+s.Name+"] "+k.Name)
		}
	}
	found := map[string]docKey{}
	for _, k := range keys {
		id := "[" + k.section + "] " + k.name
		if _, dup := found[id]; dup {
			t.Errorf("%s:%d: %s is documented twice", doc, k.line, id)
		}
		found[id] = k
		got = append(got, id)
		if !slices.Contains(want, id) {
			t.Errorf("%s:%d: %s is not a key of the parser's table", doc, k.line, id)
		}
	}
	for _, id := range want {
		if _, ok := found[id]; !ok {
			t.Errorf("%s does not document %s", doc, id)
		}
	}
	if !t.Failed() && !slices.Equal(got, want) {
		t.Errorf("%s documents the keys in another order than config.Keys():\n got  %v\n want %v", doc, got, want)
	}
	return found
}

func TestSampleMatchesTable(t *testing.T) {
	doc, example := sampleParts(t)
	found := checkAgainstTable(t, "amtd.conf", sampleKeys(t, doc))
	for _, s := range Keys() {
		for _, k := range s.Keys {
			d, ok := found["["+s.Name+"] "+k.Name]
			if !ok {
				continue
			}
			// "#Key=default" for a fixed default, "#Key=" for none or derived.
			if d.value != k.Default {
				t.Errorf("amtd.conf:%d: #%s=%s, but the default of [%s] %s= is %q", d.line, k.Name, d.value, s.Name, k.Name, k.Default)
			}
			if k.Derived != "" && !strings.Contains(d.text, "Default:") {
				t.Errorf("amtd.conf:%d: [%s] %s= has no fixed default; its comment must say what happens without it (Default: ...)", d.line, s.Name, k.Name)
			}
			if k.List && !strings.Contains(d.text, "repeatable") {
				t.Errorf("amtd.conf:%d: the comment of [%s] %s= does not say it is repeatable", d.line, s.Name, k.Name)
			}
			if (k.Required || k.Default == "" && k.Derived == "") && !strings.Contains(d.text, "equired") {
				t.Errorf("amtd.conf:%d: the comment of [%s] %s= does not say when it is required", d.line, s.Name, k.Name)
			}
		}
	}
	// Every Key= of the example is in the table too (and in the right
	// section: parsing it below reports any that is not).
	for i, l := range example {
		if m := sampleKeyRE.FindStringSubmatch(l); m != nil && !strings.HasPrefix(l, "#") {
			t.Errorf("amtd.conf:%d: example line %q is not commented out", len(doc)+i+1, l)
		}
	}
}

func TestSampleParses(t *testing.T) {
	b, err := os.ReadFile(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	// As shipped, with everything commented out, the sample is valid and
	// runs no network service.
	cfg, err := Parse("amtd.conf", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("the sample as shipped:\n%v", err)
	}
	if len(cfg.Services()) != 0 || len(cfg.Warnings) != 0 {
		t.Errorf("the sample as shipped enables %v, warns %v", cfg.Services(), cfg.Warnings)
	}

	// With the worked example uncommented, it is valid and does what its
	// comment says.
	doc, example := sampleParts(t)
	lines := slices.Clone(doc)
	for _, l := range example {
		lines = append(lines, strings.TrimPrefix(l, "#"))
	}
	cfg, err = Parse("amtd.conf", strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatalf("the sample with its example uncommented:\n%v", err)
	}
	if got, want := cfg.Summary(), "site corp.example.com (amtd.corp.example.com, 192.0.2.10); enabled: dns on 0.0.0.0:53 (1 record), dhcp on 0.0.0.0:67 (1 pool, 1 reservation)"; got != want {
		t.Errorf("example summary:\n got  %s\n want %s", got, want)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("example warnings: %v", cfg.Warnings)
	}
}

func TestManMatchesTable(t *testing.T) {
	found := checkAgainstTable(t, "amtd.conf.5", manKeys(t))
	for _, s := range Keys() {
		for _, k := range s.Keys {
			d, ok := found["["+s.Name+"] "+k.Name]
			if !ok {
				continue
			}
			if (k.Required || k.Default == "" && k.Derived == "") && !strings.Contains(d.text, "equired") {
				t.Errorf("amtd.conf.5:%d: [%s] %s= has no default and does not say when it is required", d.line, s.Name, k.Name)
			}
			def := strings.Index(d.text, "Default:")
			if k.Default == "" && k.Derived == "" {
				continue
			}
			if def < 0 {
				t.Errorf("amtd.conf.5:%d: [%s] %s= does not give its default", d.line, s.Name, k.Name)
				continue
			}
			if k.Default != "" && !strings.Contains(d.text[def:], roffText(k.Default)) {
				t.Errorf("amtd.conf.5:%d: [%s] %s= does not give its default %s after \"Default:\"", d.line, s.Name, k.Name, k.Default)
			}
			if k.List && !strings.Contains(d.text, "repeatable") {
				t.Errorf("amtd.conf.5:%d: [%s] %s= does not say it is repeatable", d.line, s.Name, k.Name)
			}
		}
	}
}

// TestManExamplesParse parses every configuration in EXAMPLES.
func TestManExamplesParse(t *testing.T) {
	b, err := os.ReadFile(manPath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	n := 0
	for {
		_, rest, ok := strings.Cut(text, "\n.EX\n")
		if !ok {
			break
		}
		var block string
		block, text, _ = strings.Cut(rest, "\n.EE\n")
		if !strings.HasPrefix(block, "[") {
			continue // a shell session, not a file
		}
		n++
		conf := strings.ReplaceAll(block, `\-`, "-")
		if _, err := Parse("amtd.conf.5 example", strings.NewReader(conf)); err != nil {
			t.Errorf("example %d:\n%s\n%v", n, conf, err)
		}
	}
	if n < 2 {
		t.Errorf("found %d configuration examples in amtd.conf.5, want 2", n)
	}
}

// TestManRenders runs man(1) as the project checks it: no warnings at all.
func TestManRenders(t *testing.T) {
	if _, err := exec.LookPath("man"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("man is not installed; scripts/deps.sh installs man-db and groff")
		}
		t.Skip("man is not installed (apt-get install man-db groff)")
	}
	cmd := exec.Command("man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", manPath)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "MANROFFSEQ=", "MANWIDTH=80")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("man --warnings: %v\n%s", err, stderr.String())
	}
	if len(out) == 0 {
		t.Fatal("man rendered nothing")
	}

	// And the rendered text shows what a reader looks for.
	cmd = exec.Command("man", "-l", manPath)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat")
	text, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	plain := regexp.MustCompile(".\b").ReplaceAllString(string(text), "")
	for _, want := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "[DHCPPool] section", "LeaseTime=duration", "EXAMPLES", "SEE ALSO", "amtd(8)", "systemd.syntax(7)"} {
		if !strings.Contains(plain, want) {
			t.Errorf("rendered amtd.conf(5) lacks %q", want)
		}
	}
}
