package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"amtd/amt/apf"
	"amtd/amt/hello"
	"amtd/amt/httpwire"
	"amtd/amt/roots"
	"amtd/amt/wsman"
)

// maxCaptureBytes bounds what `amtd debug decode` reads: a capture of a
// long CIRA session in hex is a few MiB.
const maxCaptureBytes = 64 << 20

const debugUsage = `Usage: amtd debug decode hello|apf|wsman|setupbin FILE|- [--json] [--node 0|1]

Decodes a capture and prints what it contains, one line per APF message.
setupbin reads a USB setup.bin: its records, which are consumed, and their
values (MEBx passwords shown only as set or not).
FILE is raw bytes or hex: plain hex (whitespace, 0x and colons allowed; xxd -p),
an xxd or hexdump -C dump, or tshark's "Follow stream" hex view. "-" reads stdin.

  --json      print JSON instead of text
  --node N    for a tshark dump with both directions: 0 = left margin, 1 = tab-indented

Exit status: 0 decoded, 1 the capture does not decode (the error gives the offset), 2 usage.
`

// cmdDebug decodes captures of the wire protocols for people debugging a
// device: what did AMT actually send?
func cmdDebug(c *cli, args []string) int {
	var pos []string
	asJSON, node := false, -1
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-h" || a == "--help" || a == "-help":
			fmt.Fprint(c.stdout, debugUsage)
			return exitOK
		case a == "--json" || a == "-json":
			asJSON = true
		case a == "--node" || a == "-node" || strings.HasPrefix(a, "--node=") || strings.HasPrefix(a, "-node="):
			v, ok := strings.CutPrefix(strings.TrimLeft(a, "-"), "node=")
			if !ok {
				if i+1 >= len(args) {
					return debugUsageError(c, "--node needs 0 or 1")
				}
				i++
				v = args[i]
			}
			if v != "0" && v != "1" {
				return debugUsageError(c, fmt.Sprintf("--node %q: want 0 or 1", v))
			}
			node, _ = strconv.Atoi(v)
		case a != "-" && strings.HasPrefix(a, "-"):
			return debugUsageError(c, fmt.Sprintf("unknown option %s", a))
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 3 || pos[0] != "decode" {
		return debugUsageError(c, "want: debug decode hello|apf|wsman|setupbin FILE|-")
	}
	kind, file := pos[1], pos[2]
	var decode func(c *cli, data []byte, asJSON bool) int
	switch kind {
	case "hello":
		decode = decodeHello
	case "apf":
		decode = decodeAPF
	case "wsman":
		decode = decodeWSMan
	case "setupbin":
		decode = decodeSetupBin
	default:
		return debugUsageError(c, fmt.Sprintf("unknown capture kind %q: want hello, apf, wsman or setupbin", kind))
	}
	raw, err := readCapture(c, file)
	if err != nil {
		fmt.Fprintf(c.stderr, "amtd debug: %v\n", err)
		return exitFailure
	}
	data, _, err := captureInput(raw, node)
	if err != nil {
		fmt.Fprintf(c.stderr, "amtd debug: %s: %v\n", file, err)
		return exitUsage
	}
	return decode(c, data, asJSON)
}

func debugUsageError(c *cli, msg string) int {
	fmt.Fprintf(c.stderr, "amtd debug: %s\n\n%s", msg, debugUsage)
	return exitUsage
}

func readCapture(c *cli, file string) ([]byte, error) {
	var r io.Reader
	if file == "-" {
		r = c.stdin
	} else {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("read capture: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxCaptureBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read capture %s: %w", file, err)
	}
	if len(b) > maxCaptureBytes {
		return nil, fmt.Errorf("capture %s is over %d MiB; cut it to the part of interest", file, maxCaptureBytes>>20)
	}
	return b, nil
}

