package main

import (
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"
)

// captureInput turns what an operator pastes or saves into bytes. It
// accepts raw bytes; plain hex (whitespace, "0x" prefixes and colons
// allowed, as in `xxd -p` output or Wireshark's "copy as hex"); and
// offset-prefixed hex dumps (`xxd`, `hexdump -C`, tshark's "Follow stream"
// hex view with its === header and tab-indented second direction).
//
// node selects the direction of a two-way tshark dump: 0 for lines at the
// left margin, 1 for tab-indented lines, -1 for "the only one present".
func captureInput(in []byte, node int) (data []byte, format string, err error) {
	text := string(in)
	if !utf8.ValidString(text) || strings.TrimSpace(text) == "" {
		return in, "raw", nil
	}
	if b, ok := plainHex(text); ok {
		return b, "hex", nil
	}
	if b, ok, err := dumpHex(text, node); ok || err != nil {
		return b, "hex dump", err
	}
	return in, "raw", nil
}

// plainHex decodes text made only of hex pairs, whitespace, colons and 0x.
func plainHex(text string) ([]byte, bool) {
	var digits strings.Builder
	for _, field := range strings.FieldsFunc(text, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == ':' || r == ','
	}) {
		f := field
		if len(f) > 2 && (f[:2] == "0x" || f[:2] == "0X") {
			f = f[2:]
		}
		digits.WriteString(f)
	}
	b, err := hex.DecodeString(digits.String())
	if err != nil || len(b) == 0 {
		return nil, false
	}
	return b, true
}

// dumpHex reads offset-prefixed dump lines. A line that is no dump line ends
// the attempt unless it is part of tshark's header.
func dumpHex(text string, node int) ([]byte, bool, error) {
	var sides [2][]byte
	seen := [2]bool{}
	lines := 0
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		t := strings.TrimLeft(line, "\t")
		if strings.TrimSpace(t) == "" || strings.HasPrefix(t, "===") || strings.HasPrefix(t, "Follow:") || strings.HasPrefix(t, "Filter:") ||
			strings.HasPrefix(t, "Node ") {
			continue
		}
		if f := strings.Fields(t); len(f) == 1 && len(f[0]) == 8 && isHex(f[0]) {
			continue // hexdump's closing line: the total length only
		}
		side := 0
		if strings.HasPrefix(line, "\t") {
			side = 1
		}
		b, ok := dumpLine(t)
		if !ok {
			return nil, false, nil
		}
		sides[side] = append(sides[side], b...)
		seen[side] = true
		lines++
	}
	if lines == 0 {
		return nil, false, nil
	}
	switch {
	case node == 0 || node == 1:
		return sides[node], true, nil
	case seen[0] && seen[1]:
		return nil, true, fmt.Errorf("the dump holds both directions of the stream (%d and %d bytes); choose one with --node 0 (left margin) or --node 1 (tab-indented)",
			len(sides[0]), len(sides[1]))
	case seen[1]:
		return sides[1], true, nil
	}
	return sides[0], true, nil
}

// dumpLine decodes one dump line by columns, because the ASCII column can
// itself look like hex:
//
//	hexdump -C, tshark: "00000000  50 00 .. 70  69 70 .. 61  P....tcp ip-forwa"
//	xxd:                "00000000: 5000 0000 0d74 ...      P....tcp"
//
// All three pad short last lines, so the hex area has a fixed width.
func dumpLine(t string) ([]byte, bool) {
	if len(t) < 11 || !isHex(t[:8]) {
		return nil, false
	}
	var area string
	switch {
	case t[8:10] == "  ": // hexdump -C, tshark: 16 pairs and a middle gap
		area = t[10:min(len(t), 10+16*3+1)]
	case t[8:10] == ": ": // xxd: 8 words of 4 digits
		area = t[10:min(len(t), 10+8*5)]
	default:
		return nil, false
	}
	var out []byte
	for _, f := range strings.Fields(area) {
		if len(f)%2 != 0 || len(f) > 4 || !isHex(f) {
			return nil, false
		}
		b, _ := hex.DecodeString(f)
		out = append(out, b...)
	}
	return out, len(out) > 0 && len(out) <= 16
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return s != ""
}
