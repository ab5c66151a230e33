// Package auditlog decodes the records AMT_AuditLog.ReadRecords returns:
// each EventRecords value is base64 of one binary record (spec/wsman.md
// §6; layout as MPS's auditLog.ts and MeshCommander read it). Multi-byte
// fields are big-endian:
//
//	0  AuditAppID  u16
//	2  EventID     u16
//	4  InitiatorType u8: 0 HTTP digest (u8 length, user name),
//	   1 Kerberos (u32 user-in-domain, u8 length, SID), 2 local,
//	   3 KVM default port (nothing more)
//	.. TimeStamp   u32, seconds since 1970 on the firmware clock
//	.. MCLocationType u8, u8 length, network address (text)
//	.. u8 length, extended data (event specific)
//
// The codec is pure: bytes in, a Record out. Names and the extended-data
// text follow MPS's tables so the API answers as MPS does.
package auditlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Initiator types.
const (
	InitiatorDigest   = 0
	InitiatorKerberos = 1
	InitiatorLocal    = 2
	InitiatorKVM      = 3
)

// MaxRecord is the longest record the layout allows: every length byte at
// 255 after a Kerberos initiator.
const MaxRecord = 4 + 1 + 4 + 1 + 255 + 4 + 2 + 255 + 1 + 255

// Record is one audit log record.
type Record struct {
	AppID         uint16
	EventID       uint16
	InitiatorType uint8
	// User is the digest user name (InitiatorDigest).
	User string
	// UserInDomain and SID are the Kerberos initiator (InitiatorKerberos).
	UserInDomain uint32
	SID          []byte
	// Time is the firmware's clock, seconds since 1970 (AMT keeps UTC when
	// set by amtd or RPS; MPS shows it as UTC on a UTC server).
	Time           uint32
	MCLocationType uint8
	NetAddress     string
	Ex             []byte
}

// ParseError says where a record stops making sense.
type ParseError struct {
	Offset int
	Msg    string
}

func (e *ParseError) Error() string {
	return "auditlog: record byte " + strconv.Itoa(e.Offset) + ": " + e.Msg
}

// Decode reads one record. Bytes after the extended data are ignored, as
// AMT pads nothing but a reader should not care.
func Decode(b []byte) (Record, error) {
	var r Record
	if len(b) < 5 {
		return r, &ParseError{0, fmt.Sprintf("%d bytes, a record has at least 5 before its initiator", len(b))}
	}
	r.AppID = binary.BigEndian.Uint16(b[0:])
	r.EventID = binary.BigEndian.Uint16(b[2:])
	r.InitiatorType = b[4]
	p := 5
	switch r.InitiatorType {
	case InitiatorDigest:
		n, v, err := lenPrefixed(b, p)
		if err != nil {
			return r, err
		}
		r.User, p = string(v), p+1+n
	case InitiatorKerberos:
		if len(b) < p+4 {
			return r, &ParseError{len(b) - 1, "Kerberos initiator cut short"}
		}
		r.UserInDomain = binary.BigEndian.Uint32(b[p:])
		p += 4
		n, v, err := lenPrefixed(b, p)
		if err != nil {
			return r, err
		}
		r.SID, p = append([]byte(nil), v...), p+1+n
	case InitiatorLocal, InitiatorKVM:
	default:
		return r, &ParseError{4, "unknown initiator type " + strconv.Itoa(int(r.InitiatorType))}
	}
	if len(b) < p+5 {
		return r, &ParseError{min(p, len(b)-1), "record ends before its time stamp and location"}
	}
	r.Time = binary.BigEndian.Uint32(b[p:])
	r.MCLocationType = b[p+4]
	p += 5
	n, v, err := lenPrefixed(b, p)
	if err != nil {
		return r, err
	}
	r.NetAddress, p = string(v), p+1+n
	_, v, err = lenPrefixed(b, p)
	if err != nil {
		return r, err
	}
	r.Ex = append([]byte(nil), v...)
	return r, nil
}

// lenPrefixed reads a u8 length at p and that many bytes after it.
func lenPrefixed(b []byte, p int) (int, []byte, error) {
	if p >= len(b) {
		return 0, nil, &ParseError{len(b) - 1, "record ends before a length byte"}
	}
	n := int(b[p])
	if p+1+n > len(b) {
		return 0, nil, &ParseError{p, fmt.Sprintf("length %d runs past the record's %d bytes", n, len(b))}
	}
	return n, b[p+1 : p+1+n], nil
}

// Encode writes r in the wire layout; amtsim uses it for the records it
// keeps. Strings and the extended data are at most 255 bytes.
func (r Record) Encode() ([]byte, error) {
	b := binary.BigEndian.AppendUint16(nil, r.AppID)
	b = binary.BigEndian.AppendUint16(b, r.EventID)
	b = append(b, r.InitiatorType)
	var err error
	switch r.InitiatorType {
	case InitiatorDigest:
		b, err = appendLen(b, "user name", []byte(r.User))
	case InitiatorKerberos:
		b = binary.BigEndian.AppendUint32(b, r.UserInDomain)
		b, err = appendLen(b, "SID", r.SID)
	case InitiatorLocal, InitiatorKVM:
	default:
		return nil, errors.New("auditlog: unknown initiator type " + strconv.Itoa(int(r.InitiatorType)))
	}
	if err != nil {
		return nil, err
	}
	b = binary.BigEndian.AppendUint32(b, r.Time)
	b = append(b, r.MCLocationType)
	if b, err = appendLen(b, "network address", []byte(r.NetAddress)); err != nil {
		return nil, err
	}
	return appendLen(b, "extended data", r.Ex)
}

