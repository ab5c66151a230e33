package apf

import (
	"encoding/binary"
	"fmt"

	"amtd/amt/guid"
	"amtd/secret"
)

// Message is one decoded APF message. Every type of spec/apf.md §2 has its own
// Go type; GLOBAL_REQUEST has one per request name (TCPIPForward,
// CancelTCPIPForward, UDPSendTo, GlobalRequest for other names).
type Message interface {
	// Type is the message's first byte.
	Type() MsgType
	// AppendBinary appends the wire encoding. It fails only when a field
	// exceeds what peers accept (strings over MaxStringLen, data over
	// MaxDataLen), so amtd never sends what it would itself reject.
	AppendBinary(b []byte) ([]byte, error)
	// String is a one-line summary for logs and `amtd debug`. Passwords are
	// redacted.
	String() string
}

// Marshal returns the wire encoding of m.
func Marshal(m Message) ([]byte, error) { return m.AppendBinary(nil) }

// Disconnect (1) ends the APF session: reason u32, reserved u16 = 0; 7 bytes.
type Disconnect struct {
	Reason DisconnectReason
}

// ServiceRequest (5): AMT asks for auth@ or pfwd@amt.intel.com.
type ServiceRequest struct{ Service string }

// ServiceAccept (6): the server echoes the service name.
type ServiceAccept struct{ Service string }

// UserauthRequest (50): AMT's credentials. Method is "password" (then
// Password is set) or "none"; other SSH methods cannot be delimited in APF
// and are rejected by the decoder.
type UserauthRequest struct {
	User     string
	Service  string
	Method   string
	Password secret.Value
}

// UserauthFailure (51): string methods and a partial-success flag.
//
// MPS and MeshCentral send a 2-byte flag (15 bytes with "password"), GWM and
// the MPS simulator SSH's 1-byte boolean (14 bytes). How AMT parses it is
// unverified, so both are decoded and OneByteFlag records which form was seen;
// the zero value encodes the 15-byte form amtd sends (spec/apf.md §2 notes).
type UserauthFailure struct {
	Methods        string
	PartialSuccess bool
	OneByteFlag    bool
}

// UserauthSuccess (52) has no body.
type UserauthSuccess struct{}

// TCPIPForward is GLOBAL_REQUEST "tcpip-forward": AMT offers a port to be
// reached through the tunnel (spec/apf.md §3). The address is AMT's own host
// name or IP and carries no meaning for routing.
type TCPIPForward struct {
	WantReply bool
	Address   string
	Port      uint32
}

// CancelTCPIPForward is GLOBAL_REQUEST "cancel-tcpip-forward".
type CancelTCPIPForward struct {
	WantReply bool
	Address   string
	Port      uint32
}

// UDPSendTo is GLOBAL_REQUEST "udp-send-to@amt.intel.com". It is parsed
// field by field (MPS and MeshCentral slice the originator with the wrong
// length) and then ignored by the relay (spec/apf.md §3).
type UDPSendTo struct {
	WantReply         bool
	Address           string
	Port              uint32
	OriginatorAddress string
	OriginatorPort    uint32
	Data              []byte
}

// GlobalRequest is a GLOBAL_REQUEST whose name is none of the three above.
// APF has no outer length, so the body of an unknown request cannot be
// delimited: like MPS, the decoder consumes the name and want_reply only
// (spec/apf.md §1, §3). The server answers REQUEST_FAILURE when WantReply.
type GlobalRequest struct {
	Name      string
	WantReply bool
}

// RequestSuccess (81): the reply to tcpip-forward carries the port (5 bytes),
// the reply to cancel-tcpip-forward none (1 byte).
type RequestSuccess struct {
	HasPort bool
	Port    uint32
}

// RequestFailure (82) has no body.
type RequestFailure struct{}

// ChannelOpen (90) opens a channel, normally from the server to an AMT port
// (spec/apf.md §7.1).
type ChannelOpen struct {
	ChannelType       string
	SenderChannel     uint32
	InitialWindow     uint32
	Reserved          uint32 // ChannelOpenReserved on the wire; SSH's max-packet
	ConnectedAddress  string
	ConnectedPort     uint32
	OriginatorAddress string
	OriginatorPort    uint32
}

