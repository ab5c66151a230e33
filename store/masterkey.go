package store

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// CredentialName is the systemd credential that carries the master key
// (LoadCredentialEncrypted=amtd-master-key:... in amtd.service).
const CredentialName = "amtd-master-key"

// masterKeySize is AES-256's key length.
const masterKeySize = 32

// masterKey is the key that seals every secret. Its bytes live in an
// anonymous mapping outside the Go heap, locked into RAM so they never reach
// swap, and are overwritten on wipe. The AES key schedule built from it by
// crypto/aes lives on the Go heap and cannot be wiped; that is a known limit.
type masterKey struct {
	mem []byte // the mmap'd page; key is mem[:32]
	id  string
}

// keyID names a master key without revealing it: the first 8 bytes of an
// HMAC of a fixed label, hex. It is stored next to every sealed value so that
// a wrong key file is told apart from a tampered database.
func keyIDOf(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("amtd master key id v1"))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// newMasterKey copies raw into locked memory. The caller wipes raw.
func newMasterKey(raw []byte) (*masterKey, error) {
	if len(raw) != masterKeySize {
		return nil, fmt.Errorf("master key is %d bytes, want %d", len(raw), masterKeySize)
	}
	mem, err := unix.Mmap(-1, 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("master key: allocate: %w", err)
	}
	if err := unix.Mlock(mem); err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("master key: mlock (raise LimitMEMLOCK= or run with CAP_IPC_LOCK): %w", err)
	}
	// Keep the key out of core dumps too.
	_ = unix.Madvise(mem, unix.MADV_DONTDUMP)
	copy(mem, raw)
	return &masterKey{mem: mem, id: keyIDOf(mem[:masterKeySize])}, nil
}

func (k *masterKey) bytes() []byte { return k.mem[:masterKeySize] }

// wipe overwrites and unmaps the key. It is safe to call twice.
func (k *masterKey) wipe() {
	if k == nil || k.mem == nil {
		return
	}
	clear(k.mem)
	unix.Munlock(k.mem)
	unix.Munmap(k.mem)
	k.mem = nil
}

// loadMasterKey reads the key from keyFile if set, else from the systemd
// credentials directory (credDir, or $CREDENTIALS_DIRECTORY when empty).
func loadMasterKey(keyFile, credDir string) (*masterKey, error) {
	path := keyFile
	if path == "" {
		if credDir == "" {
			credDir = os.Getenv("CREDENTIALS_DIRECTORY")
		}
		if credDir == "" {
			return nil, errors.New("no master key: set KeyFile= in [Store], or run under systemd with " +
				"LoadCredentialEncrypted=" + CredentialName + ":... (which sets $CREDENTIALS_DIRECTORY)")
		}
		path = filepath.Join(credDir, CredentialName)
	}
	return readKeyFile(path)
}

// readKeyFile reads a key file: 32 raw bytes, or 64 hex characters with
// optional surrounding white space. A file others may read is refused.
func readKeyFile(path string) (*masterKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("master key %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("master key %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("master key %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("master key %s: mode %04o lets group or others read it; run: chmod 600 %s", path, perm, path)
	}
	// Anything longer than hex plus a little white space is not a key file;
	// read one byte more than that to tell.
	buf := make([]byte, 2*masterKeySize+16)
	defer clear(buf)
	n, err := readFull(f, buf)
	if err != nil {
		return nil, fmt.Errorf("master key %s: %w", path, err)
	}
	raw, err := parseKey(buf[:n])
	if err != nil {
		return nil, fmt.Errorf("master key %s: %w", path, err)
	}
	defer clear(raw)
	return newMasterKey(raw)
}

// readFull reads the whole key file into buf; a file that fills buf is too
// long to be a key.
func readFull(f *os.File, buf []byte) (int, error) {
	n, err := io.ReadFull(f, buf)
	switch {
	case err == nil:
		return n, errors.New("longer than a key file can be (32 raw bytes or 64 hex characters)")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return n, nil
	default:
		return n, err
	}
}

// parseKey accepts 32 raw bytes or 64 hex characters. The result is a new
// slice the caller wipes.
func parseKey(b []byte) ([]byte, error) {
	if len(b) == masterKeySize {
		// 32 bytes that are all hex digits would be a truncated hex key;
		// a random raw key is that only with negligible probability.
		if !isHex(b) {
			return append([]byte(nil), b...), nil
		}
	}
	t := strings.TrimSpace(string(b))
	if len(t) == 2*masterKeySize && isHex([]byte(t)) {
		raw := make([]byte, masterKeySize)
		if _, err := hex.Decode(raw, []byte(t)); err != nil {
			return nil, fmt.Errorf("bad hex: %w", err)
		}
		return raw, nil
	}
	return nil, fmt.Errorf("holds %d bytes; want 32 raw bytes or 64 hex characters (make one with 'amtd store init --generate-key')", len(b))
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// GenerateKeyFile writes a new random master key to path as 64 hex
// characters, mode 0600. It refuses to overwrite an existing file.
func GenerateKeyFile(path string) error {
	raw := make([]byte, masterKeySize)
	defer clear(raw)
	if _, err := rand.Read(raw); err != nil {
		return fmt.Errorf("generate key %s: %w", path, err)
	}
	text := make([]byte, 2*masterKeySize+1)
	defer clear(text)
	hex.Encode(text, raw)
	text[len(text)-1] = '\n'

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("generate key %s: %w", path, err)
	}
	if _, err := f.Write(text); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("generate key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("generate key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("generate key %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
