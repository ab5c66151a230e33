// Package hello decodes and encodes the hello packet an AMT device in Setup
// Mode sends to TCP 9971 to ask for remote (PKI) configuration
// (spec/activation.md §2).
//
// The packet has no framing: AMT sends it and closes, so the listener reads
// to EOF under a size cap and hands the whole of it to Parse. The decoder is
// pure; de-duplication, logging and the choice of a certificate belong to the
// hello service.
package hello

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"amtd/amt/guid"
)

// Interface versions (spec/activation.md §2.2).
const (
	VersionPSK = 2 // TLS-PSK, removed in AMT 11.0; reported, never served
	VersionPKI = 3
)

// Layout sizes (spec/activation.md §2.2).
const (
	headerLen = 24 // admin, version, retry, UUID
	MinLen    = 25 // header + hash count
	pskPIDLen = 8
	// MaxLen is the longest valid hello: 255 SHA-384 entries. Listeners
	// read at most this much (MeshCentral caps at 16000).
	MaxLen = MinLen + 255*(2+48)
)

// HashType is the algorithm byte of a hash entry: the hello and setup.bin
// coding, where 3 is SHA-384 (HECI uses 3 for SHA-512; spec/activation.md §14).
type HashType uint8

// Hash algorithms of hello entries.
const (
	SHA1   HashType = 1
	SHA256 HashType = 2
	SHA384 HashType = 3
)

// Size is the digest length the type requires, or 0 for an unknown type.
func (t HashType) Size() int {
	switch t {
	case SHA1:
		return 20
	case SHA256:
		return 32
	case SHA384:
		return 48
	}
	return 0
}

func (t HashType) String() string {
	switch t {
	case SHA1:
		return "SHA-1"
	case SHA256:
		return "SHA-256"
	case SHA384:
		return "SHA-384"
	}
	return fmt.Sprintf("hash type %d", uint8(t))
}

// Hash is one trusted root hash: a digest over the whole DER root certificate.
type Hash struct {
	Type  HashType
	Value []byte
}

// Hex is the digest in lower-case hex, as rpc-go and the store write it.
func (h Hash) Hex() string { return hex.EncodeToString(h.Value) }

func (h Hash) String() string { return strings.ToLower(h.Type.String()) + ":" + h.Hex() }

// Hello is a version-3 (PKI) hello.
type Hello struct {
	// AdminCredentialsSet is the first u16: 0 or 1.
	AdminCredentialsSet bool
	// RetryCount increments on each resend; the IRG range is 0–14.
	RetryCount uint32
	// UUID is the device UUID, converted from SMBIOS order.
	UUID guid.UUID
	// Hashes are the device's trusted roots in the order sent. The IRG says
	// at most 23, but a MeshCentral sample carries 24, so the count is not
	// capped below the u8 maximum (spec/activation.md §2.2).
	Hashes []Hash
	// TrailingBytes counts bytes after the last hash entry. The layout has
	// none; they are tolerated so a firmware that appends something is
	// still served, and the service logs the count.
	TrailingBytes int
}

// Errors a caller may branch on.
var (
	// ErrPSK: the hello is interface version 2; see PSKError.
	ErrPSK = errors.New("PSK hello (interface version 2): TLS-PSK remote configuration was removed in AMT 11.0 and is not supported")
	// ErrMalformed: the packet is not a hello amtd can use.
	ErrMalformed = errors.New("malformed hello")
)

// PSKError is returned by Parse for a version-2 (PSK) hello. It carries what
// the hello said so the service can log it; amtd does not implement PSK
// (spec/activation.md §2.2).
type PSKError struct {
	AdminCredentialsSet bool
	RetryCount          uint32
	UUID                guid.UUID
	PID                 []byte // 8 bytes when present
}

func (e *PSKError) Error() string {
	return fmt.Sprintf("hello: device %s: %v; configure it with PKI (hello version 3) or an agent", e.UUID, ErrPSK)
}

func (e *PSKError) Unwrap() error { return ErrPSK }

