// Package apf encodes and decodes APF (AMT Port Forwarding), the protocol AMT
// speaks inside the CIRA TLS connection (spec/apf.md).
//
// APF has no outer length prefix: byte 0 is the type and the length follows
// from the type and the embedded length fields (spec/apf.md §1). Parse decodes
// one message from a caller's buffer and says how many bytes it used, or
// ErrShort when more bytes are needed; Reader does the buffering over an
// io.Reader. Every embedded length is checked against Limits before the
// decoder waits for, or allocates, the bytes it announces.
//
// The package is pure: no sockets, no logging, no clock. What to answer, and
// when to drop a connection, is the CIRA service's business.
package apf

import (
	"encoding/binary"
	"errors"
	"fmt"

	"amtd/amt/guid"
	"amtd/secret"
)

// Limits from spec/apf.md §1.
const (
	// MaxStringLen bounds every embedded string (MPS rejects > 2048).
	MaxStringLen = 2048
	// MaxDataLen bounds a CHANNEL_DATA payload (MPS MAX_CIRA_WINDOW, 1 MiB).
	MaxDataLen = 1 << 20
)

const (
	protocolVersionLen      = 93
	protocolVersionReserved = 64
)

// Limits bounds what the decoder accepts. The zero value means the spec's
// limits; smaller values (a configured receive window) tighten them, larger
// values are clamped to the spec's.
type Limits struct {
	MaxString int // embedded string bytes, ≤ MaxStringLen
	MaxData   int // CHANNEL_DATA payload bytes, ≤ MaxDataLen
}

func (l Limits) norm() Limits {
	if l.MaxString <= 0 || l.MaxString > MaxStringLen {
		l.MaxString = MaxStringLen
	}
	if l.MaxData <= 0 || l.MaxData > MaxDataLen {
		l.MaxData = MaxDataLen
	}
	return l
}

// MaxMessageLen is the longest message these limits admit: the buffer a
// Reader may need at most.
func (l Limits) MaxMessageLen() int {
	l = l.norm()
	// udp-send-to: type, name, want_reply, addr, port, originator, port, data
	// = 26 bytes of fixed fields plus four strings.
	return max(9+l.MaxData, 26+4*l.MaxString, protocolVersionLen)
}

// Decoding errors. Callers branch on ErrShort (wait for more bytes); every
// other error means the stream cannot be trusted any more and the connection
// should be dropped (spec/apf.md §1).
var (
	ErrShort       = errors.New("apf: message incomplete, need more bytes")
	ErrUnknownType = errors.New("unknown message type")
	ErrTooLong     = errors.New("length over limit")
	ErrJSONControl = errors.New("JSON_CONTROL (250) is a MeshCentral agent extension that real AMT never sends")
	ErrMalformed   = errors.New("malformed field")
)

// ParseError reports a message that cannot be decoded. Offset is the byte,
// counted from the message's type byte, where the bad field starts.
type ParseError struct {
	Type   MsgType
	Offset int
	Field  string
	Err    error  // ErrUnknownType, ErrTooLong, ErrJSONControl or ErrMalformed
	Detail string // what was seen
}

func (e *ParseError) Error() string {
	s := fmt.Sprintf("apf: %s", e.Type)
	if e.Field != "" {
		s += " " + e.Field
	}
	s += fmt.Sprintf(" at byte %d of the message: %v", e.Offset, e.Err)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *ParseError) Unwrap() error { return e.Err }

// Parse decodes the first message in buf with the default Limits. It returns
// the message and the number of bytes it used, ErrShort if buf holds only
// part of a message, or a *ParseError. CHANNEL_DATA payloads and UDPSendTo
// data alias buf; every other field is copied.
//
// Two replies come in two lengths with no length field: REQUEST_SUCCESS (1 or
// 5 bytes) and USERAUTH_FAILURE (14 or 15 bytes). Parse tells them apart by
// the next byte (no message type is 0, a port's high byte and the padding
// byte are); when buf ends exactly at the shorter form it returns ErrShort,
// and Reader settles it at end of stream.
func Parse(buf []byte) (Message, int, error) { return parse(buf, Limits{}.norm(), false) }

// Parse is the package Parse with these limits.
func (l Limits) Parse(buf []byte) (Message, int, error) { return parse(buf, l.norm(), false) }

// cursor reads fields from one message. A short read returns ErrShort; the
// caller retries with more bytes.
type cursor struct {
	b   []byte
	off int
	t   MsgType
	lim Limits
}

func (c *cursor) fail(field string, err error, format string, args ...any) error {
	return &ParseError{Type: c.t, Offset: c.off, Field: field, Err: err, Detail: fmt.Sprintf(format, args...)}
}

func (c *cursor) need(n int) error {
	if len(c.b)-c.off < n {
		return ErrShort
	}
	return nil
}

func (c *cursor) u32() (uint32, error) {
	if err := c.need(4); err != nil {
		return 0, err
	}
	v := binary.BigEndian.Uint32(c.b[c.off:])
	c.off += 4
	return v, nil
}

