package amtsim

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"sync"
	"time"

	"amtd/amt/digest"
	"amtd/amt/redir"
)

// SOL framing after authentication (spec/redirection.md §4; lengths from
// MeshCentral's amt-redir): 0x27 is 14 bytes, 0x2B (keep-alive) 8 bytes,
// 0x28 (console→AMT data) 10 bytes + LE16 length at offset 8.
const (
	solControl   = 0x27
	solDataIn    = 0x28
	solKeepAlive = 0x2B
	maxSOLData   = 4096
)

// KVMPattern fills b with the deterministic byte stream a simulated KVM
// session sends, starting at stream offset off: byte i is the low byte of
// splitmix64(i/8) shifted by (i%8)*8. A relay can checksum what it passed.
func KVMPattern(b []byte, off uint64) { pattern(b, off, 0) }

// IDERPattern fills b with the bytes a simulated IDE-R session sends back,
// starting at stream offset off: KVMPattern's construction on another
// sequence (splitmix64 of i/8 xor a constant), so a relay that crossed the
// two streams, or looped the console's bytes back, is caught.
func IDERPattern(b []byte, off uint64) { pattern(b, off, iderSeed) }

// iderSeed sets IDERPattern apart from KVMPattern.
const iderSeed = 0x1DE_12

// pattern is byte n of the stream: the low byte of splitmix64(n/8 ^ seed)
// shifted by (n%8)*8, for n from off.
func pattern(b []byte, off, seed uint64) {
	for i := range b {
		n := off + uint64(i)
		b[i] = byte(splitmix64(n/8^seed) >> ((n % 8) * 8))
	}
}

// kvmInput counts and hashes the console's bytes of the latest KVM or
// IDE-R session.
type kvmInput struct {
	mu sync.Mutex
	n  int64
	h  hash.Hash
}

func (k *kvmInput) reset() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.n, k.h = 0, sha256.New()
}

func (k *kvmInput) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.n += int64(len(p))
	k.h.Write(p)
	return len(p), nil
}

// sum returns the bytes counted and their SHA-256.
func (k *kvmInput) sum() (int64, [32]byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var sum [32]byte
	if k.h != nil {
		copy(sum[:], k.h.Sum(nil))
	}
	return k.n, sum
}

// KVMInput returns how many bytes the console sent in the latest KVM
// session after KVM start, and their SHA-256.
func (d *Device) KVMInput() (int64, [32]byte) { return d.kvmIn.sum() }

// IDERInput returns how many bytes the console sent in the latest IDE-R
// session after authentication, and their SHA-256.
func (d *Device) IDERInput() (int64, [32]byte) { return d.iderIn.sum() }

