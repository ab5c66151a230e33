// Package setupbin reads and writes the USB provisioning file (setup.bin)
// that Intel AMT firmware consumes from a USB key at boot
// (spec/network.md §3).
//
// A file is a 512-byte header chunk followed by data records of 512 bytes
// each. Every record holds (module, variable, value) entries: the MEBx
// passwords, the PKI DNS suffix, a user-defined root hash, the provisioning
// server and the order to start provisioning. The firmware takes the record
// at index Consumed, applies it, and (unless the file says not to) counts it
// consumed, so one file can touch as many machines as it has records.
//
// All integers are little-endian. The package is pure: bytes in, typed
// values out, and back.
package setupbin

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// ChunkSize is the unit of the file: the header and each record take one.
const ChunkSize = 512

// Layout (spec/network.md §3.1).
const (
	recordHeaderLen = 24
	entryHeaderLen  = 8
	// maxEntriesLen is what one record can hold after its header.
	maxEntriesLen = ChunkSize - recordHeaderLen
	// MaxRecords bounds what Decode accepts and Encode writes: 4096 records
	// make a 2 MiB file, far more machines than anyone touches with one key.
	MaxRecords = 4096
	// MaxFileLen is the largest file Decode reads.
	MaxFileLen = ChunkSize * (1 + MaxRecords)
)

// fileTypes are the FileTypeUUIDs by version, as the bytes stand in the file
// (spec/network.md §3.1).
var fileTypes = [4][16]byte{
	{0xb5, 0x16, 0xfb, 0x71, 0x87, 0xcb, 0xf9, 0x4a, 0xb4, 0x41, 0xca, 0x7b, 0x38, 0x35, 0x78, 0xf9},
	{0x96, 0xb2, 0x81, 0x58, 0xcf, 0x6b, 0x72, 0x4c, 0x8b, 0x91, 0xa1, 0x5e, 0x51, 0x2e, 0x99, 0xc4},
	{0xa7, 0xf7, 0xf6, 0xc6, 0x89, 0xc4, 0xf6, 0x47, 0x93, 0xed, 0xe2, 0xe5, 0x02, 0x0d, 0xa5, 0x1d},
	{0xaa, 0xa9, 0x34, 0x52, 0xe1, 0x29, 0xa9, 0x44, 0x8d, 0x4d, 0x08, 0x1c, 0x07, 0xb9, 0x63, 0x53},
}

// File flags.
const (
	// FlagDoNotConsume tells the firmware to leave Consumed alone: every
	// machine takes the same (first unconsumed) record.
	FlagDoNotConsume uint16 = 1
)

// Record flags.
const (
	RecordValid     uint32 = 1
	RecordScrambled uint32 = 2
)

// recordTypeData is the only record type the format defines (0 is invalid).
const recordTypeData = 1

// scrambleDelta is what a scrambled record adds to every byte after its
// header (spec/network.md §3.1).
const scrambleDelta = 17

// File is a decoded setup.bin.
type File struct {
	// Version is 1 to 4, from the FileTypeUUID. amtd writes version 3, as
	// MeshCentral's bare-metal recipe does (spec/network.md §3.3).
	Version      int
	Major, Minor uint8
	Flags        uint16
	// Consumed is how many records firmware has taken so far.
	Consumed uint32
	Records  []Record
	// Notes says where the file departs from what amtd writes but was
	// still read (the tolerant side of spec/network.md §3.1).
	Notes []string
}

// Record is one data record: the settings for one machine.
type Record struct {
	Number uint32
	Flags  uint32
	Vars   []Var
}

// Var is one entry of a record.
type Var struct {
	Module, ID uint16
	Value      []byte
}

// Valid reports whether the record still carries the valid flag.
func (r Record) Valid() bool { return r.Flags&RecordValid != 0 }

// Var returns the value of module/id in the record.
func (r Record) Var(module, id uint16) ([]byte, bool) {
	for _, v := range r.Vars {
		if v.Module == module && v.ID == id {
			return v.Value, true
		}
	}
	return nil, false
}

