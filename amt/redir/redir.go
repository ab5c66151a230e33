// Package redir decodes and encodes the session-control messages of AMT's
// redirection protocol (TCP 16994/16995, or an APF channel to those ports):
// session start and end, authentication with its digest fields, and the SOL
// and KVM start messages that follow (spec/redirection.md §2–§4).
//
// After authentication both directions are raw (RFB for KVM, AMT's SOL
// framing, IDER); the relay is then a byte pump and stops parsing
// (spec/redirection.md §4, §5). Parse is incremental: it returns ErrShort
// until buf holds a whole message, so the relay keeps a per-direction
// accumulator exactly as MPS and Console do. All multi-byte integers are
// little-endian (spec/redirection.md §2).
package redir

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Command is a message's first byte.
type Command uint8

// Commands (spec/redirection.md §2, §4).
const (
	CmdStartRedirectionSession      Command = 0x10
	CmdStartRedirectionSessionReply Command = 0x11
	CmdEndRedirectionSession        Command = 0x12
	CmdAuthenticateSession          Command = 0x13
	CmdAuthenticateSessionReply     Command = 0x14
	CmdSOLSettings                  Command = 0x20
	CmdSOLSettingsReply             Command = 0x21
	CmdSOLDataFromAMT               Command = 0x2A
	CmdKVMStart                     Command = 0x40
	CmdKVMStartReply                Command = 0x41
)

func (c Command) String() string {
	switch c {
	case CmdStartRedirectionSession:
		return "StartRedirectionSession"
	case CmdStartRedirectionSessionReply:
		return "StartRedirectionSessionReply"
	case CmdEndRedirectionSession:
		return "EndRedirectionSession"
	case CmdAuthenticateSession:
		return "AuthenticateSession"
	case CmdAuthenticateSessionReply:
		return "AuthenticateSessionReply"
	case CmdSOLSettings:
		return "SOLSettings"
	case CmdSOLSettingsReply:
		return "SOLSettingsReply"
	case CmdSOLDataFromAMT:
		return "SOLDataFromAMT"
	case CmdKVMStart:
		return "KVMStart"
	case CmdKVMStartReply:
		return "KVMStartReply"
	}
	return fmt.Sprintf("command 0x%02x", uint8(c))
}

// SessionType is the 4-byte ASCII tag of StartRedirectionSession.
type SessionType [4]byte

// Session types (spec/redirection.md §2).
var (
	SessionSOL  = SessionType{'S', 'O', 'L', ' '}
	SessionKVM  = SessionType{'K', 'V', 'M', 'R'}
	SessionIDER = SessionType{'I', 'D', 'E', 'R'}
)

func (s SessionType) String() string { return fmt.Sprintf("%q", string(s[:])) }

// StartStatus is the status byte of StartRedirectionSessionReply.
type StartStatus uint8

// Start statuses (spec/redirection.md §2).
const (
	StartSuccess     StartStatus = 0
	StartTypeUnknown StartStatus = 1
	StartBusy        StartStatus = 2
	StartUnsupported StartStatus = 3
	StartError       StartStatus = 0xFF
)

func (s StartStatus) String() string {
	switch s {
	case StartSuccess:
		return "success"
	case StartTypeUnknown:
		return "type unknown"
	case StartBusy:
		return "busy"
	case StartUnsupported:
		return "unsupported"
	case StartError:
		return "error"
	}
	return fmt.Sprintf("status %d", uint8(s))
}

// AuthType is the authentication type byte (spec/redirection.md §2).
type AuthType uint8

// Authentication types.
const (
	AuthQuery     AuthType = 0
	AuthUserPass  AuthType = 1
	AuthKerberos  AuthType = 2
	AuthBadDigest AuthType = 3 // digest without cnonce/qop
	AuthDigest    AuthType = 4
)

func (t AuthType) String() string {
	switch t {
	case AuthQuery:
		return "query"
	case AuthUserPass:
		return "username/password"
	case AuthKerberos:
		return "kerberos"
	case AuthBadDigest:
		return "digest without qop"
	case AuthDigest:
		return "digest"
	}
	return fmt.Sprintf("auth type %d", uint8(t))
}

// AuthStatus is the status byte of AuthenticateSessionReply.
type AuthStatus uint8

// Authentication statuses (spec/redirection.md §2).
const (
	AuthSuccess      AuthStatus = 0
	AuthFailure      AuthStatus = 1
	AuthNotSupported AuthStatus = 2
)

func (s AuthStatus) String() string {
	switch s {
	case AuthSuccess:
		return "success"
	case AuthFailure:
		return "failure"
	case AuthNotSupported:
		return "not supported"
	}
	return fmt.Sprintf("status %d", uint8(s))
}