func splitmix64(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

// ServeRedirection runs the AMT side of a redirection session on conn
// (16994/16995 or an APF channel to them): StartRedirectionSession, digest
// authentication with the device realm (spec/redirection.md §2–§3), then SOL
// echoes console data back, KVM streams KVMPattern, and IDE-R answers each
// read of console bytes with as many bytes of IDERPattern.
func (d *Device) ServeRedirection(conn net.Conn) {
	tc := d.track(conn)
	defer d.untrack(tc)
	br := bufio.NewReaderSize(conn, 1024)
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	kind, err := d.redirHandshake(br, conn)
	if err != nil {
		d.log.Debug("redirection refused", "err", err)
		return
	}
	_ = conn.SetDeadline(time.Time{})
	switch kind {
	case redir.SessionSOL:
		err = d.serveSOL(br, conn)
	case redir.SessionKVM:
		err = d.serveKVM(br, conn)
	default:
		err = d.serveIDER(br, conn)
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		d.log.Debug("redirection session ended", "err", err)
	}
}

// readRedir reads one session-control message.
func readRedir(br *bufio.Reader) (redir.Message, error) {
	for need := 4; ; {
		buf, err := br.Peek(need)
		if err != nil {
			return nil, err
		}
		m, n, err := redir.Parse(buf)
		if err == nil {
			_, _ = br.Discard(n)
			return m, nil
		}
		if !errors.Is(err, redir.ErrShort) {
			return nil, err
		}
		need++
		if need > 9+redir.MaxAuthData {
			return nil, fmt.Errorf("redirection message too long")
		}
	}
}

func writeRedir(w io.Writer, m redir.Message) error {
	b, err := redir.Marshal(m)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func (d *Device) redirAllowed(t redir.SessionType) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.s.ControlMode == ModePreProvisioning || !d.s.RedirListener {
		return false
	}
	switch t {
	case redir.SessionSOL:
		return d.s.RedirectionState == 32770 || d.s.RedirectionState == 32771
	case redir.SessionIDER:
		return d.s.RedirectionState == 32769 || d.s.RedirectionState == 32771
	case redir.SessionKVM:
		return d.s.KVMState == 2
	}
	return false
}

func (d *Device) redirHandshake(br *bufio.Reader, w io.Writer) (redir.SessionType, error) {
	m, err := readRedir(br)
	if err != nil {
		return redir.SessionType{}, err
	}
	start, ok := m.(redir.StartSession)
	if !ok {
		return redir.SessionType{}, fmt.Errorf("first message is %s, not StartRedirectionSession", m)
	}
	if !d.redirAllowed(start.Type) {
		_ = writeRedir(w, redir.StartSessionReply{Status: redir.StartUnsupported})
		return redir.SessionType{}, fmt.Errorf("%s is not enabled", start.Type)
	}
	// Bytes 2–11 are not interpreted by any relay (spec/redirection.md §2);
	// the values are MeshCentral-observed guesses (protocol version 1.0).
	if err := writeRedir(w, redir.StartSessionReply{Status: redir.StartSuccess, Header: [10]byte{0, 0, 1, 0, 0, 0, 0, 0, 0, 0}}); err != nil {
		return redir.SessionType{}, err
	}
	var nonce string
	for range 8 {
		m, err := readRedir(br)
		if err != nil {
			return redir.SessionType{}, err
		}
		auth, ok := m.(redir.AuthenticateSession)
		if !ok {
			return redir.SessionType{}, fmt.Errorf("got %s before authentication", m)
		}
		switch auth.Type {
		case redir.AuthQuery:
			if err := writeRedir(w, redir.AuthenticateSessionReply{Status: redir.AuthSuccess, Type: redir.AuthQuery, Data: []byte{byte(redir.AuthDigest)}}); err != nil {
				return redir.SessionType{}, err
			}
		case redir.AuthDigest:
			f, err := redir.ParseDigestFields(auth.Data)
			if err != nil {
				return redir.SessionType{}, err
			}
			if f.Realm == "" || nonce == "" {
				var nb [16]byte
				_, _ = rand.Read(nb[:])
				nonce = hex.EncodeToString(nb[:])
				ch, _ := redir.DigestChallenge{Realm: d.Realm(), Nonce: nonce, QOP: "auth"}.Data()
				if err := writeRedir(w, redir.AuthenticateSessionReply{Status: redir.AuthFailure, Type: redir.AuthDigest, Data: ch}); err != nil {
					return redir.SessionType{}, err
				}
				continue
			}
			if !d.redirDigestOK(f, nonce) {
				_ = writeRedir(w, redir.AuthenticateSessionReply{Status: redir.AuthFailure, Type: redir.AuthDigest})
				return redir.SessionType{}, fmt.Errorf("digest refused for user %q", f.User)
			}
			if err := writeRedir(w, redir.AuthenticateSessionReply{Status: redir.AuthSuccess, Type: redir.AuthDigest}); err != nil {
				return redir.SessionType{}, err
			}
			return start.Type, nil
		default:
			_ = writeRedir(w, redir.AuthenticateSessionReply{Status: redir.AuthNotSupported, Type: auth.Type})
		}
	}
	return redir.SessionType{}, fmt.Errorf("too many authentication attempts")
}

// redirDigestOK checks a redirection digest response against the admin
// entry: HA2 is MD5("POST:/RedirectionService") (spec/redirection.md §3).
func (d *Device) redirDigestOK(f redir.DigestFields, nonce string) bool {
	d.mu.Lock()
	user, ha1, realm := d.s.AdminUser, d.s.AdminHA1, d.s.Realm
	d.mu.Unlock()
	if ha1 == "" || f.User != user || f.Realm != realm || f.Nonce != nonce || f.URI != redir.DigestURI {
		return false
	}
	want := digest.Response(ha1, f.Nonce, f.NC, f.CNonce, f.QOP, "POST", redir.DigestURI)
	return subtle.ConstantTimeCompare([]byte(want), []byte(f.RevealResponse())) == 1
}

func (d *Device) serveSOL(br *bufio.Reader, w io.Writer) error {
	m, err := readRedir(br)
	if err != nil {
		return err
	}
	if _, ok := m.(redir.SOLSettings); !ok {
		return fmt.Errorf("SOL: got %s, want SOL settings", m)
	}
	if err := writeRedir(w, redir.SOLSettingsReply{}); err != nil {
		return err
	}
	var seq uint32
	hdr := make([]byte, 10)
	for {
		c, err := br.ReadByte()
		if err != nil {
			return err
		}
		switch c {
		case solControl:
			_, err = br.Discard(13)
		case solKeepAlive:
			_, err = br.Discard(7)
		case solDataIn:
			hdr[0] = c
			if _, err = io.ReadFull(br, hdr[1:]); err != nil {
				return err
			}
			n := int(binary.LittleEndian.Uint16(hdr[8:10]))
			if n > maxSOLData {
				return fmt.Errorf("SOL data of %d bytes", n)
			}
			data := make([]byte, n)
			if _, err = io.ReadFull(br, data); err != nil {
				return err
			}
			seq++
			var h [7]byte
			binary.LittleEndian.PutUint32(h[3:], seq)
			err = writeRedir(w, redir.SOLDataFromAMT{Header: h, Data: data})
		default:
			return fmt.Errorf("SOL: unknown message 0x%02x", c)
		}
		if err != nil {
			return err
		}
	}
}

func (d *Device) serveKVM(br *bufio.Reader, w io.Writer) error {
	m, err := readRedir(br)
	if err != nil {
		return err
	}
	if _, ok := m.(redir.KVMStart); !ok {
		return fmt.Errorf("KVM: got %s, want KVM start", m)
	}
	if err := writeRedir(w, redir.KVMStartReply{}); err != nil {
		return err
	}
	// Console input (RFB client messages) is counted and hashed, so a
	// relay test can check what arrived, and dropped.
	d.kvmIn.reset()
	go func() { _, _ = io.Copy(&d.kvmIn, br) }()
	buf := make([]byte, 4096)
	var off uint64
	for {
		KVMPattern(buf, off)
		if _, err := w.Write(buf); err != nil {
			return err
		}
		off += uint64(len(buf))
	}
}

// serveIDER stands in for an IDE-R session: the IDE-R protocol (disk
// commands and sectors) is not simulated, but its bytes are what the relay
// carries both ways. Console bytes are counted and hashed (IDERInput);
// each read of them is answered with as many bytes of IDERPattern, so the
// device's answer is bounded by what the console sent.
func (d *Device) serveIDER(br *bufio.Reader, w io.Writer) error {
	d.iderIn.reset()
	buf, out := make([]byte, 4096), make([]byte, 4096)
	var off uint64
	for {
		n, err := br.Read(buf)
		if n > 0 {
			_, _ = d.iderIn.Write(buf[:n])
			IDERPattern(out[:n], off)
			off += uint64(n)
			if _, werr := w.Write(out[:n]); werr != nil {
				return werr
			}
		}
		if err != nil {
			return err
		}
	}
}