func appendLen(b []byte, what string, v []byte) ([]byte, error) {
	if len(v) > 255 {
		return nil, fmt.Errorf("auditlog: %s is %d bytes, at most 255 fit", what, len(v))
	}
	return append(append(b, byte(len(v))), v...), nil
}

// ID is the event's number in MPS's table: AppID*100 + EventID (1602 ACL
// entry added, 1701 power down, ...).
func (r Record) ID() int { return int(r.AppID)*100 + int(r.EventID) }

// App names the application that logged the record, "" when unknown.
func (r Record) App() string { return names[int(r.AppID)] }

// Event names the event, "#N" (the EventID) when unknown, as MPS.
func (r Record) Event() string {
	if s, ok := names[r.ID()]; ok && r.AppID >= 16 && r.EventID < 100 {
		return s
	}
	return "#" + strconv.Itoa(int(r.EventID))
}

// Initiator names who acted: the digest user, a Kerberos SID
// ("S-1-5-21-..."), "Local" or "KVM Default Port".
func (r Record) Initiator() string {
	switch r.InitiatorType {
	case InitiatorDigest:
		return r.User
	case InitiatorKerberos:
		return sidString(r.SID)
	case InitiatorLocal:
		return "Local"
	case InitiatorKVM:
		return "KVM Default Port"
	}
	return ""
}

// Timestamp is Time as a UTC time.
func (r Record) Timestamp() time.Time { return time.Unix(int64(r.Time), 0).UTC() }

// sidString renders a binary SID as MPS's GetSidString does: revision,
// the low byte of the authority, then each 32-bit little-endian
// sub-authority from byte 8 on.
func sidString(sid []byte) string {
	if len(sid) < 8 {
		return ""
	}
	var s strings.Builder
	s.WriteString("S-" + strconv.Itoa(int(sid[0])) + "-" + strconv.Itoa(int(sid[7])))
	for i := 2; i < len(sid)/4; i++ {
		s.WriteString("-" + strconv.FormatUint(uint64(binary.LittleEndian.Uint32(sid[i*4:])), 10))
	}
	return s.String()
}

// Events whose extended data MPS renders as text.
const (
	aclEntryAdded       = 1602
	aclEntryModified    = 1603
	aclEntryRemoved     = 1604
	aclInvalidCreds     = 1605
	aclEntryState       = 1606
	tlsStateChanged     = 1607
	setRealmAuthMode    = 1617
	unprovisioning      = 1619
	firmwareUpdated     = 1900
	meTimeSet           = 2100
	optInPolicyChange   = 3000
	sendConsentCodeEvnt = 3001
)

// ExString renders the extended data of the events MPS knows, and false
// for the others (MPS sends null). Out-of-range values give false too,
// where MPS would print "undefined".
func (r Record) ExString() (string, bool) {
	d := r.Ex
	pick := func(i int, from ...string) (string, bool) {
		if i < 0 || i >= len(from) {
			return "", false
		}
		return from[i], true
	}
	at := func(i int) int {
		if i < len(d) {
			return int(d[i])
		}
		return -1
	}
	auth := []string{"NoAuth", "ServerAuth", "MutualAuth"}
	policy := []string{"None", "KVM", "All"}
	switch r.ID() {
	case aclEntryAdded, aclEntryRemoved:
		// A digest entry: 0, the name's length, the name.
		if at(0) == 0 && at(1) >= 0 && 2+at(1) <= len(d) {
			return Latin1(d[2 : 2+at(1)]), true
		}
	case aclEntryModified:
		if at(1) == 0 && len(d) >= 3 {
			return Latin1(d[3:]), true
		}
	case aclInvalidCreds:
		return pick(at(0), "Invalid ME access", "Invalid MEBx access")
	case aclEntryState:
		s, ok := pick(at(0), "Disabled", "Enabled")
		if !ok {
			return "", false
		}
		if at(1) == 0 && len(d) >= 3 {
			s += ", " + Latin1(d[3:])
		}
		return s, true
	case tlsStateChanged:
		remote, ok1 := pick(at(0), auth...)
		local, ok2 := pick(at(1), auth...)
		return "Remote " + remote + ", Local " + local, ok1 && ok2
	case setRealmAuthMode:
		if len(d) < 5 {
			return "", false
		}
		realm, ok1 := pick(int(binary.BigEndian.Uint32(d)), realmNames...)
		mode, ok2 := pick(at(4), "NoAuth", "Auth", "Disabled")
		return realm + ", " + mode, ok1 && ok2
	case unprovisioning:
		return pick(at(0), "BIOS", "MEBx", "Local MEI", "Local WSMAN", "Remote WSMAN")
	case firmwareUpdated:
		if len(d) < 16 {
			return "", false
		}
		v := func(o int) string {
			var p []string
			for i := range 4 {
				p = append(p, strconv.Itoa(int(binary.BigEndian.Uint16(d[o+2*i:]))))
			}
			return strings.Join(p, ".")
		}
		return "From " + v(0) + " to " + v(8), true
	case meTimeSet:
		// MPS prints the server's toLocaleString; amtd prints RFC 3339 UTC.
		if len(d) < 4 {
			return "", false
		}
		return time.Unix(int64(binary.BigEndian.Uint32(d)), 0).UTC().Format(time.RFC3339), true
	case optInPolicyChange:
		from, ok1 := pick(at(0), policy...)
		to, ok2 := pick(at(1), policy...)
		return "From " + from + " to " + to, ok1 && ok2
	case sendConsentCodeEvnt:
		return pick(at(0), "Success", "Failed 3 times")
	}
	return "", false
}

// Latin1 maps each byte to the code point of the same value, which is
// what MPS's "binary" strings hold: the API shows Ex this way.
func Latin1(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}