// MaxAuthData bounds the data of AuthenticateSession and its reply: eight
// fields of at most 255 bytes with their length bytes. Anything longer is
// refused before it is buffered.
const MaxAuthData = 8 * 256

// Message is one redirection message.
type Message interface {
	Command() Command
	// FromAMT reports whether AMT sends this message (else the console).
	FromAMT() bool
	// AppendBinary appends the wire encoding.
	AppendBinary(b []byte) ([]byte, error)
	String() string
}

// Marshal returns the wire encoding of m.
func Marshal(m Message) ([]byte, error) { return m.AppendBinary(nil) }

// StartSession (0x10, 8 bytes) opens a SOL, KVM or IDER session. Reserved is
// bytes 1–3: MeshCentral sends byte 1 = 0x01 for KVM, MPS forwards whatever
// the browser sent, so they are kept as seen.
type StartSession struct {
	Reserved [3]byte
	Type     SessionType
}

// StartSessionReply (0x11). On success it is 13 + OEM-length bytes; bytes
// 2–11 are interpreted by no relay (probably version and reserved;
// unverified) and kept in Header. A failure's length is not specified: the
// decoder consumes the 4 bytes it needs for the status, and the session
// should end (spec/redirection.md §2).
type StartSessionReply struct {
	Status StartStatus
	Header [10]byte // bytes 2–11, success only
	OEM    []byte   // success only
}

// EndSession (0x12, 4 bytes).
type EndSession struct {
	Reserved [3]byte
}

// AuthenticateSession (0x13): auth type at byte 4, u32 LE data length at 5,
// then the data; 9 + L bytes. A query has no data.
type AuthenticateSession struct {
	Type AuthType
	Data []byte
}

// AuthenticateSessionReply (0x14): status at byte 1, type at byte 4, then as
// AuthenticateSession.
type AuthenticateSessionReply struct {
	Status AuthStatus
	Type   AuthType
	Data   []byte
}

// SOLSettings (0x20, 24 bytes) is the first SOL message after
// authentication. The spec names the fields ("sequence number, MaxTxBuffer,
// timeouts and heartbeat, all LE"); their order and the trailing u32 follow
// MeshCentral's amt-redir (spec/redirection.md §4).
type SOLSettings struct {
	Sequence          uint32
	MaxTxBuffer       uint16
	TxTimeout         uint16
	TxOverflowTimeout uint16
	RxTimeout         uint16
	RxFlushTimeout    uint16
	Heartbeat         uint16
}

// SOLSettingsReply (0x21) is 23 bytes from AMT; its fields are not
// interpreted by any relay and are kept raw.
type SOLSettingsReply struct {
	Raw [22]byte // bytes 1–22
}

// SOLDataFromAMT (0x2A) carries serial output: LE16 length at offset 8, data
// from offset 10. Bytes 1–7 are kept raw.
type SOLDataFromAMT struct {
	Header [7]byte
	Data   []byte
}

// KVMStart (0x40 + 7 zero bytes) asks AMT to start RFB.
type KVMStart struct{}

// KVMStartReply (0x41, 8 bytes); raw RFB follows.
type KVMStartReply struct {
	Raw [7]byte
}

func (StartSession) Command() Command             { return CmdStartRedirectionSession }
func (StartSessionReply) Command() Command        { return CmdStartRedirectionSessionReply }
func (EndSession) Command() Command               { return CmdEndRedirectionSession }
func (AuthenticateSession) Command() Command      { return CmdAuthenticateSession }
func (AuthenticateSessionReply) Command() Command { return CmdAuthenticateSessionReply }
func (SOLSettings) Command() Command              { return CmdSOLSettings }
func (SOLSettingsReply) Command() Command         { return CmdSOLSettingsReply }
func (SOLDataFromAMT) Command() Command           { return CmdSOLDataFromAMT }
func (KVMStart) Command() Command                 { return CmdKVMStart }
func (KVMStartReply) Command() Command            { return CmdKVMStartReply }

func (StartSession) FromAMT() bool             { return false }
func (StartSessionReply) FromAMT() bool        { return true }
func (EndSession) FromAMT() bool               { return false }
func (AuthenticateSession) FromAMT() bool      { return false }
func (AuthenticateSessionReply) FromAMT() bool { return true }
func (SOLSettings) FromAMT() bool              { return false }
func (SOLSettingsReply) FromAMT() bool         { return true }
func (SOLDataFromAMT) FromAMT() bool           { return true }
func (KVMStart) FromAMT() bool                 { return false }
func (KVMStartReply) FromAMT() bool            { return true }

