package config

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Bounds that keep a hostile or broken file cheap to check. A real site has
// a handful of pools and at most some thousands of reservations.
const (
	maxProblems     = 100
	maxPools        = 256
	maxReservations = 16384
	maxRecords      = 16384
	// maxItems bounds the other lists (domains, addresses, ranges, ...):
	// cross-checks compare them with each other.
	maxItems = 256
)

// Load reads and checks the file at path. Every problem comes back at once as
// an *Errors; an unreadable file is an *Errors too, with one problem that
// wraps the *fs.PathError (errors.Is(err, fs.ErrNotExist) works).
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Errors{Problems: []*Problem{{File: path, Msg: "cannot read: " + reason(err), Err: err}}}
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, &Errors{Problems: []*Problem{{File: path, Msg: "is a directory, not a configuration file"}}}
	}
	cfg, err := Parse(path, f)
	if err != nil {
		return nil, err
	}
	// The daemon reloads cfg.Path on SIGHUP; an absolute path means the
	// same file whatever the working directory is then.
	if abs, err := filepath.Abs(path); err == nil {
		cfg.Path = abs
	}
	return cfg, nil
}

// reason is an OS error without the operation and path that the message
// already names ("no such file or directory").
func reason(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Parse reads a configuration from r; name is used in messages and as Path.
// It returns the configuration with every default filled in, or an *Errors
// listing every problem as FILE:LINE: message.
func Parse(name string, r io.Reader) (*Config, error) {
	p := &parser{file: name, lines: map[lineKey][]int{}}
	data, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, &Errors{Problems: []*Problem{{File: name, Msg: "cannot read: " + reason(err), Err: err}}}
	}
	if len(data) > maxFileSize {
		return nil, &Errors{Problems: []*Problem{{File: name, Msg: fmt.Sprintf("is larger than %d KiB; amtd.conf is a few KiB, is this the right file?", maxFileSize>>10)}}}
	}
	cfg := &Config{Path: name}
	p.read(cfg, scan(string(data), p.errorf))
	p.check(cfg)
	slices.SortStableFunc(p.warnings, func(a, b *Problem) int { return cmp.Compare(a.Line, b.Line) })
	if len(p.problems) > 0 {
		return nil, p.result()
	}
	cfg.Warnings = p.warnings
	return cfg, nil
}

// lineKey finds the lines a key was set on: section, element index of a
// repeated section (0 otherwise), key.
type lineKey struct {
	section string
	index   int
	key     string
}

type parser struct {
	file     string
	problems []*Problem
	warnings []*Problem
	dropped  int
	// lines of each assignment that is in effect: one for a single key,
	// one per item for a list key. Cross-checks point at them.
	lines map[lineKey][]int
}

func (p *parser) errorf(line int, msg string) {
	if p.full() {
		return
	}
	p.problems = append(p.problems, &Problem{File: p.file, Line: line, Msg: msg})
}

// full counts one more problem that will not be shown, if there are
// already as many as are shown. Callers check it before building a message
// that costs something (a suggestion), so junk stays cheap.
func (p *parser) full() bool {
	if len(p.problems) >= maxProblems {
		p.dropped++
		return true
	}
	return false
}

func (p *parser) warnf(line int, format string, args ...any) {
	if len(p.warnings) < maxProblems {
		p.warnings = append(p.warnings, &Problem{File: p.file, Line: line, Msg: "warning: " + fmt.Sprintf(format, args...)})
	}
}

func (p *parser) result() *Errors {
	slices.SortStableFunc(p.problems, func(a, b *Problem) int { return cmp.Compare(a.Line, b.Line) })
	if p.dropped > 0 {
		p.problems = append(p.problems, &Problem{File: p.file, Msg: fmt.Sprintf("%d more problems not shown; fix these first", p.dropped)})
	}
	return &Errors{Problems: p.problems, Warnings: p.warnings}
}

// line returns the line a single key was last set on, or 0.
func (p *parser) line(section string, index int, key string) int {
	if ls := p.lines[lineKey{section, index, key}]; len(ls) > 0 {
		return ls[len(ls)-1]
	}
	return 0
}