func (c *cursor) byte() (byte, error) {
	if err := c.need(1); err != nil {
		return 0, err
	}
	v := c.b[c.off]
	c.off++
	return v, nil
}

// bytes reads a length-prefixed string, bounding the length before waiting
// for the bytes. The result aliases the buffer.
func (c *cursor) bytes(field string, limit int) ([]byte, error) {
	start := c.off
	n, err := c.u32()
	if err != nil {
		return nil, err
	}
	if uint64(n) > uint64(limit) {
		c.off = start
		return nil, c.fail(field, ErrTooLong, "%d bytes, limit %d", n, limit)
	}
	if err := c.need(int(n)); err != nil {
		return nil, err
	}
	v := c.b[c.off : c.off+int(n)]
	c.off += int(n)
	return v, nil
}

func (c *cursor) str(field string) (string, error) {
	b, err := c.bytes(field, c.lim.MaxString)
	return string(b), err
}

func parse(buf []byte, lim Limits, final bool) (Message, int, error) {
	if len(buf) == 0 {
		return nil, 0, ErrShort
	}
	c := &cursor{b: buf, off: 1, t: MsgType(buf[0]), lim: lim}
	m, err := c.message(final)
	if err != nil {
		return nil, 0, err
	}
	return m, c.off, nil
}

func (c *cursor) message(final bool) (Message, error) {
	switch c.t {
	case TypeDisconnect:
		r, err := c.u32()
		if err != nil {
			return nil, err
		}
		// Reserved u16: read but not checked; a peer's non-zero reserved
		// field must not be fatal to a message that ends the session anyway.
		if err := c.need(2); err != nil {
			return nil, err
		}
		c.off += 2
		return Disconnect{Reason: DisconnectReason(r)}, nil

	case TypeServiceRequest, TypeServiceAccept:
		s, err := c.str("service")
		if err != nil {
			return nil, err
		}
		if c.t == TypeServiceRequest {
			return ServiceRequest{Service: s}, nil
		}
		return ServiceAccept{Service: s}, nil

	case TypeUserauthRequest:
		return c.userauthRequest()

	case TypeUserauthFailure:
		methods, err := c.str("methods")
		if err != nil {
			return nil, err
		}
		flag, err := c.byte()
		if err != nil {
			return nil, err
		}
		m := UserauthFailure{Methods: methods, PartialSuccess: flag != 0}
		// MPS/MeshCentral add a zero byte (15 bytes in all), GWM does not
		// (14). No message type is 0, so a following 0 is the padding and
		// anything else is the next message (spec/apf.md §2 notes).
		switch {
		case len(c.b) > c.off && c.b[c.off] == 0:
			c.off++
		case len(c.b) > c.off || final:
			m.OneByteFlag = true
		default:
			return nil, ErrShort
		}
		return m, nil

	case TypeUserauthSuccess:
		return UserauthSuccess{}, nil

	case TypeGlobalRequest:
		return c.globalRequest()

	case TypeRequestSuccess:
		// The tcpip-forward reply carries a port (< 65536, so its first byte
		// is 0); the cancel reply carries nothing, and the next message's
		// type byte is never 0 (spec/apf.md §3).
		switch {
		case len(c.b) > c.off && c.b[c.off] == 0:
			port, err := c.u32()
			if err != nil {
				return nil, err
			}
			return RequestSuccess{HasPort: true, Port: port}, nil
		case len(c.b) > c.off || final:
			return RequestSuccess{}, nil
		default:
			return nil, ErrShort
		}

	case TypeRequestFailure:
		return RequestFailure{}, nil

	case TypeChannelOpen:
		return c.channelOpen()

	case TypeChannelOpenConfirmation:
		var v [4]uint32
		if err := c.u32s(v[:]); err != nil {
			return nil, err
		}
		return ChannelOpenConfirmation{RecipientChannel: v[0], SenderChannel: v[1], InitialWindow: v[2], Reserved: v[3]}, nil

	case TypeChannelOpenFailure:
		var v [4]uint32
		if err := c.u32s(v[:]); err != nil {
			return nil, err
		}
		return ChannelOpenFailure{RecipientChannel: v[0], Reason: OpenFailureReason(v[1])}, nil

	case TypeChannelWindowAdjust:
		var v [2]uint32
		if err := c.u32s(v[:]); err != nil {
			return nil, err
		}
		return ChannelWindowAdjust{RecipientChannel: v[0], BytesToAdd: v[1]}, nil

	case TypeChannelData:
		ch, err := c.u32()
		if err != nil {
			return nil, err
		}
		data, err := c.bytes("data length", c.lim.MaxData)
		if err != nil {
			return nil, err
		}
		return ChannelData{RecipientChannel: ch, Data: data}, nil

	case TypeChannelClose:
		ch, err := c.u32()
		if err != nil {
			return nil, err
		}
		return ChannelClose{RecipientChannel: ch}, nil

	case TypeProtocolVersion:
		if err := c.need(protocolVersionLen - 1); err != nil {
			return nil, err
		}
		var v [3]uint32
		_ = c.u32s(v[:])
		raw := [16]byte(c.b[c.off : c.off+16])
		c.off += 16 + protocolVersionReserved
		return ProtocolVersion{Major: v[0], Minor: v[1], Trigger: TriggerReason(v[2]), UUID: guid.FromSMBIOS(raw)}, nil

	case TypeKeepaliveRequest, TypeKeepaliveReply:
		cookie, err := c.u32()
		if err != nil {
			return nil, err
		}
		if c.t == TypeKeepaliveRequest {
			return KeepaliveRequest{Cookie: cookie}, nil
		}
		return KeepaliveReply{Cookie: cookie}, nil

	case TypeKeepaliveOptionsRequest, TypeKeepaliveOptionsReply:
		var v [2]uint32
		if err := c.u32s(v[:]); err != nil {
			return nil, err
		}
		if c.t == TypeKeepaliveOptionsRequest {
			return KeepaliveOptionsRequest{Interval: v[0], Timeout: v[1]}, nil
		}
		return KeepaliveOptionsReply{Interval: v[0], Timeout: v[1]}, nil

	case TypeJSONControl:
		c.off = 0
		return nil, c.fail("", ErrJSONControl, "is a MeshCentral agent connecting instead of AMT?")
	}
	c.off = 0
	return nil, c.fail("", ErrUnknownType, "first byte 0x%02x is no APF message; the stream is out of step or not APF", byte(c.t))
}