func (m StartSession) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, byte(CmdStartRedirectionSession))
	b = append(b, m.Reserved[:]...)
	return append(b, m.Type[:]...), nil
}

func (m StartSessionReply) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, byte(CmdStartRedirectionSessionReply), byte(m.Status))
	if m.Status != StartSuccess {
		return append(b, 0, 0), nil
	}
	if len(m.OEM) > 255 {
		return nil, fmt.Errorf("redir: encode StartRedirectionSessionReply: %d bytes of OEM data, the length is one byte", len(m.OEM))
	}
	b = append(b, m.Header[:]...)
	b = append(b, byte(len(m.OEM)))
	return append(b, m.OEM...), nil
}

func (m EndSession) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, byte(CmdEndRedirectionSession))
	return append(b, m.Reserved[:]...), nil
}

func appendAuth(b []byte, cmd Command, status byte, t AuthType, data []byte) ([]byte, error) {
	if len(data) > MaxAuthData {
		return nil, fmt.Errorf("redir: encode %s: %d bytes of data, limit %d", cmd, len(data), MaxAuthData)
	}
	b = append(b, byte(cmd), status, 0, 0, byte(t))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...), nil
}

func (m AuthenticateSession) AppendBinary(b []byte) ([]byte, error) {
	return appendAuth(b, CmdAuthenticateSession, 0, m.Type, m.Data)
}

func (m AuthenticateSessionReply) AppendBinary(b []byte) ([]byte, error) {
	return appendAuth(b, CmdAuthenticateSessionReply, byte(m.Status), m.Type, m.Data)
}

func (m SOLSettings) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, byte(CmdSOLSettings), 0, 0, 0)
	b = binary.LittleEndian.AppendUint32(b, m.Sequence)
	for _, v := range []uint16{m.MaxTxBuffer, m.TxTimeout, m.TxOverflowTimeout, m.RxTimeout, m.RxFlushTimeout, m.Heartbeat} {
		b = binary.LittleEndian.AppendUint16(b, v)
	}
	return binary.LittleEndian.AppendUint32(b, 0), nil
}

func (m SOLSettingsReply) AppendBinary(b []byte) ([]byte, error) {
	return append(append(b, byte(CmdSOLSettingsReply)), m.Raw[:]...), nil
}

func (m SOLDataFromAMT) AppendBinary(b []byte) ([]byte, error) {
	if len(m.Data) > 0xFFFF {
		return nil, fmt.Errorf("redir: encode SOLDataFromAMT: %d bytes, the length is 16 bits", len(m.Data))
	}
	b = append(append(b, byte(CmdSOLDataFromAMT)), m.Header[:]...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(m.Data)))
	return append(b, m.Data...), nil
}

func (KVMStart) AppendBinary(b []byte) ([]byte, error) {
	return append(b, byte(CmdKVMStart), 0, 0, 0, 0, 0, 0, 0), nil
}

func (m KVMStartReply) AppendBinary(b []byte) ([]byte, error) {
	return append(append(b, byte(CmdKVMStartReply)), m.Raw[:]...), nil
}

func (m StartSession) String() string { return fmt.Sprintf("StartRedirectionSession type=%s", m.Type) }
func (m StartSessionReply) String() string {
	if m.Status == StartSuccess {
		return fmt.Sprintf("StartRedirectionSessionReply status=success oem=%d bytes", len(m.OEM))
	}
	return fmt.Sprintf("StartRedirectionSessionReply status=%s", m.Status)
}
func (EndSession) String() string { return "EndRedirectionSession" }
func (m AuthenticateSession) String() string {
	// The data can hold a digest response; print only its size.
	return fmt.Sprintf("AuthenticateSession type=%s data=%d bytes", m.Type, len(m.Data))
}
func (m AuthenticateSessionReply) String() string {
	return fmt.Sprintf("AuthenticateSessionReply status=%s type=%s data=%d bytes", m.Status, m.Type, len(m.Data))
}
func (m SOLSettings) String() string {
	return fmt.Sprintf("SOLSettings seq=%d maxTxBuffer=%d heartbeat=%d", m.Sequence, m.MaxTxBuffer, m.Heartbeat)
}
func (SOLSettingsReply) String() string { return "SOLSettingsReply" }
func (m SOLDataFromAMT) String() string { return fmt.Sprintf("SOLDataFromAMT len=%d", len(m.Data)) }
func (KVMStart) String() string         { return "KVMStart" }
func (KVMStartReply) String() string    { return "KVMStartReply" }

