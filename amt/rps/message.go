// Package rps speaks the RPS⇄RPC WebSocket protocol 4.0.0, the protocol of
// Open AMT's Remote Provisioning Server that unmodified rpc-go agents use to
// activate, deactivate and maintain AMT devices (spec/rpc-protocol.md).
//
// It holds the wire types and pure functions only: the JSON envelope, the
// command strings, the initial payload and its validation with RPS's exact
// error texts, the version check, and builders for the server's messages.
// The activation flow and authentication of agents live in the service.
package rps

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// ProtocolVersion is the version amtd speaks.
const ProtocolVersion = "4.0.0"

// MaxMessageSize is the largest text frame: RPS closes the socket on a larger
// message or on a binary frame (spec/rpc-protocol.md §2).
const MaxMessageSize = 102400

// Methods (spec/rpc-protocol.md §3).
const (
	// Client → server. The first message's method is a command string
	// (ParseCommand) naming one of the first three.
	MethodActivate          = "activate"
	MethodDeactivate        = "deactivate"
	MethodMaintenance       = "maintenance"
	MethodResponse          = "response"
	MethodHeartbeatResponse = "heartbeat_response"
	MethodTLSData           = "tls_data" // both directions
	MethodConnectionReset   = "connection_reset"
	MethodPortSwitchAck     = "port_switch_ack"

	// Server → client. rpc-go writes the decoded payload of any method it
	// does not know to AMT, so send only these, and MethodProgress only to
	// a client that set progressSupported (spec/rpc-protocol.md §3).
	MethodWSMan            = "wsman"
	MethodSuccess          = "success"
	MethodError            = "error"
	MethodHeartbeatRequest = "heartbeat_request"
	MethodPortSwitch       = "port_switch"
	MethodProgress         = "progress"
)

// Statuses (spec/rpc-protocol.md §3).
const (
	StatusOK        = "ok"
	StatusSuccess   = "success"
	StatusFailed    = "failed"
	StatusHeartbeat = "heartbeat"
)

// Placeholders both sides put in apiKey; never checked (spec/rpc-protocol.md §3).
const (
	ClientAPIKey = "key"
	ServerAPIKey = "xxxxx"
)

// connection_reset payloads (spec/rpc-protocol.md §3, §6).
const (
	ResetConnectionClosed = "connection_closed"
	ResetLMSError         = "lms_error"
)

// Message is the envelope of every frame, with rpc-go's exact field names
// (internal/rps/message.go). Payload is kept as raw JSON because its type
// depends on the method: a base64 string, a plain JSON string (port_switch),
// "" (heartbeat_request) or null (success, error).
type Message struct {
	Method          string          `json:"method"`
	APIKey          string          `json:"apiKey"`
	AppVersion      string          `json:"appVersion"`
	ProtocolVersion string          `json:"protocolVersion"`
	Status          string          `json:"status"`
	Message         string          `json:"message"`
	FQDN            string          `json:"fqdn,omitempty"`
	Payload         json.RawMessage `json:"payload"`
	TenantID        string          `json:"tenantId"`
}

// ErrTooLarge: a frame over MaxMessageSize.
var ErrTooLarge = errors.New("rps: message over 102400 bytes")

// ParseMessage decodes one text frame. It refuses frames over MaxMessageSize
// before decoding, and anything but exactly one JSON object.
func ParseMessage(b []byte) (*Message, error) {
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var m Message
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("rps: message is not a JSON envelope: %w", err)
	}
	if dec.More() {
		return nil, errors.New("rps: message holds more than one JSON value")
	}
	return &m, nil
}

// Marshal encodes m as a text frame, refusing one the peer would drop.
func Marshal(m *Message) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("rps: encode %s message: %w", m.Method, err)
	}
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("rps: encode %s message: %w: %d bytes", m.Method, ErrTooLarge, len(b))
	}
	return b, nil
}

// PayloadString returns the payload as a string; null and an absent payload
// give "".
func (m *Message) PayloadString() (string, error) {
	if len(m.Payload) == 0 || string(m.Payload) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(m.Payload, &s); err != nil {
		return "", fmt.Errorf("rps: %s payload is not a JSON string: %w", m.Method, err)
	}
	return s, nil
}

