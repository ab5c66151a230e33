package rps

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"amtd/amt/guid"
	"amtd/secret"
)

// Payload is the JSON object base64-encoded in the first message's payload,
// with rpc-go's exact keys (MessagePayload; spec/rpc-protocol.md §5).
type Payload struct {
	Ver      string `json:"ver"`
	Build    string `json:"build"`
	SKU      string `json:"sku"`
	Features string `json:"features"`
	UUID     UUID   `json:"uuid"`
	// Username and Password are the HECI local system account; when
	// currentMode != 0 rpc-go puts the user-supplied AMT password in
	// Password instead.
	Username          string          `json:"username"`
	Password          Password        `json:"password"`
	CurrentMode       int             `json:"currentMode"`
	Hostname          string          `json:"hostname"`
	FQDN              string          `json:"fqdn"` // the trusted DNS suffix used to pick a domain
	Client            string          `json:"client"`
	CertHashes        []string        `json:"certHashes"`
	IPConfiguration   IPConfiguration `json:"ipConfiguration"`
	HostnameInfo      HostnameInfo    `json:"hostnameInfo"`
	FriendlyName      string          `json:"friendlyName,omitempty"`
	TLSEnforced       bool            `json:"tlsEnforced,omitempty"`
	TLSTunnel         bool            `json:"tlsTunnel,omitempty"`
	LMSInstalled      bool            `json:"lmsInstalled,omitempty"`
	ProgressSupported bool            `json:"progressSupported"`
}

// IPConfiguration is rpc-go's IPConfiguration.
type IPConfiguration struct {
	DHCP         bool   `json:"dhcp"`
	Static       bool   `json:"static"`
	IPSync       bool   `json:"ipsync"`
	IPAddress    string `json:"ipAddress"`
	Netmask      string `json:"netmask"`
	Gateway      string `json:"gateway"`
	PrimaryDNS   string `json:"primaryDns"`
	SecondaryDNS string `json:"secondaryDns"`
}

// HostnameInfo is rpc-go's HostnameInfo.
type HostnameInfo struct {
	DNSSuffixOS string `json:"dnsSuffixOS"`
	Hostname    string `json:"hostname"`
}

// Current modes (spec/rpc-protocol.md §5).
const (
	ModePreProvisioning = 0
	ModeCCM             = 1
	ModeACM             = 2
)

// Password is a secret.Value read from a JSON string. It marshals as
// "[redacted]", so a Payload can be logged; EncodePayload is the one place
// that writes the plain text.
type Password struct{ secret.Value }

// UnmarshalJSON reads a JSON string (or null).
func (p *Password) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		p.Value = secret.Value{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("password is not a JSON string")
	}
	p.Value = secret.FromString(s)
	return nil
}

// UUID is the payload's uuid: a string as sent, or the 16-byte array form
// RPS accepts, converted with the mixed-endian (SMBIOS) order
// (spec/rpc-protocol.md §5). Its length is checked by ValidatePayload, as RPS
// does, so that the error text matches.
type UUID string

// UnmarshalJSON accepts a string or an array of 16 byte values.
func (u *UUID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var arr []int
		if err := json.Unmarshal(b, &arr); err != nil {
			return fmt.Errorf("uuid array: %w", err)
		}
		if len(arr) != 16 {
			return fmt.Errorf("uuid array has %d elements, want 16", len(arr))
		}
		var raw [16]byte
		for i, v := range arr {
			if v < 0 || v > 255 {
				return fmt.Errorf("uuid array element %d is %d, not a byte", i, v)
			}
			raw[i] = byte(v)
		}
		*u = UUID(guid.FromSMBIOS(raw).String())
		return nil
	}
	if string(b) == "null" {
		*u = ""
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("uuid is neither a string nor a 16-byte array")
	}
	*u = UUID(s)
	return nil
}

// Error is a failure whose text is sent to the client as is: RPS's exact
// wording, which operators and scripts match on (spec/rpc-protocol.md §5).
type Error struct{ Text string }

func (e *Error) Error() string { return e.Text }

// The RPS error texts of spec/rpc-protocol.md §5.
func errInvalidPayload() error          { return &Error{"Invalid payload from client"} }
func errUUIDLength() error              { return &Error{"uuid not valid length"} }
func ErrProtocolVersion(v string) error { return &Error{"protocol version NOT supported: " + v} }

// ErrUnsupportedMethod: the first message's method is no command.
func ErrUnsupportedMethod(uuid string) error {
	return &Error{fmt.Sprintf("Device %s Not a supported method received from AMT device", uuid)}
}

// ErrMissingHashes: an ACM profile, and the device reported no root hashes.
func ErrMissingHashes(uuid string) error {
	return &Error{fmt.Sprintf("Device %s activation failed. Missing certificate hashes from the device.", uuid)}
}

// ErrMissingSuffix: an ACM profile, and no DNS suffix to pick a certificate.
func ErrMissingSuffix(uuid string) error {
	return &Error{fmt.Sprintf("Device %s activation failed. Missing DNS Suffix.", uuid)}
}

// ErrAlreadyACM: a CCM profile for a device already in ACM.
func ErrAlreadyACM(uuid string) error {
	return &Error{fmt.Sprintf("Device %s already enabled in admin control mode.", uuid)}
}

// ErrPasswordMismatch: the AMT password given for an activated device does
// not match the stored one.
func ErrPasswordMismatch(uuid string) error {
	return &Error{fmt.Sprintf("AMT password DOES NOT match stored version for Device %s", uuid)}
}

// DecodePayload decodes the first message's payload: base64, then JSON. It
// does not validate; see ValidatePayload.
func DecodePayload(m *Message) (*Payload, error) {
	raw, err := m.PayloadBytes()
	if err != nil {
		return nil, err
	}
	var p Payload
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("rps: Failed to parse client message payload. %w", err)
	}
	return &p, nil
}

// ValidatePayload applies RPS's checks on every first message: client, ver,
// build and uuid present, uuid 36 characters (spec/rpc-protocol.md §5).
func ValidatePayload(p *Payload) error {
	if p.Client == "" || p.Ver == "" || p.Build == "" || p.UUID == "" {
		return errInvalidPayload()
	}
	if len(p.UUID) != 36 {
		return errUUIDLength()
	}
	return nil
}

// ValidateACM adds the checks for an ACM profile: root hashes, and a DNS
// suffix unless the device is already in ACM (RPS verifyActivationMsgForACM).
func ValidateACM(p *Payload) error {
	if len(p.CertHashes) == 0 {
		return ErrMissingHashes(string(p.UUID))
	}
	if p.FQDN == "" && p.CurrentMode != ModeACM {
		return ErrMissingSuffix(string(p.UUID))
	}
	return nil
}

// EncodePayload returns the base64 payload text with the password in plain
// text, as rpc-go sends it (for the fake RPC and the simulator).
func EncodePayload(p *Payload) (string, error) {
	type plain Payload
	b, err := json.Marshal(struct {
		*plain
		Password string `json:"password"`
	}{(*plain)(p), p.Password.RevealString()})
	if err != nil {
		return "", fmt.Errorf("rps: encode payload: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