// read applies the blocks to cfg through the key table.
func (p *parser) read(cfg *Config, blocks []block) {
	sections := Keys()
	byName := map[string]*Section{}
	var names []string
	for i := range sections {
		byName[sections[i].Name] = &sections[i]
		names = append(names, sections[i].Name)
	}
	// Defaults first, through the same handlers as the file's values, so
	// the table's Default is exactly what a missing key means.
	t := &target{cfg: cfg}
	for _, s := range sections {
		if !s.Repeated {
			applyDefaults(t, s)
		}
	}
	for _, b := range blocks {
		if b.name == "" {
			continue // a broken header, already reported
		}
		s := byName[b.name]
		if s == nil {
			if p.full() {
				continue
			}
			p.errorf(b.line, fmt.Sprintf("unknown section [%s]%s", clip(b.name), suggest(b.name, names, "[", "]")))
			continue
		}
		index := 0
		t := &target{cfg: cfg}
		switch s.Name {
		case "DHCPPool":
			if len(cfg.DHCPPools) >= maxPools {
				p.errorf(b.line, fmt.Sprintf("more than %d [DHCPPool] sections", maxPools))
				continue
			}
			cfg.DHCPPools = append(cfg.DHCPPools, DHCPPool{Line: b.line})
			index = len(cfg.DHCPPools) - 1
			t.pool = &cfg.DHCPPools[index]
		case "DHCPReservation":
			if len(cfg.Reservations) >= maxReservations {
				p.errorf(b.line, fmt.Sprintf("more than %d [DHCPReservation] sections", maxReservations))
				continue
			}
			cfg.Reservations = append(cfg.Reservations, DHCPReservation{Line: b.line})
			index = len(cfg.Reservations) - 1
			t.res = &cfg.Reservations[index]
		}
		if s.Repeated {
			applyDefaults(t, *s)
		}
		for _, a := range b.assignments {
			p.assign(t, s, sections, index, a)
		}
	}
}

func applyDefaults(t *target, s Section) {
	for _, k := range s.Keys {
		if k.Default != "" {
			if err := k.h.set(t, k.Default); err != nil {
				panic(fmt.Sprintf("config: default %s=%s of [%s] does not parse: %v", k.Name, k.Default, s.Name, err))
			}
		}
	}
}

func (p *parser) assign(t *target, s *Section, sections []Section, index int, a assignment) {
	var k *Key
	for i := range s.Keys {
		if s.Keys[i].Name == a.key {
			k = &s.Keys[i]
		}
	}
	if k == nil {
		if !p.full() {
			p.errorf(a.line, unknownKey(s, sections, a.key))
		}
		return
	}
	lk := lineKey{s.Name, index, k.Name}
	t.line = a.line
	if a.value == "" {
		// systemd: an empty assignment resets the key to its default, and a
		// list to empty.
		k.h.reset(t)
		if k.Default != "" {
			_ = k.h.set(t, k.Default)
		}
		delete(p.lines, lk)
		return
	}
	if limit := maxItems; k.List {
		if s.Name == "DNS" && k.Name == "Record" {
			limit = maxRecords
		}
		if len(p.lines[lk]) >= limit {
			p.errorf(a.line, fmt.Sprintf("[%s] %s=: more than %d values; at most %d are read", s.Name, k.Name, limit, limit))
			return
		}
	}
	if err := k.h.set(t, a.value); err != nil {
		p.errorf(a.line, fmt.Sprintf("[%s] %s=%s: %v%s", s.Name, k.Name, clip(a.value), err, valueHint(a.value)))
		return
	}
	if k.List {
		p.lines[lk] = append(p.lines[lk], a.line)
	} else {
		p.lines[lk] = []int{a.line}
	}
}

// valueHint explains two mistakes people bring from other formats.
func valueHint(v string) string {
	switch {
	case len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\''):
		return " (values in amtd.conf are not quoted: remove the quotes)"
	case strings.Contains(v, " #") || strings.Contains(v, " ;"):
		return " (a comment must be on a line of its own, starting with # or ;)"
	}
	return ""
}

// unknownKey says a key is not in section s, and what was probably meant: a
// close spelling in the same section, or the same key in another section.
func unknownKey(s *Section, sections []Section, key string) string {
	var names []string
	for _, k := range s.Keys {
		names = append(names, k.Name)
	}
	msg := fmt.Sprintf("unknown key %s in [%s]", clip(key), s.Name)
	if hint := suggest(key, names, "", ""); hint != "" {
		return msg + hint
	}
	var elsewhere []string
	for _, o := range sections {
		for _, k := range o.Keys {
			if k.Name == key {
				elsewhere = append(elsewhere, "["+o.Name+"]")
			}
		}
	}
	if len(elsewhere) > 0 {
		return fmt.Sprintf("%s: %s= belongs in %s", msg, key, strings.Join(elsewhere, " or "))
	}
	return msg + fmt.Sprintf(" (the keys of [%s] are %s)", s.Name, strings.Join(names, ", "))
}