// Decoding errors. ErrShort means wait for more bytes; the others mean the
// peer is not speaking this protocol and the relay closes (spec/redirection.md §5).
var (
	ErrShort          = errors.New("redir: message incomplete, need more bytes")
	ErrUnknownCommand = errors.New("unknown command")
	ErrTooLong        = errors.New("length over limit")
)

// ParseError reports a message that cannot be decoded, at Offset bytes into it.
type ParseError struct {
	Command Command
	Offset  int
	Err     error
	Detail  string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("redir: %s at byte %d: %v: %s", e.Command, e.Offset, e.Err, e.Detail)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Parse decodes the first message in buf and returns it with the number of
// bytes it used, or ErrShort, or a *ParseError. Data fields alias buf.
func Parse(buf []byte) (Message, int, error) {
	if len(buf) == 0 {
		return nil, 0, ErrShort
	}
	cmd := Command(buf[0])
	need := func(n int) error {
		if len(buf) < n {
			return ErrShort
		}
		return nil
	}
	switch cmd {
	case CmdStartRedirectionSession:
		if err := need(8); err != nil {
			return nil, 0, err
		}
		return StartSession{Reserved: [3]byte(buf[1:4]), Type: SessionType(buf[4:8])}, 8, nil

	case CmdStartRedirectionSessionReply:
		// Wait for 4 bytes before reading the status (spec/redirection.md §2).
		if err := need(4); err != nil {
			return nil, 0, err
		}
		st := StartStatus(buf[1])
		if st != StartSuccess {
			return StartSessionReply{Status: st}, 4, nil
		}
		if err := need(13); err != nil {
			return nil, 0, err
		}
		n := 13 + int(buf[12])
		if err := need(n); err != nil {
			return nil, 0, err
		}
		return StartSessionReply{Status: st, Header: [10]byte(buf[2:12]), OEM: buf[13:n]}, n, nil

	case CmdEndRedirectionSession:
		if err := need(4); err != nil {
			return nil, 0, err
		}
		return EndSession{Reserved: [3]byte(buf[1:4])}, 4, nil

	case CmdAuthenticateSession, CmdAuthenticateSessionReply:
		if err := need(9); err != nil {
			return nil, 0, err
		}
		l := binary.LittleEndian.Uint32(buf[5:9])
		if l > MaxAuthData {
			return nil, 0, &ParseError{Command: cmd, Offset: 5, Err: ErrTooLong, Detail: fmt.Sprintf("data length %d, limit %d", l, MaxAuthData)}
		}
		n := 9 + int(l)
		if err := need(n); err != nil {
			return nil, 0, err
		}
		if cmd == CmdAuthenticateSession {
			return AuthenticateSession{Type: AuthType(buf[4]), Data: buf[9:n]}, n, nil
		}
		return AuthenticateSessionReply{Status: AuthStatus(buf[1]), Type: AuthType(buf[4]), Data: buf[9:n]}, n, nil

	case CmdSOLSettings:
		if err := need(24); err != nil {
			return nil, 0, err
		}
		le := binary.LittleEndian
		return SOLSettings{
			Sequence: le.Uint32(buf[4:]), MaxTxBuffer: le.Uint16(buf[8:]), TxTimeout: le.Uint16(buf[10:]),
			TxOverflowTimeout: le.Uint16(buf[12:]), RxTimeout: le.Uint16(buf[14:]), RxFlushTimeout: le.Uint16(buf[16:]),
			Heartbeat: le.Uint16(buf[18:]),
		}, 24, nil

	case CmdSOLSettingsReply:
		if err := need(23); err != nil {
			return nil, 0, err
		}
		return SOLSettingsReply{Raw: [22]byte(buf[1:23])}, 23, nil

	case CmdSOLDataFromAMT:
		if err := need(10); err != nil {
			return nil, 0, err
		}
		n := 10 + int(binary.LittleEndian.Uint16(buf[8:10]))
		if err := need(n); err != nil {
			return nil, 0, err
		}
		return SOLDataFromAMT{Header: [7]byte(buf[1:8]), Data: buf[10:n]}, n, nil

	case CmdKVMStart:
		if err := need(8); err != nil {
			return nil, 0, err
		}
		return KVMStart{}, 8, nil

	case CmdKVMStartReply:
		if err := need(8); err != nil {
			return nil, 0, err
		}
		return KVMStartReply{Raw: [7]byte(buf[1:8])}, 8, nil
	}
	return nil, 0, &ParseError{Command: cmd, Offset: 0, Err: ErrUnknownCommand,
		Detail: fmt.Sprintf("first byte 0x%02x is no redirection command before authentication completed", byte(cmd))}
}
