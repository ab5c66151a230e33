package rps

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// TLS tunnel messages (rpc-go v3, AMT 19+ and --tls-tunnel;
// spec/rpc-protocol.md §7).

// IsClientHello reports whether b starts with a TLS handshake record holding
// a ClientHello (byte 0 = 0x16, byte 5 = 0x01). rpc-go closes and reopens
// its LMS connection before writing such a tls_data payload, so every TLS
// handshake the server starts gets a fresh connection to AMT
// (executor.go HandleDataFromRPS).
func IsClientHello(b []byte) bool {
	return len(b) >= 6 && b[0] == 0x16 && b[5] == 0x01
}

// PortSwitch is the port_switch payload: reconnect LMS to Port after Delay
// seconds. RootCert is the PEM of the root the server will validate AMT's
// new certificate against; rpc-go does not use it.
type PortSwitch struct {
	Port     int
	RootCert string
	Delay    int
}

// MaxPortSwitchDelay is rpc-go's cap on the delay a server may ask for
// (RPC_PORT_SWITCH_MAX_DELAY, 60 s by default).
const MaxPortSwitchDelay = 60

// ParsePortSwitch reads a port_switch message. Its payload is a JSON string
// holding JSON, not base64 (spec/rpc-protocol.md §3): {"port":"16993",
// "rootCert":"…","delay":N}. The port must be 1-65535; a negative delay is
// 0 and a delay over MaxPortSwitchDelay is capped, as rpc-go does.
func ParsePortSwitch(m *Message) (PortSwitch, error) {
	s, err := m.PayloadString()
	if err != nil {
		return PortSwitch{}, err
	}
	var raw struct {
		Port     string `json:"port"`
		RootCert string `json:"rootCert"`
		Delay    int    `json:"delay"`
	}
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return PortSwitch{}, fmt.Errorf("rps: port_switch payload: %w", err)
	}
	port, err := strconv.Atoi(raw.Port)
	if err != nil || port < 1 || port > 65535 {
		return PortSwitch{}, fmt.Errorf("rps: port_switch port %q is not a port number", raw.Port)
	}
	ps := PortSwitch{Port: port, RootCert: raw.RootCert, Delay: min(max(raw.Delay, 0), MaxPortSwitchDelay)}
	return ps, nil
}

// ConnectionReset reads the reason of a connection_reset message:
// ResetConnectionClosed (AMT closed the LMS socket with nothing to send) or
// ResetLMSError (reading LMS failed). Anything else is returned as sent.
func ConnectionReset(m *Message) string {
	b, err := m.PayloadBytes()
	if err != nil || len(b) > 64 {
		return "unreadable reason"
	}
	return string(b)
}
