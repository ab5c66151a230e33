package config

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file reads the INI layer of amtd.conf the way systemd reads unit and
// .conf files (systemd.syntax(7), src/shared/conf-parser.c), but keeps the line
// number of every assignment, which go-systemd's unit parser does not:
//
//   - "[Name]" starts a section; a section may appear again (the single
//     sections merge, each [DHCPPool] or [DHCPReservation] is a new element).
//   - "Key=value", whitespace around the key and the value trimmed.
//   - Lines whose first non-blank character is '#' or ';' are comments, also
//     between the lines of a continued line. Comments are whole lines only.
//   - A line ending in an odd number of backslashes continues on the next
//     line: the last backslash becomes a space and the next line is appended.
//   - A UTF-8 byte order mark at the start and CR before LF are ignored.

// maxFileSize bounds what Parse reads. systemd allows 1 MiB per line; an
// amtd.conf is a few KiB, so 1 MiB for the whole file leaves room for
// thousands of reservations and keeps hostile input cheap.
const maxFileSize = 1 << 20

// assignment is one Key=value, at the line where it starts.
type assignment struct {
	key, value string
	line       int
}

// block is one [Section] header and the assignments under it.
type block struct {
	name        string
	line        int
	assignments []assignment
}

// scan splits text into blocks. Syntax problems go to report; the lines they
// are on are skipped, and scanning goes on so every problem is found.
func scan(text string, report func(line int, msg string)) []block {
	var (
		blocks    []block
		cont      strings.Builder // a continued line so far
		continued bool
		start     int // line where the logical line began
	)
	logical := func(s string, line int) {
		s = strings.TrimSpace(s)
		switch {
		case s == "":
		case s[0] == '[':
			if s[len(s)-1] != ']' {
				report(line, "section header "+show(s)+" does not end with ']'"+valueHint(s))
				// Keys that follow belong to no known section; an empty
				// name makes them quietly ignored rather than each reported.
				blocks = append(blocks, block{name: "", line: line})
				return
			}
			name := s[1 : len(s)-1]
			if name == "" {
				report(line, "empty section header []")
			}
			blocks = append(blocks, block{name: name, line: line})
		default:
			k, v, ok := strings.Cut(s, "=")
			k = strings.TrimSpace(k)
			switch {
			case !ok:
				report(line, "line "+show(s)+" is not Key=value, a [Section] header, or a comment")
			case k == "":
				report(line, "assignment "+show(s)+" has no key before '='")
			case len(blocks) == 0:
				report(line, "assignment "+show(k+"=")+" comes before any [Section] header")
			default:
				b := &blocks[len(blocks)-1]
				b.assignments = append(b.assignments, assignment{key: k, value: strings.TrimSpace(v), line: line})
			}
		}
	}

	n := 0
	for rest := text; rest != ""; {
		var raw string
		raw, rest, _ = strings.Cut(rest, "\n")
		n++
		raw = strings.TrimSuffix(raw, "\r")
		if n == 1 {
			raw = strings.TrimPrefix(raw, "\uFEFF")
		}
		if !utf8.ValidString(raw) {
			report(n, "line is not valid UTF-8")
			raw = strings.ToValidUTF8(raw, "\uFFFD")
		}
		if t := strings.TrimLeft(raw, " \t"); t != "" && (t[0] == '#' || t[0] == ';') {
			continue
		}
		if !continued {
			start = n
		}
		if trailingBackslashes(raw)%2 == 1 {
			cont.WriteString(raw[:len(raw)-1])
			cont.WriteByte(' ')
			continued = true
			continue
		}
		if continued {
			cont.WriteString(raw)
			raw = cont.String()
			cont.Reset()
			continued = false
		}
		logical(raw, start)
	}
	if continued {
		// systemd parses what it has when the file ends mid-continuation.
		logical(cont.String(), start)
	}
	return blocks
}

func trailingBackslashes(s string) int {
	n := 0
	for n < len(s) && s[len(s)-1-n] == '\\' {
		n++
	}
	return n
}

// show quotes a piece of the file for a message: short, and with control
// characters escaped so a message is always one readable line.
func show(s string) string {
	const max = 60
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strconv.Quote(s)
}

// clip is show without the quotes, for a value after "Key=".
func clip(s string) string {
	q := show(s)
	return q[1 : len(q)-1]
}