func writeJSON(c *cli, v any) {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

type helloHashJSON struct {
	Type string `json:"type"`
	Hex  string `json:"hex"`
	CA   string `json:"defaultRoot,omitempty"`
}

func decodeHello(c *cli, data []byte, asJSON bool) int {
	h, err := hello.Parse(data)
	var psk *hello.PSKError
	if errors.As(err, &psk) {
		if asJSON {
			writeJSON(c, map[string]any{"kind": "hello", "bytes": len(data), "version": hello.VersionPSK,
				"adminCredentialsSet": psk.AdminCredentialsSet, "retryCount": psk.RetryCount, "uuid": psk.UUID,
				"pid": fmt.Sprintf("%x", psk.PID), "unsupported": err.Error()})
		} else {
			fmt.Fprintf(c.stdout, "hello version 2 (PSK), %d bytes\nadmin credentials set: %t\nretry count: %d\nuuid: %s\npid: %x\nunsupported: %v\n",
				len(data), psk.AdminCredentialsSet, psk.RetryCount, psk.UUID, psk.PID, err)
		}
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "amtd debug: %v\n", err)
		return exitFailure
	}
	hashes := make([]helloHashJSON, len(h.Hashes))
	for i, x := range h.Hashes {
		hashes[i] = helloHashJSON{Type: x.Type.String(), Hex: x.Hex()}
		if r, ok := roots.LookupHex(x.Hex()); ok && x.Type == hello.SHA256 {
			hashes[i].CA = r.CA
		}
	}
	if asJSON {
		writeJSON(c, map[string]any{"kind": "hello", "bytes": len(data), "version": hello.VersionPKI,
			"adminCredentialsSet": h.AdminCredentialsSet, "retryCount": h.RetryCount, "uuid": h.UUID,
			"hashes": hashes, "trailingBytes": h.TrailingBytes})
		return exitOK
	}
	w := c.stdout
	fmt.Fprintf(w, "hello version 3 (PKI), %d bytes\nadmin credentials set: %t\nretry count: %d\nuuid: %s\nhashes: %d\n",
		len(data), h.AdminCredentialsSet, h.RetryCount, h.UUID, len(h.Hashes))
	for i, x := range hashes {
		ca := x.CA
		if ca == "" {
			ca = "(not a default root)"
		}
		fmt.Fprintf(w, "  %2d %-7s %s  %s\n", i, x.Type, x.Hex, ca)
	}
	if h.TrailingBytes > 0 {
		fmt.Fprintf(w, "trailing bytes after the hashes: %d\n", h.TrailingBytes)
	}
	return exitOK
}

type apfMessageJSON struct {
	Offset  int64       `json:"offset"`
	Type    string      `json:"type"`
	Summary string      `json:"summary"`
	Fields  apf.Message `json:"fields"`
}

func decodeAPF(c *cli, data []byte, asJSON bool) int {
	r := apf.NewReader(bytes.NewReader(data), apf.Limits{})
	var msgs []apfMessageJSON
	var failure error
	var failAt int64
	for {
		at := r.Offset()
		m, err := r.ReadMessage()
		if err == io.EOF {
			break
		}
		if err != nil {
			failure, failAt = err, at
			var pe *apf.ParseError
			if errors.As(err, &pe) {
				failAt += int64(pe.Offset)
			} else if errors.Is(err, io.ErrUnexpectedEOF) {
				failAt = int64(len(data))
			}
			break
		}
		msgs = append(msgs, apfMessageJSON{Offset: at, Type: m.Type().String(), Summary: m.String(), Fields: m})
		if !asJSON {
			fmt.Fprintf(c.stdout, "%8d  %s\n", at, m)
		}
	}
	if asJSON {
		out := map[string]any{"kind": "apf", "bytes": len(data), "messages": msgs}
		if msgs == nil {
			out["messages"] = []apfMessageJSON{}
		}
		if failure != nil {
			out["error"] = map[string]any{"offset": failAt, "message": failure.Error()}
		}
		writeJSON(c, out)
	}
	if failure != nil {
		fmt.Fprintf(c.stderr, "amtd debug: apf: stopped at byte %d of %d after %d messages: %v\n", failAt, len(data), len(msgs), failure)
		return exitFailure
	}
	return exitOK
}