// PayloadBytes base64-decodes the payload: the raw HTTP response of
// `response`, TLS records of `tls_data`, the text of connection_reset and
// port_switch_ack, or the JSON of the first message.
func (m *Message) PayloadBytes() ([]byte, error) {
	s, err := m.PayloadString()
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("rps: %s payload is not base64: %w", m.Method, err)
	}
	return b, nil
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

// Server builds the messages amtd sends. AppVersion is amtd's version.
type Server struct {
	AppVersion string
}

func (s Server) envelope(method, status, message string, payload json.RawMessage) *Message {
	return &Message{Method: method, APIKey: ServerAPIKey, AppVersion: s.AppVersion, ProtocolVersion: ProtocolVersion,
		Status: status, Message: message, Payload: payload}
}

// WSMan carries one complete raw HTTP/1.1 request for the client to write to
// AMT (spec/rpc-protocol.md §6).
func (s Server) WSMan(httpRequest []byte) *Message {
	return s.envelope(MethodWSMan, StatusOK, "ok", jsonString(base64.StdEncoding.EncodeToString(httpRequest)))
}

// TLSData carries raw TLS records of the tunnel (spec/rpc-protocol.md §7).
func (s Server) TLSData(records []byte) *Message {
	return s.envelope(MethodTLSData, StatusOK, "ok", jsonString(base64.StdEncoding.EncodeToString(records)))
}

// Result is the JSON status the success and end-of-flow error messages carry
// in their message field (spec/rpc-protocol.md §7).
type Result struct {
	Status           string          `json:"Status"`
	Network          string          `json:"Network"`
	CIRAConnection   string          `json:"CIRAConnection"`
	TLSConfiguration string          `json:"TLSConfiguration"`
	Components       json.RawMessage `json:"Components,omitempty"`
}

// Success ends the session successfully; the payload is null.
func (s Server) Success(r Result) (*Message, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("rps: encode result: %w", err)
	}
	return s.envelope(MethodSuccess, StatusSuccess, string(b), json.RawMessage("null")), nil
}

// Error ends the session as failed. During parsing or validation the message
// is plain text (an *Error's text); at the end of a flow use FlowError.
func (s Server) Error(text string) *Message {
	return s.envelope(MethodError, StatusFailed, text, json.RawMessage("null"))
}

// FlowError ends a flow as failed with the Result JSON, Status holding the
// error text (e.g. "Failed to activate in admin control mode.").
func (s Server) FlowError(r Result) (*Message, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("rps: encode result: %w", err)
	}
	return s.envelope(MethodError, StatusFailed, string(b), json.RawMessage("null")), nil
}

// Heartbeat asks the client for a heartbeat_response; the payload is "".
func (s Server) Heartbeat() *Message {
	return s.envelope(MethodHeartbeatRequest, StatusHeartbeat, "", jsonString(""))
}

// PortSwitch tells rpc-go to reconnect LMS to port after delay seconds. Its
// payload is a plain JSON string holding JSON, not base64
// (spec/rpc-protocol.md §3, §7).
func (s Server) PortSwitch(port int, rootCert string, delaySeconds int) *Message {
	inner, _ := json.Marshal(struct {
		Port     string `json:"port"`
		RootCert string `json:"rootCert"`
		Delay    int    `json:"delay"`
	}{fmt.Sprint(port), rootCert, delaySeconds})
	return s.envelope(MethodPortSwitch, StatusOK, "ok", jsonString(string(inner)))
}

// Progress reports a step label; send it only to clients whose payload set
// progressSupported.
func (s Server) Progress(label string) *Message {
	return s.envelope(MethodProgress, StatusOK, label, json.RawMessage("null"))
}

// Client builds what rpc-go sends, for the fake RPC of the tests and the
// simulator (spec/rpc-protocol.md §11).
type Client struct {
	AppVersion string
	TenantID   string
}

// Message builds a client message whose payload is base64 of raw.
func (c Client) Message(method string, raw []byte) *Message {
	return &Message{Method: method, APIKey: ClientAPIKey, AppVersion: c.AppVersion, ProtocolVersion: ProtocolVersion,
		Status: StatusOK, Message: "ok", Payload: jsonString(base64.StdEncoding.EncodeToString(raw)), TenantID: c.TenantID}
}