// ChannelOpenConfirmation (91): AMT's channel id and receive window.
type ChannelOpenConfirmation struct {
	RecipientChannel uint32
	SenderChannel    uint32
	InitialWindow    uint32
	Reserved         uint32
}

// ChannelOpenFailure (92): recipient channel, reason, and two zero u32s.
type ChannelOpenFailure struct {
	RecipientChannel uint32
	Reason           OpenFailureReason
}

// ChannelWindowAdjust (93) grants the peer more send credit.
type ChannelWindowAdjust struct {
	RecipientChannel uint32
	BytesToAdd       uint32
}

// ChannelData (94) carries channel bytes. From Parse, Data aliases the
// caller's buffer; from Reader.ReadMessage it is a private copy.
type ChannelData struct {
	RecipientChannel uint32
	Data             []byte
}

// ChannelClose (97).
type ChannelClose struct{ RecipientChannel uint32 }

// ProtocolVersion (192) is AMT's first message: 93 bytes, with the device
// UUID in SMBIOS order at offset 13 and 64 reserved bytes (spec/apf.md §2).
type ProtocolVersion struct {
	Major, Minor uint32
	Trigger      TriggerReason
	UUID         guid.UUID
}

// KeepaliveRequest (208): AMT sends a cookie, normally every 30 s.
type KeepaliveRequest struct{ Cookie uint32 }

// KeepaliveReply (209) echoes the cookie.
type KeepaliveReply struct{ Cookie uint32 }

// KeepaliveOptionsRequest (210): the server asks for an interval (seconds);
// the meaning of Timeout is unverified (spec/apf.md §4 step 7).
type KeepaliveOptionsRequest struct{ Interval, Timeout uint32 }

// KeepaliveOptionsReply (211): what AMT accepted.
type KeepaliveOptionsReply struct{ Interval, Timeout uint32 }

func (Disconnect) Type() MsgType              { return TypeDisconnect }
func (ServiceRequest) Type() MsgType          { return TypeServiceRequest }
func (ServiceAccept) Type() MsgType           { return TypeServiceAccept }
func (UserauthRequest) Type() MsgType         { return TypeUserauthRequest }
func (UserauthFailure) Type() MsgType         { return TypeUserauthFailure }
func (UserauthSuccess) Type() MsgType         { return TypeUserauthSuccess }
func (TCPIPForward) Type() MsgType            { return TypeGlobalRequest }
func (CancelTCPIPForward) Type() MsgType      { return TypeGlobalRequest }
func (UDPSendTo) Type() MsgType               { return TypeGlobalRequest }
func (GlobalRequest) Type() MsgType           { return TypeGlobalRequest }
func (RequestSuccess) Type() MsgType          { return TypeRequestSuccess }
func (RequestFailure) Type() MsgType          { return TypeRequestFailure }
func (ChannelOpen) Type() MsgType             { return TypeChannelOpen }
func (ChannelOpenConfirmation) Type() MsgType { return TypeChannelOpenConfirmation }
func (ChannelOpenFailure) Type() MsgType      { return TypeChannelOpenFailure }
func (ChannelWindowAdjust) Type() MsgType     { return TypeChannelWindowAdjust }
func (ChannelData) Type() MsgType             { return TypeChannelData }
func (ChannelClose) Type() MsgType            { return TypeChannelClose }
func (ProtocolVersion) Type() MsgType         { return TypeProtocolVersion }
func (KeepaliveRequest) Type() MsgType        { return TypeKeepaliveRequest }
func (KeepaliveReply) Type() MsgType          { return TypeKeepaliveReply }
func (KeepaliveOptionsRequest) Type() MsgType { return TypeKeepaliveOptionsRequest }
func (KeepaliveOptionsReply) Type() MsgType   { return TypeKeepaliveOptionsReply }