type wsmanJSON struct {
	Kind       string         `json:"kind"`
	HTTP       string         `json:"http,omitempty"`
	BodyBytes  int            `json:"bodyBytes"`
	Message    *wsman.Message `json:"message,omitempty"`
	FaultError string         `json:"fault,omitempty"`
}

// decodeWSMan accepts an HTTP request or response (chunked or not) or a bare
// SOAP envelope.
func decodeWSMan(c *cli, data []byte, asJSON bool) int {
	body, httpLine, isRequest := data, "", false
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	switch {
	case bytes.HasPrefix(trimmed, []byte("HTTP/")):
		resp, err := httpwire.ReadResponse(bufio.NewReader(bytes.NewReader(trimmed)), httpwire.Limits{})
		if err != nil {
			fmt.Fprintf(c.stderr, "amtd debug: wsman: %v\n", err)
			return exitFailure
		}
		body, httpLine = resp.Body, resp.Proto+" "+resp.Status()
	case bytes.HasPrefix(trimmed, []byte("POST ")):
		req, err := httpwire.ReadRequest(bufio.NewReader(bytes.NewReader(trimmed)), httpwire.Limits{})
		if err != nil {
			fmt.Fprintf(c.stderr, "amtd debug: wsman: %v\n", err)
			return exitFailure
		}
		body, httpLine, isRequest = req.Body, req.Method+" "+req.Target+" "+req.Proto, true
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if httpLine == "" {
			fmt.Fprintln(c.stderr, "amtd debug: wsman: the capture is empty")
			return exitFailure
		}
		if asJSON {
			writeJSON(c, wsmanJSON{Kind: "wsman", HTTP: httpLine})
		} else {
			fmt.Fprintf(c.stdout, "%s\n(no body)\n", httpLine)
		}
		return exitOK
	}
	var m *wsman.Message
	var err error
	if isRequest {
		m, err = wsman.ParseRequest(body)
	} else {
		m, err = wsman.ParseResponse(body)
	}
	var fault *wsman.Fault
	if err != nil && !errors.As(err, &fault) {
		fmt.Fprintf(c.stderr, "amtd debug: wsman: %v\n", err)
		return exitFailure
	}
	if asJSON {
		out := wsmanJSON{Kind: "wsman", HTTP: httpLine, BodyBytes: len(body), Message: m}
		if fault != nil {
			out.FaultError = fault.Error()
		}
		writeJSON(c, out)
		return exitOK
	}
	w := c.stdout
	if httpLine != "" {
		fmt.Fprintln(w, httpLine)
	}
	fmt.Fprintf(w, "body: %d bytes, %s\naction: %s\nresource: %s\n", len(body), m.Kind, m.Header.Action, m.Header.ResourceURI)
	for _, s := range m.Header.Selectors {
		fmt.Fprintf(w, "selector: %s = %s\n", s.Name, s.Value)
	}
	if fault != nil {
		fmt.Fprintf(w, "fault: %v\n", fault)
	}
	if m.EnumerationContext != "" {
		fmt.Fprintf(w, "enumeration context: %s (end of sequence: %t)\n", m.EnumerationContext, m.EndOfSequence)
	}
	printInstance := func(in *wsman.Instance) {
		fmt.Fprintf(w, "%s\n", in.Class)
		for _, p := range in.Props {
			switch {
			case p.EPR != nil:
				fmt.Fprintf(w, "  %s = EPR %s %v\n", p.Name, p.EPR.ResourceURI, p.EPR.Selectors)
			case p.Nil:
				fmt.Fprintf(w, "  %s = (nil)\n", p.Name)
			default:
				fmt.Fprintf(w, "  %s = %s\n", p.Name, p.Value)
			}
		}
	}
	for i := range m.Instances {
		printInstance(&m.Instances[i])
	}
	if m.Method != nil {
		printInstance(m.Method)
	}
	if m.Created != nil {
		fmt.Fprintf(w, "created: %s %v\n", m.Created.ResourceURI, m.Created.Selectors)
	}
	return exitOK
}