func malformed(format string, args ...any) error {
	return fmt.Errorf("hello: %w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Parse decodes a complete hello. A version-2 hello returns a *PSKError; every
// other problem an error wrapping ErrMalformed that says which byte is wrong.
func Parse(b []byte) (*Hello, error) {
	if len(b) < MinLen {
		return nil, malformed("%d bytes, a hello has at least %d (is the sender AMT?)", len(b), MinLen)
	}
	admin := binary.LittleEndian.Uint16(b[0:])
	if admin > 1 {
		return nil, malformed("admin-credentials flag at offset 0 is %d, want 0 or 1", admin)
	}
	version := binary.LittleEndian.Uint16(b[2:])
	retry := binary.LittleEndian.Uint32(b[4:])
	uuid := guid.FromSMBIOS([16]byte(b[8:24]))
	switch version {
	case VersionPKI:
	case VersionPSK:
		e := &PSKError{AdminCredentialsSet: admin == 1, RetryCount: retry, UUID: uuid}
		if len(b) >= headerLen+pskPIDLen {
			e.PID = append([]byte(nil), b[headerLen:headerLen+pskPIDLen]...)
		}
		return nil, e
	default:
		return nil, malformed("interface version at offset 2 is %d, want 3 (PKI)", version)
	}
	h := &Hello{AdminCredentialsSet: admin == 1, RetryCount: retry, UUID: uuid}
	n := int(b[24])
	h.Hashes = make([]Hash, 0, n)
	off := MinLen
	for i := 0; i < n; i++ {
		if len(b)-off < 2 {
			return nil, malformed("hash %d of %d: entry header at offset %d is cut off (packet is %d bytes)", i, n, off, len(b))
		}
		t, l := HashType(b[off]), int(b[off+1])
		if t.Size() == 0 || t.Size() != l {
			return nil, malformed("hash %d of %d at offset %d: type %d with length %d; want type 1/2/3 with length 20/32/48", i, n, off, t, l)
		}
		off += 2
		if len(b)-off < l {
			return nil, malformed("hash %d of %d at offset %d: %d bytes announced, %d left", i, n, off, l, len(b)-off)
		}
		h.Hashes = append(h.Hashes, Hash{Type: t, Value: append([]byte(nil), b[off:off+l]...)})
		off += l
	}
	h.TrailingBytes = len(b) - off
	return h, nil
}

// MarshalBinary encodes a version-3 hello, as a device (or the simulator)
// sends it. It refuses what Parse would refuse.
func (h *Hello) MarshalBinary() ([]byte, error) {
	if len(h.Hashes) > 255 {
		return nil, fmt.Errorf("hello: encode: %d hashes, the count is one byte", len(h.Hashes))
	}
	b := make([]byte, MinLen, MinLen+len(h.Hashes)*50)
	if h.AdminCredentialsSet {
		b[0] = 1
	}
	binary.LittleEndian.PutUint16(b[2:], VersionPKI)
	binary.LittleEndian.PutUint32(b[4:], h.RetryCount)
	raw := h.UUID.SMBIOS()
	copy(b[8:24], raw[:])
	b[24] = byte(len(h.Hashes))
	for i, x := range h.Hashes {
		if x.Type.Size() == 0 || len(x.Value) != x.Type.Size() {
			return nil, fmt.Errorf("hello: encode: hash %d is %s with %d bytes", i, x.Type, len(x.Value))
		}
		b = append(b, byte(x.Type), byte(len(x.Value)))
		b = append(b, x.Value...)
	}
	return b, nil
}

// MarshalPSK encodes a version-2 hello (the 24-byte header and the 8-byte
// PID), for testing that the listener reports and refuses it.
func MarshalPSK(admin bool, retry uint32, uuid guid.UUID, pid [8]byte) []byte {
	b := make([]byte, headerLen, headerLen+pskPIDLen)
	if admin {
		b[0] = 1
	}
	binary.LittleEndian.PutUint16(b[2:], VersionPSK)
	binary.LittleEndian.PutUint32(b[4:], retry)
	raw := uuid.SMBIOS()
	copy(b[8:24], raw[:])
	return append(b, pid[:]...)
}
