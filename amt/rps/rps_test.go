package rps

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// firstMessage is what rpc-go sends for `activate --profile site-ccm`
// (spec/rpc-protocol.md §9).
func firstMessage(t testing.TB, method string, payload string) []byte {
	t.Helper()
	return []byte(`{"method":` + quote(method) + `,"apiKey":"key","appVersion":"v2.48.0","protocolVersion":"4.0.0","status":"ok",` +
		`"message":"ok","fqdn":"","payload":"` + base64.StdEncoding.EncodeToString([]byte(payload)) + `","tenantId":""}`)
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

const samplePayload = `{"ver":"16.1.25","build":"2049","sku":"16392","features":"AMT Pro Corporate",
 "uuid":"4c4c4544-0042-3510-8052-b4c04f4e3132","username":"$$OsAdmin","password":"Lsa-Secret-123",
 "currentMode":0,"hostname":"pc-17","fqdn":"corp.example.com","client":"RPC",
 "certHashes":["c3846bf24b9e93ca64274c0ec67c1ecc5e024ffcacd2d74019350e81fe546ae4"],
 "ipConfiguration":{"dhcp":true,"static":false,"ipsync":true,"ipAddress":"10.0.0.17","netmask":"255.255.255.0",
  "gateway":"10.0.0.1","primaryDns":"10.0.0.2","secondaryDns":""},
 "hostnameInfo":{"dnsSuffixOS":"corp.example.com","hostname":"pc-17"},"tlsEnforced":true}`

func TestFirstMessage(t *testing.T) {
	m, err := ParseMessage(firstMessage(t, "activate --profile site-ccm", samplePayload))
	if err != nil {
		t.Fatal(err)
	}
	if m.Method != "activate --profile site-ccm" || m.APIKey != "key" || m.ProtocolVersion != "4.0.0" || m.TenantID != "" {
		t.Errorf("envelope = %+v", m)
	}
	p, err := DecodePayload(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidatePayload(p); err != nil {
		t.Fatal(err)
	}
	if p.Ver != "16.1.25" || p.UUID != "4c4c4544-0042-3510-8052-b4c04f4e3132" || p.Username != "$$OsAdmin" ||
		p.CurrentMode != ModePreProvisioning || p.FQDN != "corp.example.com" || !p.TLSEnforced || !p.IPConfiguration.DHCP ||
		p.IPConfiguration.IPAddress != "10.0.0.17" || p.HostnameInfo.DNSSuffixOS != "corp.example.com" || len(p.CertHashes) != 1 {
		t.Errorf("payload = %+v", p)
	}
	if p.Password.RevealString() != "Lsa-Secret-123" {
		t.Error("password not read")
	}
	// The password never prints, logs or marshals.
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("payload", "p", p, "pw", p.Password)
	js, _ := json.Marshal(p)
	for _, s := range []string{fmt.Sprintf("%v %+v %#v %s", p, p, p, p.Password), string(js), logged.String()} {
		if strings.Contains(s, "Lsa-Secret-123") {
			t.Fatalf("password leaked: %s", s)
		}
	}
	// The fake RPC's encoding carries it in plain text, and reads back equal.
	enc, err := EncodePayload(p)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := DecodePayload(Client{AppVersion: "test"}.Message("activate --profile x", mustB64(t, enc)))
	if err != nil || p2.Password.RevealString() != "Lsa-Secret-123" || p2.UUID != p.UUID || p2.HostnameInfo != p.HostnameInfo {
		t.Errorf("re-encoded payload = %+v, %v", p2, err)
	}
}

func mustB64(t testing.TB, s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPayloadExactKeys(t *testing.T) {
	b, err := json.Marshal(&Payload{})
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	_ = json.Unmarshal(b, &keys)
	for _, k := range []string{"ver", "build", "sku", "features", "uuid", "username", "password", "currentMode", "hostname",
		"fqdn", "client", "certHashes", "ipConfiguration", "hostnameInfo", "progressSupported"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("key %q missing from %s", k, b)
		}
	}
	for _, k := range []string{"friendlyName", "tlsEnforced", "tlsTunnel", "lmsInstalled"} {
		if _, ok := keys[k]; ok {
			t.Errorf("omitempty key %q present in %s", k, b)
		}
	}
	ip, _ := json.Marshal(IPConfiguration{})
	if string(ip) != `{"dhcp":false,"static":false,"ipsync":false,"ipAddress":"","netmask":"","gateway":"","primaryDns":"","secondaryDns":""}` {
		t.Errorf("ipConfiguration = %s", ip)
	}
	hi, _ := json.Marshal(HostnameInfo{})
	if string(hi) != `{"dnsSuffixOS":"","hostname":""}` {
		t.Errorf("hostnameInfo = %s", hi)
	}
}

func TestUUIDArray(t *testing.T) {
	// RPS getUUID: LE32, LE16, LE16, then bytes as they are.
	var p Payload
	err := json.Unmarshal([]byte(`{"uuid":[68,69,76,76,66,0,16,53,128,82,180,192,79,78,49,50]}`), &p)
	if err != nil {
		t.Fatal(err)
	}
	if p.UUID != "4c4c4544-0042-3510-8052-b4c04f4e3132" {
		t.Errorf("uuid = %s", p.UUID)
	}
	for _, bad := range []string{`{"uuid":[1,2,3]}`, `{"uuid":[256,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}`, `{"uuid":17}`} {
		if err := json.Unmarshal([]byte(bad), &p); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestValidationTexts(t *testing.T) {
	valid := func() *Payload {
		return &Payload{Client: "RPC", Ver: "16.1.25", Build: "2049", UUID: "4c4c4544-0042-3510-8052-b4c04f4e3132",
			CertHashes: []string{"aa"}, FQDN: "corp.example.com"}
	}
	const u = "4c4c4544-0042-3510-8052-b4c04f4e3132"
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"no client", ValidatePayload(func() *Payload { p := valid(); p.Client = ""; return p }()), "Invalid payload from client"},
		{"no ver", ValidatePayload(func() *Payload { p := valid(); p.Ver = ""; return p }()), "Invalid payload from client"},
		{"no build", ValidatePayload(func() *Payload { p := valid(); p.Build = ""; return p }()), "Invalid payload from client"},
		{"no uuid", ValidatePayload(func() *Payload { p := valid(); p.UUID = ""; return p }()), "Invalid payload from client"},
		{"short uuid", ValidatePayload(func() *Payload { p := valid(); p.UUID = UUID(u[:35]); return p }()), "uuid not valid length"},
		{"protocol", CheckProtocolVersion("4.1.0"), "protocol version NOT supported: 4.1.0"},
		{"method", ErrUnsupportedMethod(u), "Device " + u + " Not a supported method received from AMT device"},
		{"hashes", ValidateACM(func() *Payload { p := valid(); p.CertHashes = nil; return p }()),
			"Device " + u + " activation failed. Missing certificate hashes from the device."},
		{"suffix", ValidateACM(func() *Payload { p := valid(); p.FQDN = ""; return p }()),
			"Device " + u + " activation failed. Missing DNS Suffix."},
		{"acm", ErrAlreadyACM(u), "Device " + u + " already enabled in admin control mode."},
		{"password", ErrPasswordMismatch(u), "AMT password DOES NOT match stored version for Device " + u},
	}
	for _, tc := range tests {
		var e *Error
		if !errors.As(tc.err, &e) || tc.err.Error() != tc.want {
			t.Errorf("%s: %v, want %q", tc.name, tc.err, tc.want)
		}
	}
	if err := ValidatePayload(valid()); err != nil {
		t.Errorf("valid payload: %v", err)
	}
	if err := ValidateACM(valid()); err != nil {
		t.Errorf("valid ACM payload: %v", err)
	}
	// A device already in ACM needs no suffix (RPS verifyActivationMsgForACM).
	p := valid()
	p.FQDN, p.CurrentMode = "", ModeACM
	if err := ValidateACM(p); err != nil {
		t.Errorf("ACM device without suffix: %v", err)
	}
}

func TestVersionExamples(t *testing.T) {
	// spec/rpc-protocol.md §8, S = 4.0.0.
	for c, want := range map[string]bool{"4.0.0": true, "4.0.1": false, "4.1.0": false, "3.0.0": false, "3.9.9": false,
		"4": true, "4.0": true, "5.0.0": false} {
		err := CheckProtocolVersion(c)
		if (err == nil) != want {
			t.Errorf("client %s: %v, want compatible=%v", c, err, want)
		}
	}
	s, _ := ParseVersion("4.2.0")
	for c, want := range map[string]bool{"4.1.7": true, "4.2.0": true, "4.2.1": false, "4.3": false} {
		cv, _ := ParseVersion(c)
		if Compatible(s, cv) != want {
			t.Errorf("server 4.2.0, client %s: want %v", c, want)
		}
	}
	for _, bad := range []string{"", "4.0.0.0", "a.b", "4..0", "-1", "4.+1"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) accepted", bad)
		}
		if err := CheckProtocolVersion(bad); err == nil || err.Error() != "protocol version NOT supported: "+bad {
			t.Errorf("CheckProtocolVersion(%q) = %v", bad, err)
		}
	}
}