// Next returns the index of the record firmware would take now, or -1 when
// every record is consumed.
func (f *File) Next() int {
	if int64(f.Consumed) >= int64(len(f.Records)) {
		return -1
	}
	return int(f.Consumed)
}

// Consume takes the next record as firmware does: it returns the record and,
// unless the file carries FlagDoNotConsume, marks it invalid and counts it
// consumed. ok is false when no valid record is left.
func (f *File) Consume() (rec Record, ok bool) {
	i := f.Next()
	if i < 0 || !f.Records[i].Valid() {
		return Record{}, false
	}
	rec = f.Records[i]
	if f.Flags&FlagDoNotConsume == 0 {
		f.Records[i].Flags &^= RecordValid
		f.Consumed++
	}
	return rec, true
}

// Decode errors. Each wraps ErrFormat so callers can tell a bad file from an
// I/O problem.
var ErrFormat = errors.New("not a valid setup.bin")

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// Decode parses a whole setup.bin. It refuses files larger than MaxFileLen,
// files whose length is not a whole number of chunks, unknown file types and
// entries that run past their record.
func Decode(b []byte) (*File, error) {
	if len(b) > MaxFileLen {
		return nil, formatErr("%d bytes; the largest amtd reads is %d (%d records)", len(b), MaxFileLen, MaxRecords)
	}
	if len(b) < ChunkSize {
		return nil, formatErr("%d bytes; the header alone is %d", len(b), ChunkSize)
	}
	if len(b)%ChunkSize != 0 {
		return nil, formatErr("%d bytes is not a whole number of %d-byte chunks", len(b), ChunkSize)
	}
	f := &File{}
	for i, t := range fileTypes {
		if bytes.Equal(b[:16], t[:]) {
			f.Version = i + 1
		}
	}
	if f.Version == 0 {
		return nil, formatErr("unknown file type %x (want the v1-v4 setup.bin identifiers)", b[:16])
	}
	le := binary.LittleEndian
	f.Major, f.Minor = b[24], b[25]
	f.Flags = le.Uint16(b[26:])
	count := le.Uint32(b[28:])
	f.Consumed = le.Uint32(b[32:])
	if hdr := le.Uint16(b[18:]); hdr < 42 || hdr > ChunkSize {
		f.note("header length field is %d (want 42 + 2 per module)", hdr)
	}
	if c := le.Uint16(b[36:]); c != 1 {
		return nil, formatErr("records of %d chunks; only 1-chunk records are defined", c)
	}
	have := len(b)/ChunkSize - 1
	if int64(count) != int64(have) {
		return nil, formatErr("header says %d records, the file holds %d", count, have)
	}
	if f.Consumed > count {
		return nil, formatErr("header says %d of %d records consumed", f.Consumed, count)
	}
	for i := range have {
		rec, err := f.decodeRecord(b[ChunkSize*(i+1) : ChunkSize*(i+2)])
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i+1, err)
		}
		f.Records = append(f.Records, rec)
	}
	return f, nil
}

func (f *File) note(format string, args ...any) {
	f.Notes = append(f.Notes, fmt.Sprintf(format, args...))
}

