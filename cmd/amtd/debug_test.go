package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"amtd/amt/apf"
	"amtd/amt/guid"
	"amtd/amt/hello"
	"amtd/amt/roots"
	"amtd/secret"
)

func runDebug(t *testing.T, stdin []byte, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &cli{stdin: bytes.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	code = c.main(append([]string{"debug"}, args...))
	return out.String(), errb.String(), code
}

func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// sessionWant is the decoding of testdata/debug/apf-session.*, which xxd and
// hexdump made from apf-session.bin.
var sessionWant = []string{
	`       0  SERVICE_REQUEST service="auth@amt.intel.com"`,
	`      23  KEEPALIVE_REQUEST cookie=1`,
	`      28  CHANNEL_DATA recipient=4 len=5`,
	`      42  CHANNEL_CLOSE recipient=4`,
}

func TestDebugAPFFormats(t *testing.T) {
	for _, f := range []string{"apf-session.bin", "apf-session.xxd", "apf-session.hexdump", "apf-session.xxdp"} {
		t.Run(f, func(t *testing.T) {
			out, errs, code := runDebug(t, nil, "decode", "apf", filepath.Join("testdata", "debug", f))
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errs)
			}
			if got := strings.Split(strings.TrimRight(out, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(sessionWant, "\n") {
				t.Errorf("output:\n%s\nwant:\n%s", out, strings.Join(sessionWant, "\n"))
			}
		})
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "debug", "apf-session.bin"))
	if err != nil {
		t.Fatal(err)
	}
	// Hex pasted on stdin with 0x prefixes, colons and line breaks.
	var pasted strings.Builder
	for i, b := range raw {
		fmt.Fprintf(&pasted, "0x%02X", b)
		if i%8 == 7 {
			pasted.WriteString("\n")
		} else {
			pasted.WriteString(":")
		}
	}
	out, errs, code := runDebug(t, []byte(pasted.String()), "decode", "apf", "-")
	if code != exitOK || !strings.Contains(out, sessionWant[3]) {
		t.Errorf("stdin hex: exit %d, %s %s", code, out, errs)
	}
}

// tsharkDump lays bytes out as tshark -z follow,tcp,hex does: 16 bytes a
// line, a gap after 8, padded, ASCII after, the second node tab-indented.
func tsharkDump(node0, node1 []byte) string {
	var b strings.Builder
	b.WriteString("===================================================================\nFollow: tcp,hex\nFilter: tcp.stream eq 0\nNode 0: 10.0.0.5:50123\nNode 1: 10.0.0.1:4433\n")
	lines := func(data []byte, indent string) {
		for off := 0; off < len(data); off += 16 {
			chunk := data[off:min(off+16, len(data))]
			var hexs, ascii strings.Builder
			for i := 0; i < 16; i++ {
				if i == 8 {
					hexs.WriteString(" ")
					ascii.WriteString(" ")
				}
				if i < len(chunk) {
					fmt.Fprintf(&hexs, "%02x ", chunk[i])
					if chunk[i] >= 0x20 && chunk[i] < 0x7f {
						ascii.WriteByte(chunk[i])
					} else {
						ascii.WriteByte('.')
					}
				} else {
					hexs.WriteString("   ")
				}
			}
			fmt.Fprintf(&b, "%s%08x  %s %s\n", indent, off, hexs.String(), strings.TrimRight(ascii.String(), " "))
		}
	}
	lines(node0, "")
	lines(node1, "\t")
	b.WriteString("===================================================================\n")
	return b.String()
}