func TestCommands(t *testing.T) {
	tests := []struct {
		in                string
		name, profile, pw string
		force             bool
		task, newPW       string
	}{
		{in: "activate --profile site-ccm", name: "activate", profile: "site-ccm"},
		{in: "activate --profile site-acm -f", name: "activate", profile: "site-acm", force: true},
		{in: "activate --profile=site-acm", name: "activate", profile: "site-acm"},
		{in: `activate --profile "site with space"`, name: "activate", profile: "site with space"},
		{in: "  activate   --profile\tp1  ", name: "activate", profile: "p1"},
		{in: "deactivate --password P@ss w", name: "", pw: ""}, // stray word: refused below
		{in: "deactivate --password P@ssw0rd", name: "deactivate", pw: "P@ssw0rd"},
		{in: "deactivate --password P@ssw0rd -f", name: "deactivate", pw: "P@ssw0rd", force: true},
		{in: "deactivate -f", name: "deactivate", force: true},
		{in: `deactivate --password 'it''s'`, name: "deactivate", pw: "its"},
		{in: `deactivate --password "a \"quoted\" pw"`, name: "deactivate", pw: `a "quoted" pw`},
		{in: "maintenance -password P@ssw0rd --synctime", name: "maintenance", pw: "P@ssw0rd", task: "synctime"},
		{in: "maintenance --password P@ssw0rd --syncip", name: "maintenance", pw: "P@ssw0rd", task: "syncip"},
		{in: "maintenance --password=P@ssw0rd --synchostname", name: "maintenance", pw: "P@ssw0rd", task: "synchostname"},
		{in: "maintenance -p P@ssw0rd --syncdeviceinfo", name: "maintenance", pw: "P@ssw0rd", task: "syncdeviceinfo"},
		{in: "maintenance -password P@ssw0rd --changepassword", name: "maintenance", pw: "P@ssw0rd", task: "changepassword"},
		{in: "maintenance -password P@ssw0rd --changepassword N3w!Pass", name: "maintenance", pw: "P@ssw0rd", task: "changepassword", newPW: "N3w!Pass"},
		{in: "maintenance --changepassword=N3w --password P", name: "maintenance", pw: "P", task: "changepassword", newPW: "N3w"},
	}
	for _, tc := range tests {
		c, err := ParseCommand(tc.in)
		if tc.name == "" {
			if err == nil {
				t.Errorf("%q accepted: %v", tc.in, c)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if c.Name != tc.name || c.Profile != tc.profile || c.Password.RevealString() != tc.pw || c.Force != tc.force ||
			c.Task != tc.task || c.NewPassword.RevealString() != tc.newPW {
			t.Errorf("%q = %s (pw %d bytes, new %d bytes)", tc.in, c, c.Password.Len(), c.NewPassword.Len())
		}
		if tc.pw != "" && strings.Contains(c.String(), tc.pw) {
			t.Errorf("String leaks the password: %s", c)
		}
	}
}

func TestCommandRejects(t *testing.T) {
	for in, want := range map[string]string{
		"":                                "empty command",
		"provision --profile x":           `unknown command "provision"`,
		"activate":                        "--profile NAME is required",
		"activate --profile":              "--profile needs a value",
		"activate --profile x --bogus":    "unknown flag -bogus",
		"activate --profile x --synctime": "belongs to maintenance",
		"deactivate":                      "--password PW",
		"maintenance --password p":        "one of --synctime",
		"maintenance --synctime":          "--password PW is required",
		"maintenance --password p --synctime --syncip": "two tasks",
		`activate --profile "open`:                     "unterminated",
		"deactivate --password Secr3t extra":           "unexpected argument",
		"deactivate -f=Secr3tValue":                    "takes no value",
	} {
		_, err := ParseCommand(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseCommand(%q) = %v, want an error saying %q", in, err, want)
			continue
		}
		if strings.Contains(err.Error(), "Secr3t") {
			t.Errorf("error leaks a password: %v", err)
		}
	}
}

func TestServerMessages(t *testing.T) {
	s := Server{AppVersion: "amtd-1.0"}
	check := func(m *Message, want string) {
		t.Helper()
		b, err := Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != want {
			t.Errorf("got  %s\nwant %s", b, want)
		}
	}
	req := []byte("POST /wsman HTTP/1.1\r\nHost: x:16992\r\n\r\n")
	check(s.WSMan(req), `{"method":"wsman","apiKey":"xxxxx","appVersion":"amtd-1.0","protocolVersion":"4.0.0","status":"ok","message":"ok","payload":"`+
		base64.StdEncoding.EncodeToString(req)+`","tenantId":""}`)
	check(s.Heartbeat(), `{"method":"heartbeat_request","apiKey":"xxxxx","appVersion":"amtd-1.0","protocolVersion":"4.0.0","status":"heartbeat","message":"","payload":"","tenantId":""}`)
	check(s.Error("Invalid payload from client"), `{"method":"error","apiKey":"xxxxx","appVersion":"amtd-1.0","protocolVersion":"4.0.0","status":"failed","message":"Invalid payload from client","payload":null,"tenantId":""}`)
	ok, err := s.Success(Result{Status: "Client control mode.", Network: "Wired Network Configured", CIRAConnection: "Configured", TLSConfiguration: "Configured"})
	if err != nil {
		t.Fatal(err)
	}
	check(ok, `{"method":"success","apiKey":"xxxxx","appVersion":"amtd-1.0","protocolVersion":"4.0.0","status":"success","message":"{\"Status\":\"Client control mode.\",\"Network\":\"Wired Network Configured\",\"CIRAConnection\":\"Configured\",\"TLSConfiguration\":\"Configured\"}","payload":null,"tenantId":""}`)

	// port_switch: the payload is a plain JSON string holding JSON, not base64.
	ps := s.PortSwitch(16993, "MIIB", 5)
	payload, err := ps.PayloadString()
	if err != nil {
		t.Fatal(err)
	}
	if payload != `{"port":"16993","rootCert":"MIIB","delay":5}` {
		t.Errorf("port_switch payload = %s", payload)
	}
	if ps.Method != MethodPortSwitch {
		t.Errorf("method %s", ps.Method)
	}

	// A wsman request whose frame would exceed 102400 bytes is refused.
	if _, err := Marshal(s.WSMan(make([]byte, 80000))); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize wsman: %v", err)
	}
}

func TestClientReplies(t *testing.T) {
	c := Client{AppVersion: "v2.48.0"}
	resp := []byte("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"Digest:AB\"\r\n\r\n")
	b, err := Marshal(c.Message(MethodResponse, resp))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.PayloadBytes()
	if err != nil || string(got) != string(resp) {
		t.Errorf("response payload = %q, %v", got, err)
	}
	// rpc-go echoes the heartbeat with status success.
	hb, err := ParseMessage([]byte(`{"method":"heartbeat_response","apiKey":"key","appVersion":"v2","protocolVersion":"4.0.0","status":"success","message":"","payload":"","tenantId":""}`))
	if err != nil || hb.Method != MethodHeartbeatResponse {
		t.Errorf("heartbeat_response = %+v, %v", hb, err)
	}
	if p, err := hb.PayloadBytes(); err != nil || len(p) != 0 {
		t.Errorf("empty payload = %q %v", p, err)
	}
}

func TestParseMessageRejects(t *testing.T) {
	big := []byte(`{"method":"response","payload":"` + strings.Repeat("A", MaxMessageSize) + `"}`)
	if _, err := ParseMessage(big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize: %v", err)
	}
	for _, bad := range []string{``, `[]`, `{"method":1}`, `{"method":"x"} {"method":"y"}`, `{"method":"x"`} {
		if _, err := ParseMessage([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	m, _ := ParseMessage([]byte(`{"method":"response","payload":"%%%"}`))
	if _, err := m.PayloadBytes(); err == nil {
		t.Error("bad base64 accepted")
	}
	m, _ = ParseMessage([]byte(`{"method":"activate --profile x","payload":"` + base64.StdEncoding.EncodeToString([]byte("{not json")) + `"}`))
	if _, err := DecodePayload(m); err == nil || !strings.Contains(err.Error(), "Failed to parse client message payload") {
		t.Errorf("bad payload JSON: %v", err)
	}
}

func TestTunnelMessages(t *testing.T) {
	srv := Server{AppVersion: "t"}
	ps, err := ParsePortSwitch(srv.PortSwitch(16993, "PEM", 90))
	if err != nil || ps.Port != 16993 || ps.RootCert != "PEM" || ps.Delay != MaxPortSwitchDelay {
		t.Fatalf("%+v %v", ps, err)
	}
	for _, bad := range []string{`"{\"port\":\"x\"}"`, `"{\"port\":\"70000\"}"`, `"nope"`, `null`} {
		if _, err := ParsePortSwitch(&Message{Method: MethodPortSwitch, Payload: json.RawMessage(bad)}); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	reset := Client{}.Message(MethodConnectionReset, []byte(ResetLMSError))
	if r := ConnectionReset(reset); r != ResetLMSError {
		t.Fatalf("reason %q", r)
	}
	if !IsClientHello([]byte{0x16, 3, 1, 0, 5, 1}) || IsClientHello([]byte{0x17, 3, 3, 0, 5, 1}) || IsClientHello([]byte{0x16, 3}) {
		t.Fatal("IsClientHello")
	}
}
