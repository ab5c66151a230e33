package rps

import (
	"errors"
	"strings"
	"testing"
)

// FuzzRPSMessage runs a frame through everything the endpoint does with a
// first message before any policy: envelope, command, payload, validation.
func FuzzRPSMessage(f *testing.F) {
	f.Add(firstMessage(f, "activate --profile site-ccm", samplePayload))
	f.Add(firstMessage(f, "deactivate --password P -f", `{"uuid":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16],"client":"RPC","ver":"1","build":"2"}`))
	f.Add([]byte(`{"method":"heartbeat_response","status":"success","payload":""}`))
	f.Add([]byte(`{"method":"success","payload":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			return
		}
		if _, err := Marshal(m); err != nil && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("re-encode: %v", err)
		}
		_, _ = ParseCommand(m.Method)
		_ = CheckProtocolVersion(m.ProtocolVersion)
		p, err := DecodePayload(m)
		if err != nil {
			return
		}
		if err := ValidatePayload(p); err == nil && len(p.UUID) != 36 {
			t.Fatalf("validated a %d-char uuid", len(p.UUID))
		}
		_ = ValidateACM(p)
		if _, err := EncodePayload(p); err != nil {
			t.Fatalf("encode payload: %v", err)
		}
	})
}

// FuzzCommand checks that ParseCommand never panics and only returns commands
// it understands, and that printing one never shows its passwords.
func FuzzCommand(f *testing.F) {
	for _, s := range []string{
		"activate --profile site-ccm", "activate --profile site-acm -f", `activate --profile "a b"`,
		"deactivate --password P@ssw0rd -f", "maintenance -password P@ssw0rd --synctime",
		"maintenance --password=P --changepassword N3w", `deactivate --password "a \"q\" b"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCommand(s)
		if err != nil {
			return
		}
		switch c.Name {
		case MethodActivate:
			if c.Profile == "" {
				t.Fatal("activate without profile")
			}
		case MethodDeactivate, MethodMaintenance:
		default:
			t.Fatalf("command %q", c.Name)
		}
		if c.Name == MethodMaintenance && c.Task == "" {
			t.Fatal("maintenance without task")
		}
		if !c.Password.IsZero() && !strings.Contains(c.String(), "--password [redacted]") {
			t.Fatalf("String %q does not redact the password", c)
		}
	})
}

// FuzzTunnelMessages runs what the TLS tunnel reads from a frame: the
// port_switch payload, the connection_reset reason and the ClientHello test.
func FuzzTunnelMessages(f *testing.F) {
	f.Add([]byte(`{"method":"port_switch","status":"ok","payload":"{\"port\":\"16993\",\"rootCert\":\"\",\"delay\":15}"}`))
	f.Add([]byte(`{"method":"port_switch","payload":"{\"port\":\"0\",\"delay\":-3}"}`))
	f.Add([]byte(`{"method":"connection_reset","payload":"Y29ubmVjdGlvbl9jbG9zZWQ="}`))
	f.Add([]byte(`{"method":"tls_data","payload":"FgMBAAUBAAAAAA=="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			return
		}
		if ps, err := ParsePortSwitch(m); err == nil {
			if ps.Port < 1 || ps.Port > 65535 || ps.Delay < 0 || ps.Delay > MaxPortSwitchDelay {
				t.Fatalf("accepted %+v", ps)
			}
		}
		if r := ConnectionReset(m); len(r) > 64 {
			t.Fatalf("reason of %d bytes", len(r))
		}
		if p, err := m.PayloadBytes(); err == nil && IsClientHello(p) && (p[0] != 0x16 || p[5] != 1) {
			t.Fatal("not a ClientHello")
		}
	})
}