// encoder appends fields and remembers the first field that was too long.
type encoder struct {
	b   []byte
	t   MsgType
	err error
}

func newEncoder(b []byte, t MsgType) *encoder { return &encoder{b: append(b, byte(t)), t: t} }

func (e *encoder) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *encoder) byte(v byte)  { e.b = append(e.b, v) }
func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) str(field string, s []byte) {
	if len(s) > MaxStringLen && e.err == nil {
		e.err = fmt.Errorf("apf: encode %s: %s is %d bytes, over the %d-byte limit peers enforce", e.t, field, len(s), MaxStringLen)
	}
	e.u32(uint32(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) done() ([]byte, error) { return e.b, e.err }

func (m Disconnect) AppendBinary(b []byte) ([]byte, error) {
	e := newEncoder(b, m.Type())
	e.u32(uint32(m.Reason))
	e.b = append(e.b, 0, 0) // reserved u16, the only 16-bit field of APF
	return e.done()
}

func (m ServiceRequest) AppendBinary(b []byte) ([]byte, error) {
	e := newEncoder(b, m.Type())
	e.str("service", []byte(m.Service))
	return e.done()
}

func (m ServiceAccept) AppendBinary(b []byte) ([]byte, error) {
	e := newEncoder(b, m.Type())
	e.str("service", []byte(m.Service))
	return e.done()
}

func (m UserauthRequest) AppendBinary(b []byte) ([]byte, error) {
	e := newEncoder(b, m.Type())
	e.str("user", []byte(m.User))
	e.str("service", []byte(m.Service))
	e.str("method", []byte(m.Method))
	if m.Method == MethodPassword {
		e.byte(0) // SSH's "change password" boolean, always FALSE
		e.str("password", m.Password.Reveal())
	}
	return e.done()
}

func (m UserauthFailure) AppendBinary(b []byte) ([]byte, error) {
	e := newEncoder(b, m.Type())
	e.str("methods", []byte(m.Methods))
	e.bool(m.PartialSuccess)
	if !m.OneByteFlag {
		e.byte(0) // second flag byte of the MPS/MeshCentral form
	}
	return e.done()
}

func (m UserauthSuccess) AppendBinary(b []byte) ([]byte, error) {
	return newEncoder(b, m.Type()).done()
}

func appendForward(b []byte, name string, want bool, addr string, port uint32) ([]byte, error) {
	e := newEncoder(b, TypeGlobalRequest)
	e.str("request name", []byte(name))
	e.bool(want)
	e.str("address", []byte(addr))
	e.u32(port)
	return e.done()
}

func (m TCPIPForward) AppendBinary(b []byte) ([]byte, error) {
	return appendForward(b, RequestTCPIPForward, m.WantReply, m.Address, m.Port)
}

func (m CancelTCPIPForward) AppendBinary(b []byte) ([]byte, error) {
	return appendForward(b, RequestCancelTCPIPForward, m.WantReply, m.Address, m.Port)
}

func (m UDPSendTo) AppendBinary(b []byte) ([]byte, error) {
	e := newEncoder(b, m.Type())
	e.str("request name", []byte(RequestUDPSendTo))
	e.bool(m.WantReply)
	e.str("address", []byte(m.Address))
	e.u32(m.Port)
	e.str("originator address", []byte(m.OriginatorAddress))
	e.u32(m.OriginatorPort)
	e.str("data", m.Data)
	return e.done()
}

func (m GlobalRequest) AppendBinary(b []byte) ([]byte, error) {
	e := newEncoder(b, m.Type())
	e.str("request name", []byte(m.Name))
	e.bool(m.WantReply)
	return e.done()
}

func (m RequestSuccess) AppendBinary(b []byte) ([]byte, error) {
	e := newEncoder(b, m.Type())
	if m.HasPort {
		e.u32(m.Port)
	}
	return e.done()
}

func (m RequestFailure) AppendBinary(b []byte) ([]byte, error) {
	return newEncoder(b, m.Type()).done()
}

func (m ChannelOpen) AppendBinary(b []byte) ([]byte, error) {
	e := newEncoder(b, m.Type())
	e.str("channel type", []byte(m.ChannelType))
	e.u32(m.SenderChannel)
	e.u32(m.InitialWindow)
	e.u32(m.Reserved)
	e.str("connected address", []byte(m.ConnectedAddress))
	e.u32(m.ConnectedPort)
	e.str("originator address", []byte(m.OriginatorAddress))
	e.u32(m.OriginatorPort)
	return e.done()
}

func (m ChannelOpenConfirmation) AppendBinary(b []byte) ([]byte, error) {
	e := newEncoder(b, m.Type())
	e.u32(m.RecipientChannel)
	e.u32(m.SenderChannel)
	e.u32(m.InitialWindow)
	e.u32(m.Reserved)
	return e.done()
}

func (m ChannelOpenFailure) AppendBinary(b []byte) ([]byte, error) {
	e := newEncoder(b, m.Type())
	e.u32(m.RecipientChannel)
	e.u32(uint32(m.Reason))
	e.u32(0)
	e.u32(0)
	return e.done()
}

func (m ChannelWindowAdjust) AppendBinary(b []byte) ([]byte, error) {
	e := newEncoder(b, m.Type())
	e.u32(m.RecipientChannel)
	e.u32(m.BytesToAdd)
	return e.done()
}

func (m ChannelData) AppendBinary(b []byte) ([]byte, error) {
	if len(m.Data) > MaxDataLen {
		return b, fmt.Errorf("apf: encode CHANNEL_DATA: %d bytes, over the %d-byte limit; chunk it (spec/apf.md §7.2)", len(m.Data), MaxDataLen)
	}
	e := newEncoder(b, m.Type())
	e.u32(m.RecipientChannel)
	e.u32(uint32(len(m.Data)))
	e.b = append(e.b, m.Data...)
	return e.done()
}

func (m ChannelClose) AppendBinary(b []byte) ([]byte, error) {
	e := newEncoder(b, m.Type())
	e.u32(m.RecipientChannel)
	return e.done()
}

func (m ProtocolVersion) AppendBinary(b []byte) ([]byte, error) {
	e := newEncoder(b, m.Type())
	e.u32(m.Major)
	e.u32(m.Minor)
	e.u32(uint32(m.Trigger))
	raw := m.UUID.SMBIOS()
	e.b = append(e.b, raw[:]...)
	e.b = append(e.b, make([]byte, protocolVersionReserved)...)
	return e.done()
}

func (m KeepaliveRequest) AppendBinary(b []byte) ([]byte, error) {
	e := newEncoder(b, m.Type())
	e.u32(m.Cookie)
	return e.done()
}

func (m KeepaliveReply) AppendBinary(b []byte) ([]byte, error) {
	e := newEncoder(b, m.Type())
	e.u32(m.Cookie)
	return e.done()
}

func (m KeepaliveOptionsRequest) AppendBinary(b []byte) ([]byte, error) {
	e := newEncoder(b, m.Type())
	e.u32(m.Interval)
	e.u32(m.Timeout)
	return e.done()
}

func (m KeepaliveOptionsReply) AppendBinary(b []byte) ([]byte, error) {
	e := newEncoder(b, m.Type())
	e.u32(m.Interval)
	e.u32(m.Timeout)
	return e.done()
}

// One-line summaries, used by logs and `amtd debug decode apf`.

func (m Disconnect) String() string { return fmt.Sprintf("DISCONNECT reason=%s", m.Reason) }
func (m ServiceRequest) String() string {
	return fmt.Sprintf("SERVICE_REQUEST service=%q", m.Service)
}
func (m ServiceAccept) String() string { return fmt.Sprintf("SERVICE_ACCEPT service=%q", m.Service) }
func (m UserauthRequest) String() string {
	s := fmt.Sprintf("USERAUTH_REQUEST user=%q service=%q method=%q", m.User, m.Service, m.Method)
	if m.Method == MethodPassword {
		s += fmt.Sprintf(" password=%s (%d bytes)", m.Password, m.Password.Len())
	}
	return s
}
func (m UserauthFailure) String() string {
	form := "2-byte flag"
	if m.OneByteFlag {
		form = "1-byte flag"
	}
	return fmt.Sprintf("USERAUTH_FAILURE methods=%q partial=%t (%s)", m.Methods, m.PartialSuccess, form)
}
func (UserauthSuccess) String() string { return "USERAUTH_SUCCESS" }
func (m TCPIPForward) String() string {
	return fmt.Sprintf("GLOBAL_REQUEST tcpip-forward want_reply=%t address=%q port=%d", m.WantReply, m.Address, m.Port)
}
func (m CancelTCPIPForward) String() string {
	return fmt.Sprintf("GLOBAL_REQUEST cancel-tcpip-forward want_reply=%t address=%q port=%d", m.WantReply, m.Address, m.Port)
}
func (m UDPSendTo) String() string {
	return fmt.Sprintf("GLOBAL_REQUEST udp-send-to@amt.intel.com want_reply=%t to=%q:%d from=%q:%d data=%d bytes",
		m.WantReply, m.Address, m.Port, m.OriginatorAddress, m.OriginatorPort, len(m.Data))
}
func (m GlobalRequest) String() string {
	return fmt.Sprintf("GLOBAL_REQUEST name=%q want_reply=%t (unknown request)", m.Name, m.WantReply)
}
func (m RequestSuccess) String() string {
	if m.HasPort {
		return fmt.Sprintf("REQUEST_SUCCESS port=%d", m.Port)
	}
	return "REQUEST_SUCCESS"
}
func (RequestFailure) String() string { return "REQUEST_FAILURE" }
func (m ChannelOpen) String() string {
	return fmt.Sprintf("CHANNEL_OPEN type=%q sender=%d window=%d reserved=0x%08x connected=%q:%d originator=%q:%d",
		m.ChannelType, m.SenderChannel, m.InitialWindow, m.Reserved, m.ConnectedAddress, m.ConnectedPort,
		m.OriginatorAddress, m.OriginatorPort)
}
func (m ChannelOpenConfirmation) String() string {
	return fmt.Sprintf("CHANNEL_OPEN_CONFIRMATION recipient=%d sender=%d window=%d reserved=0x%08x",
		m.RecipientChannel, m.SenderChannel, m.InitialWindow, m.Reserved)
}
func (m ChannelOpenFailure) String() string {
	return fmt.Sprintf("CHANNEL_OPEN_FAILURE recipient=%d reason=%s", m.RecipientChannel, m.Reason)
}
func (m ChannelWindowAdjust) String() string {
	return fmt.Sprintf("CHANNEL_WINDOW_ADJUST recipient=%d add=%d", m.RecipientChannel, m.BytesToAdd)
}
func (m ChannelData) String() string {
	return fmt.Sprintf("CHANNEL_DATA recipient=%d len=%d", m.RecipientChannel, len(m.Data))
}
func (m ChannelClose) String() string {
	return fmt.Sprintf("CHANNEL_CLOSE recipient=%d", m.RecipientChannel)
}
func (m ProtocolVersion) String() string {
	return fmt.Sprintf("PROTOCOLVERSION %d.%d trigger=%s uuid=%s", m.Major, m.Minor, m.Trigger, m.UUID)
}
func (m KeepaliveRequest) String() string {
	return fmt.Sprintf("KEEPALIVE_REQUEST cookie=%d", m.Cookie)
}
func (m KeepaliveReply) String() string { return fmt.Sprintf("KEEPALIVE_REPLY cookie=%d", m.Cookie) }
func (m KeepaliveOptionsRequest) String() string {
	return fmt.Sprintf("KEEPALIVE_OPTIONS_REQUEST interval=%ds timeout=%ds", m.Interval, m.Timeout)
}
func (m KeepaliveOptionsReply) String() string {
	return fmt.Sprintf("KEEPALIVE_OPTIONS_REPLY interval=%ds timeout=%ds", m.Interval, m.Timeout)
}