func (f *File) decodeRecord(c []byte) (Record, error) {
	le := binary.LittleEndian
	if t := le.Uint32(c); t != recordTypeData {
		return Record{}, formatErr("record type %d (want 1, data)", t)
	}
	r := Record{Flags: le.Uint32(c[4:])}
	// MeshCentral's encoder writes two reserved words, then chunk count,
	// header length and number at 16/18/20; its decoder reads them at
	// 8/10/12 (spec/network.md §3.1). Trust the encoder, accept the other.
	switch {
	case le.Uint16(c[18:]) == recordHeaderLen:
		r.Number = le.Uint32(c[20:])
	case le.Uint16(c[10:]) == recordHeaderLen:
		r.Number = le.Uint32(c[12:])
		f.note("record %d: header fields at offsets 8-15 (MeshCentral decoder layout)", r.Number)
	default:
		return Record{}, formatErr("record header length is neither at offset 18 nor 10")
	}
	body := c[recordHeaderLen:]
	if r.Flags&RecordScrambled != 0 {
		body = slices.Clone(body)
		for i := range body {
			body[i] -= scrambleDelta
		}
	}
	for p := 0; p+4 <= len(body); {
		mod, id := le.Uint16(body[p:]), le.Uint16(body[p+2:])
		if mod == 0 || id == 0 {
			break
		}
		if p+entryHeaderLen > len(body) {
			return Record{}, formatErr("entry %d/%d at offset %d: header runs past the record", mod, id, recordHeaderLen+p)
		}
		n := int(le.Uint16(body[p+4:]))
		end := p + entryHeaderLen + n
		if end > len(body) {
			return Record{}, formatErr("entry %d/%d at offset %d: %d-byte value runs past the record", mod, id, recordHeaderLen+p, n)
		}
		r.Vars = append(r.Vars, Var{Module: mod, ID: id, Value: slices.Clone(body[p+entryHeaderLen : end])})
		p = end + (4-n%4)%4
	}
	return r, nil
}

// Encode writes f as setup.bin bytes: the header chunk with the modules in
// use, then each record, numbered from 1 and scrambled when its flags say.
// Version 0 means 3.
func Encode(f *File) ([]byte, error) {
	v := f.Version
	if v == 0 {
		v = 3
	}
	if v < 1 || v > len(fileTypes) {
		return nil, fmt.Errorf("setup.bin version %d: amtd writes versions 1 to 4", v)
	}
	if len(f.Records) > MaxRecords {
		return nil, fmt.Errorf("%d records: one file holds at most %d", len(f.Records), MaxRecords)
	}
	if f.Consumed > uint32(len(f.Records)) {
		return nil, fmt.Errorf("%d records consumed of %d", f.Consumed, len(f.Records))
	}
	major := f.Major
	if major == 0 {
		major = uint8(v)
	}
	var modules []uint16
	for _, r := range f.Records {
		for _, e := range r.Vars {
			if !slices.Contains(modules, e.Module) {
				modules = append(modules, e.Module)
			}
		}
	}
	out := make([]byte, ChunkSize*(1+len(f.Records)))
	le := binary.LittleEndian
	copy(out, fileTypes[v-1][:])
	le.PutUint16(out[16:], 1)
	le.PutUint16(out[18:], uint16(42+2*len(modules)))
	out[24], out[25] = major, f.Minor
	le.PutUint16(out[26:], f.Flags)
	le.PutUint32(out[28:], uint32(len(f.Records)))
	le.PutUint32(out[32:], f.Consumed)
	le.PutUint16(out[36:], 1)
	if 40+2*len(modules)+2 > ChunkSize {
		return nil, fmt.Errorf("%d modules do not fit the header", len(modules))
	}
	for i, m := range modules {
		le.PutUint16(out[40+2*i:], m)
	}
	for i, r := range f.Records {
		c := out[ChunkSize*(i+1) : ChunkSize*(i+2)]
		le.PutUint32(c, recordTypeData)
		le.PutUint32(c[4:], r.Flags)
		le.PutUint16(c[16:], 1)
		le.PutUint16(c[18:], recordHeaderLen)
		le.PutUint32(c[20:], uint32(i+1))
		p := recordHeaderLen
		for _, e := range r.Vars {
			if e.Module == 0 || e.ID == 0 {
				return nil, fmt.Errorf("record %d: entry %d/%d: module and variable must be non-zero", i+1, e.Module, e.ID)
			}
			n := len(e.Value)
			need := entryHeaderLen + n + (4-n%4)%4
			if n > 0xffff || p+need > ChunkSize {
				return nil, fmt.Errorf("record %d: entries take more than the %d bytes a record holds", i+1, maxEntriesLen)
			}
			le.PutUint16(c[p:], e.Module)
			le.PutUint16(c[p+2:], e.ID)
			le.PutUint16(c[p+4:], uint16(n))
			copy(c[p+entryHeaderLen:], e.Value)
			p += need
		}
		if r.Flags&RecordScrambled != 0 {
			for j := recordHeaderLen; j < ChunkSize; j++ {
				c[j] += scrambleDelta
			}
		}
	}
	return out, nil
}

