// Package control is the daemon's local control socket: a unix stream socket
// carrying newline-delimited JSON, one request line answered by one response
// line. The daemon registers handlers on a Server ("status" now; services add
// theirs later), and `amtd status` and friends talk to it through Client.
//
//	→ {"cmd":"status"}
//	← {"ok":true,"result":{...}}
//	← {"ok":false,"error":"unknown command \"foo\": known commands: status"}
//
// Only root, the daemon's own user and members of [Control] Group= may talk to
// it: the peer's credentials are read with SO_PEERCRED when it connects.
package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// MaxLine bounds one request or response line. Requests are a command name
// and small arguments; the bound keeps a hostile peer from growing a buffer.
const MaxLine = 64 << 10

// maxCmd bounds a command name.
const maxCmd = 64

// Request is one line a client sends.
type Request struct {
	Cmd  string          `json:"cmd"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Response is the daemon's answer to one Request.
type Response struct {
	OK     bool            `json:"ok"`
	Error  string          `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

// DecodeRequest parses one request line (without its newline). It rejects
// unknown fields, trailing data and command names that are not short
// lower-case words, so nothing odd reaches a handler or a log line.
func DecodeRequest(line []byte) (Request, error) {
	var req Request
	if len(line) > MaxLine {
		return req, fmt.Errorf("request of %d bytes is longer than %d", len(line), MaxLine)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Request{}, fmt.Errorf("request is not a JSON object like {\"cmd\":\"status\"}: %w", err)
	}
	if dec.More() {
		return Request{}, errors.New("request has data after the JSON object: send one object per line")
	}
	if err := checkCmd(req.Cmd); err != nil {
		return Request{}, err
	}
	if len(req.Args) > 0 && !json.Valid(req.Args) {
		return Request{}, errors.New("request args are not valid JSON")
	}
	return req, nil
}

func checkCmd(cmd string) error {
	if cmd == "" {
		return errors.New(`request has no "cmd"`)
	}
	if len(cmd) > maxCmd {
		return fmt.Errorf("command name of %d bytes is longer than %d", len(cmd), maxCmd)
	}
	for _, r := range cmd {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' && r != '_' {
			return fmt.Errorf("command %q: names are lower-case letters, digits, '-' and '_'", cmd)
		}
	}
	return nil
}