func TestDebugAPFTsharkBothDirections(t *testing.T) {
	fromAMT, _ := os.ReadFile(filepath.Join("testdata", "debug", "apf-session.bin"))
	var fromServer []byte
	for _, m := range []apf.Message{apf.ServiceAccept{Service: apf.ServiceAuth}, apf.KeepaliveReply{Cookie: 1}} {
		fromServer, _ = m.AppendBinary(fromServer)
	}
	file := writeTemp(t, "follow.txt", []byte(tsharkDump(fromAMT, fromServer)))

	_, errs, code := runDebug(t, nil, "decode", "apf", file)
	if code != exitUsage || !strings.Contains(errs, "--node") {
		t.Errorf("both directions without --node: exit %d, %s", code, errs)
	}
	out, errs, code := runDebug(t, nil, "decode", "apf", file, "--node", "0")
	if code != exitOK || strings.TrimRight(out, "\n") != strings.Join(sessionWant, "\n") {
		t.Errorf("node 0: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = runDebug(t, nil, "decode", "apf", "--node=1", file)
	if code != exitOK || !strings.Contains(out, `SERVICE_ACCEPT service="auth@amt.intel.com"`) || !strings.Contains(out, "23  KEEPALIVE_REPLY cookie=1") {
		t.Errorf("node 1: exit %d\n%s%s", code, out, errs)
	}
}

func TestDebugAPFStopsAtBadByte(t *testing.T) {
	raw, _ := os.ReadFile(filepath.Join("testdata", "debug", "apf-session.bin"))
	bad := append(append([]byte(nil), raw...), 0x07, 0, 0)
	out, errs, code := runDebug(t, bad, "decode", "apf", "-")
	if code != exitFailure {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out, sessionWant[3]) {
		t.Errorf("messages before the bad byte not printed: %s", out)
	}
	if !strings.Contains(errs, fmt.Sprintf("stopped at byte %d of %d after 4 messages", len(raw), len(bad))) || !strings.Contains(errs, "0x07") {
		t.Errorf("stderr = %s", errs)
	}
	// An oversize length: the offset points at the length field.
	over := append(append([]byte(nil), raw[:23]...), 0x05, 0, 0, 0x08, 0x01)
	_, errs, code = runDebug(t, over, "decode", "apf", "-")
	if code != exitFailure || !strings.Contains(errs, "stopped at byte 24 of 28") || !strings.Contains(errs, "2049 bytes, limit 2048") {
		t.Errorf("oversize: exit %d, %s", code, errs)
	}
	// Truncated.
	_, errs, code = runDebug(t, raw[:30], "decode", "apf", "-")
	if code != exitFailure || !strings.Contains(errs, "CHANNEL_DATA") || !strings.Contains(errs, "stopped at byte 30 of 30") {
		t.Errorf("truncated: exit %d, %s", code, errs)
	}
}

func TestDebugAPFJSON(t *testing.T) {
	u, _ := guid.Parse("939b524b-13d4-1d18-e487-1c697a6b7a2b")
	var wire []byte
	for _, m := range []apf.Message{
		apf.ProtocolVersion{Major: 1, Trigger: apf.TriggerPeriodic, UUID: u},
		apf.UserauthRequest{User: "cira", Service: apf.ServicePortForward, Method: apf.MethodPassword, Password: secret.FromString("Cira-Pw-42")},
	} {
		wire, _ = m.AppendBinary(wire)
	}
	out, errs, code := runDebug(t, []byte(hex.EncodeToString(wire)), "decode", "apf", "-", "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if strings.Contains(out, "Cira-Pw-42") {
		t.Fatalf("password printed: %s", out)
	}
	var doc struct {
		Messages []struct {
			Offset int             `json:"offset"`
			Type   string          `json:"type"`
			Fields json.RawMessage `json:"fields"`
		} `json:"messages"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(doc.Messages) != 2 || doc.Messages[0].Type != "PROTOCOLVERSION" || doc.Messages[1].Offset != 93 ||
		!strings.Contains(string(doc.Messages[0].Fields), `"939b524b-13d4-1d18-e487-1c697a6b7a2b"`) ||
		!strings.Contains(string(doc.Messages[1].Fields), `"[redacted]"`) {
		t.Errorf("json = %s", out)
	}
}

func TestDebugHello(t *testing.T) {
	u, _ := guid.Parse("939b524b-13d4-1d18-e487-1c697a6b7a2b")
	h := &hello.Hello{AdminCredentialsSet: true, RetryCount: 2, UUID: u}
	for _, r := range roots.Default()[:3] {
		v, _ := hex.DecodeString(r.SHA256)
		h.Hashes = append(h.Hashes, hello.Hash{Type: hello.SHA256, Value: v})
	}
	h.Hashes = append(h.Hashes, hello.Hash{Type: hello.SHA1, Value: bytes.Repeat([]byte{0xab}, 20)})
	wire, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	out, errs, code := runDebug(t, nil, "decode", "hello", writeTemp(t, "hello.bin", wire))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"hello version 3 (PKI), 149 bytes", "uuid: 939b524b-13d4-1d18-e487-1c697a6b7a2b", "retry count: 2",
		"hashes: 4", "Go Daddy Class 2 CA", "Comodo AAA Certificate Services", "SHA-1   " + strings.Repeat("ab", 20) + "  (not a default root)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, _, code = runDebug(t, []byte(hex.EncodeToString(wire)), "decode", "hello", "-", "--json")
	var doc map[string]any
	if code != exitOK || json.Unmarshal([]byte(out), &doc) != nil || doc["uuid"] != u.String() || len(doc["hashes"].([]any)) != 4 {
		t.Errorf("json: exit %d %s", code, out)
	}

	psk := hello.MarshalPSK(false, 0, u, [8]byte{'P', 'I', 'D'})
	out, _, code = runDebug(t, psk, "decode", "hello", "-")
	if code != exitOK || !strings.Contains(out, "version 2 (PSK)") || !strings.Contains(out, "AMT 11") {
		t.Errorf("psk: exit %d %s", code, out)
	}
	_, errs, code = runDebug(t, wire[:40], "decode", "hello", "-")
	if code != exitFailure || !strings.Contains(errs, "hash 0 of 4") {
		t.Errorf("cut hello: exit %d %s", code, errs)
	}
}

func TestDebugWSMan(t *testing.T) {
	fixture := filepath.Join("..", "..", "..", "shared", "fixtures", "wsman", "amt", "general", "get.xml")
	body, err := os.ReadFile(fixture)
	if err != nil {
		// The fixtures are shared by the whole project; their absence is a
		// broken checkout, not a reason to skip.
		t.Fatalf("fixture: %v", err)
	}
	out, errs, code := runDebug(t, nil, "decode", "wsman", fixture)
	if code != exitOK || !strings.Contains(out, "AMT_GeneralSettings") || !strings.Contains(out, "GetResponse") {
		t.Errorf("bare envelope: exit %d\n%s%s", code, out, errs)
	}
	// The same body as AMT sends it: HTTP/1.1, chunked.
	var resp bytes.Buffer
	fmt.Fprintf(&resp, "HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml; charset=UTF-8\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(body), body)
	out, errs, code = runDebug(t, resp.Bytes(), "decode", "wsman", "-")
	if code != exitOK || !strings.HasPrefix(out, "HTTP/1.1 200 OK\n") || !strings.Contains(out, "AMT_GeneralSettings") {
		t.Errorf("chunked response: exit %d\n%s%s", code, out, errs)
	}
	out, _, code = runDebug(t, resp.Bytes(), "decode", "wsman", "-", "--json")
	if code != exitOK || !json.Valid([]byte(out)) || !strings.Contains(out, `"http": "HTTP/1.1 200 OK"`) {
		t.Errorf("json: exit %d %s", code, out)
	}
	_, errs, code = runDebug(t, []byte("<not-soap/>"), "decode", "wsman", "-")
	if code != exitFailure || !strings.Contains(errs, "wsman") {
		t.Errorf("not soap: exit %d %s", code, errs)
	}
}

func TestDebugUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"decode"}, {"decode", "apf"}, {"decode", "rmcp", "-"}, {"encode", "apf", "-"},
		{"decode", "apf", "-", "--bogus"}, {"decode", "apf", "-", "--node", "2"}, {"decode", "apf", "-", "--node"}} {
		_, errs, code := runDebug(t, nil, args...)
		if code != exitUsage || !strings.Contains(errs, "Usage: amtd debug decode") {
			t.Errorf("%v: exit %d %s", args, code, errs)
		}
	}
	out, _, code := runDebug(t, nil, "-h")
	if code != exitOK || !strings.Contains(out, "--json") {
		t.Errorf("-h: exit %d %s", code, out)
	}
	_, errs, code := runDebug(t, nil, "decode", "apf", filepath.Join(t.TempDir(), "missing"))
	if code != exitFailure || !strings.Contains(errs, "missing") {
		t.Errorf("missing file: exit %d %s", code, errs)
	}
	// Empty input decodes to no messages.
	out, _, code = runDebug(t, nil, "decode", "apf", "-")
	if code != exitOK || out != "" {
		t.Errorf("empty: exit %d %q", code, out)
	}
}