// Module/variable identifiers amtd writes and reads by name
// (spec/network.md §3.2).
const (
	ModME = 1
	ModCM = 2

	VarCurrentMEBxPassword = 1 // module 1
	VarNewMEBxPassword     = 2 // module 1
	VarManageability       = 3 // module 1

	VarPKIDNSSuffix     = 3  // module 2
	VarConfigServerFQDN = 4  // module 2
	VarUserCertConfig   = 7  // module 2
	VarUserCertAdd      = 8  // module 2
	VarHostName         = 11 // module 2
	VarProvServerAddr   = 17 // module 2
	VarProvServerPort   = 18 // module 2
	VarProvisionStart   = 28 // module 2
)

// RootHash is a user-defined root certificate hash (module 2 variable 8).
type RootHash struct {
	// Algorithm: 1 SHA-1, 2 SHA-256, 3 SHA-384 (the hello/setup.bin coding).
	Algorithm uint8
	Hash      []byte
	Name      string
}

// Settings are the values of one record amtd writes for bare-metal setup
// (spec/network.md §3.3) and reads back.
type Settings struct {
	CurrentMEBxPassword string
	NewMEBxPassword     string
	PKIDNSSuffix        string
	ConfigServerFQDN    string
	RootHash            *RootHash
	// HostName is AMT's host name (2/11, at most 63 characters).
	HostName   string
	ServerAddr netip.Addr
	ServerPort uint16
	Start      bool
}

func hashLen(alg uint8) int {
	switch alg {
	case 1:
		return 20
	case 2:
		return 32
	case 3:
		return 48
	}
	return 0
}

// Vars turns the settings into record entries in the order firmware wants:
// MEBx passwords first, then the PKI settings, and "start provisioning"
// last, after the suffix, FQDN and server address it depends on
// (MeshCentral amt-setupbin.js notes).
func (s Settings) Vars() ([]Var, error) {
	var vs []Var
	str := func(mod, id uint16, what, v string, max int) error {
		if v == "" {
			return nil
		}
		if len(v) > max {
			return fmt.Errorf("%s is %d bytes; setup.bin takes at most %d", what, len(v), max)
		}
		vs = append(vs, Var{mod, id, []byte(v)})
		return nil
	}
	if err := str(ModME, VarCurrentMEBxPassword, "the current MEBx password", s.CurrentMEBxPassword, 32); err != nil {
		return nil, err
	}
	if err := str(ModME, VarNewMEBxPassword, "the new MEBx password", s.NewMEBxPassword, 32); err != nil {
		return nil, err
	}
	if s.NewMEBxPassword != "" && s.CurrentMEBxPassword == "" {
		return nil, errors.New("a new MEBx password needs the current one (a factory-fresh machine's is \"admin\")")
	}
	if err := str(ModCM, VarPKIDNSSuffix, "the PKI DNS suffix", s.PKIDNSSuffix, 255); err != nil {
		return nil, err
	}
	if err := str(ModCM, VarConfigServerFQDN, "the configuration server FQDN", s.ConfigServerFQDN, 255); err != nil {
		return nil, err
	}
	if h := s.RootHash; h != nil {
		if n := hashLen(h.Algorithm); n == 0 || len(h.Hash) != n {
			return nil, fmt.Errorf("root hash: algorithm %d with %d bytes (want 1/20, 2/32 or 3/48)", h.Algorithm, len(h.Hash))
		}
		if len(h.Name) > 32 {
			return nil, fmt.Errorf("root hash name is %d bytes; setup.bin takes at most 32", len(h.Name))
		}
		v := append([]byte{h.Algorithm}, h.Hash...)
		v = append(append(v, byte(len(h.Name))), h.Name...)
		vs = append(vs, Var{ModCM, VarUserCertConfig, []byte{1}}, Var{ModCM, VarUserCertAdd, v})
	}
	if err := str(ModCM, VarHostName, "the host name", s.HostName, 63); err != nil {
		return nil, err
	}
	if s.ServerAddr.IsValid() {
		if !s.ServerAddr.Is4() {
			return nil, fmt.Errorf("provisioning server address %s: setup.bin takes an IPv4 address", s.ServerAddr)
		}
		a := s.ServerAddr.As4()
		// Little-endian: the address's last byte comes first (spec/network.md §3.2).
		vs = append(vs, Var{ModCM, VarProvServerAddr, []byte{a[3], a[2], a[1], a[0]}})
	}
	if s.ServerPort != 0 {
		vs = append(vs, Var{ModCM, VarProvServerPort, binary.LittleEndian.AppendUint16(nil, s.ServerPort)})
	}
	if s.Start {
		vs = append(vs, Var{ModCM, VarProvisionStart, []byte{1}})
	}
	return vs, nil
}