func (c *cursor) u32s(v []uint32) error {
	if err := c.need(4 * len(v)); err != nil {
		return err
	}
	for i := range v {
		v[i], _ = c.u32()
	}
	return nil
}

func (c *cursor) userauthRequest() (Message, error) {
	var m UserauthRequest
	var err error
	if m.User, err = c.str("user"); err != nil {
		return nil, err
	}
	if m.Service, err = c.str("service"); err != nil {
		return nil, err
	}
	methodAt := c.off
	if m.Method, err = c.str("method"); err != nil {
		return nil, err
	}
	switch m.Method {
	case MethodNone:
		return m, nil
	case MethodPassword:
		change, err := c.byte()
		if err != nil {
			return nil, err
		}
		if change != 0 {
			c.off--
			return nil, c.fail("change-password flag", ErrMalformed, "0x%02x: SSH password change is not part of APF", change)
		}
		pw, err := c.bytes("password", c.lim.MaxString)
		if err != nil {
			return nil, err
		}
		m.Password = secret.New(pw)
		return m, nil
	}
	// Other SSH methods carry fields APF does not define, and without an
	// outer length they cannot be skipped.
	c.off = methodAt
	return nil, c.fail("method", ErrMalformed, "method %q is not password or none", m.Method)
}

func (c *cursor) globalRequest() (Message, error) {
	name, err := c.str("request name")
	if err != nil {
		return nil, err
	}
	want, err := c.byte()
	if err != nil {
		return nil, err
	}
	wantReply := want != 0
	switch name {
	case RequestTCPIPForward, RequestCancelTCPIPForward:
		addr, err := c.str("address")
		if err != nil {
			return nil, err
		}
		port, err := c.u32()
		if err != nil {
			return nil, err
		}
		if name == RequestTCPIPForward {
			return TCPIPForward{WantReply: wantReply, Address: addr, Port: port}, nil
		}
		return CancelTCPIPForward{WantReply: wantReply, Address: addr, Port: port}, nil
	case RequestUDPSendTo:
		m := UDPSendTo{WantReply: wantReply}
		if m.Address, err = c.str("address"); err != nil {
			return nil, err
		}
		if m.Port, err = c.u32(); err != nil {
			return nil, err
		}
		if m.OriginatorAddress, err = c.str("originator address"); err != nil {
			return nil, err
		}
		if m.OriginatorPort, err = c.u32(); err != nil {
			return nil, err
		}
		if m.Data, err = c.bytes("data", c.lim.MaxString); err != nil {
			return nil, err
		}
		return m, nil
	}
	return GlobalRequest{Name: name, WantReply: wantReply}, nil
}

func (c *cursor) channelOpen() (Message, error) {
	var m ChannelOpen
	var err error
	if m.ChannelType, err = c.str("channel type"); err != nil {
		return nil, err
	}
	var v [3]uint32
	if err := c.u32s(v[:]); err != nil {
		return nil, err
	}
	m.SenderChannel, m.InitialWindow, m.Reserved = v[0], v[1], v[2]
	if m.ConnectedAddress, err = c.str("connected address"); err != nil {
		return nil, err
	}
	if m.ConnectedPort, err = c.u32(); err != nil {
		return nil, err
	}
	if m.OriginatorAddress, err = c.str("originator address"); err != nil {
		return nil, err
	}
	if m.OriginatorPort, err = c.u32(); err != nil {
		return nil, err
	}
	return m, nil
}