// SettingsOf reads the settings amtd knows from a record. Entries it does
// not know are left out; unknown reports them as "module/var".
func SettingsOf(r Record) (s Settings, unknown []string, err error) {
	for _, v := range r.Vars {
		val := v.Value
		switch [2]uint16{v.Module, v.ID} {
		case [2]uint16{ModME, VarCurrentMEBxPassword}:
			s.CurrentMEBxPassword = string(val)
		case [2]uint16{ModME, VarNewMEBxPassword}:
			s.NewMEBxPassword = string(val)
		case [2]uint16{ModCM, VarPKIDNSSuffix}:
			s.PKIDNSSuffix = string(val)
		case [2]uint16{ModCM, VarConfigServerFQDN}:
			s.ConfigServerFQDN = string(val)
		case [2]uint16{ModCM, VarUserCertConfig}:
		case [2]uint16{ModCM, VarUserCertAdd}:
			if len(val) < 1 || hashLen(val[0]) == 0 || len(val) < 2+hashLen(val[0]) {
				return s, unknown, fmt.Errorf("root hash entry of %d bytes does not decode", len(val))
			}
			n := hashLen(val[0])
			nameLen := int(val[1+n])
			if 2+n+nameLen > len(val) {
				return s, unknown, fmt.Errorf("root hash name of %d bytes runs past its entry", nameLen)
			}
			s.RootHash = &RootHash{Algorithm: val[0], Hash: slices.Clone(val[1 : 1+n]), Name: string(val[2+n : 2+n+nameLen])}
		case [2]uint16{ModCM, VarHostName}:
			s.HostName = string(val)
		case [2]uint16{ModCM, VarProvServerAddr}:
			if len(val) != 4 {
				return s, unknown, fmt.Errorf("provisioning server address of %d bytes (want 4)", len(val))
			}
			s.ServerAddr = netip.AddrFrom4([4]byte{val[3], val[2], val[1], val[0]})
		case [2]uint16{ModCM, VarProvServerPort}:
			if len(val) != 2 {
				return s, unknown, fmt.Errorf("provisioning server port of %d bytes (want 2)", len(val))
			}
			s.ServerPort = binary.LittleEndian.Uint16(val)
		case [2]uint16{ModCM, VarProvisionStart}:
			s.Start = len(val) == 1 && val[0] == 1
		default:
			unknown = append(unknown, fmt.Sprintf("%d/%d", v.Module, v.ID))
		}
	}
	return s, unknown, nil
}

// String names the file for logs: version, records and how many are used.
func (f *File) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "setup.bin v%d (%d.%d), %d records, %d consumed", f.Version, f.Major, f.Minor, len(f.Records), f.Consumed)
	if f.Flags&FlagDoNotConsume != 0 {
		b.WriteString(", records not consumed")
	}
	return b.String()
}
