package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Errors from opening a sealed value. Each names a different cause, so an
// operator knows whether to fetch the right key file or restore a backup.
var (
	// ErrWrongKey: the loaded master key is not the one that sealed the value
	// (or the database). Use the right key file.
	ErrWrongKey = errors.New("wrong master key")
	// ErrTampered: the sealed bytes fail authentication under the right key:
	// the database was altered or is corrupt. Restore from a backup.
	ErrTampered = errors.New("sealed value fails authentication (tampered or corrupt)")
	// ErrMisplaced: the sealed value was made for another table, column or
	// row and was copied or swapped into this one.
	ErrMisplaced = errors.New("sealed value belongs to another row or column (copied or swapped)")
)

// Sealed value layout (all in one BLOB column):
//
//	[0]      format version, 1
//	[1:9]    binding tag: first 8 bytes of SHA-256 over (table, column, row)
//	[9:21]   GCM nonce, fresh from crypto/rand for every write
//	[21:]    AES-256-GCM ciphertext and 16-byte tag
//
// The associated data binds the table, column, row identity and key id, so a
// ciphertext moved anywhere else fails to open. The binding tag repeats the
// place in the clear (hashed) only so that a moved value is reported as moved
// rather than as tampered; forging the tag gains nothing, GCM still fails.
const (
	sealVersion  = 1
	bindTagLen   = 8
	nonceLen     = 12
	sealOverhead = 1 + bindTagLen + nonceLen + 16
)

// place is where a sealed value lives.
type place struct{ table, column, row string }

func (p place) String() string { return p.table + "." + p.column + " of " + p.row }

func (p place) tag() []byte {
	h := sha256.New()
	h.Write([]byte("amtd sealed place v1\x00" + p.table + "\x00" + p.column + "\x00" + p.row))
	return h.Sum(nil)[:bindTagLen]
}

func (p place) ad(keyID string) []byte {
	return []byte("amtd sealed v1\x00" + p.table + "\x00" + p.column + "\x00" + p.row + "\x00" + keyID)
}

// sealer seals and opens with one master key.
type sealer struct {
	keyID string
	aead  cipher.AEAD
}

func newSealer(k *masterKey) (*sealer, error) {
	// Seal with a key derived for this purpose, so the master key itself is
	// only ever an HMAC key.
	m := hmac.New(sha256.New, k.bytes())
	m.Write([]byte("amtd seal aes-256-gcm v1"))
	sub := m.Sum(nil)
	defer clear(sub)
	block, err := aes.NewCipher(sub)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{keyID: k.id, aead: aead}, nil
}

func (s *sealer) seal(p place, plain []byte) ([]byte, error) {
	out := make([]byte, 1+bindTagLen+nonceLen, sealOverhead+len(plain))
	out[0] = sealVersion
	copy(out[1:], p.tag())
	nonce := out[1+bindTagLen:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal %s: nonce: %w", p, err)
	}
	return s.aead.Seal(out, nonce, plain, p.ad(s.keyID)), nil
}

// open returns the plaintext of blob, sealed at p under the key keyID names.
func (s *sealer) open(p place, keyID string, blob []byte) ([]byte, error) {
	if keyID != s.keyID {
		return nil, fmt.Errorf("open %s: sealed with master key %s, but the loaded key is %s: %w", p, keyID, s.keyID, ErrWrongKey)
	}
	if len(blob) < sealOverhead || blob[0] != sealVersion {
		return nil, fmt.Errorf("open %s: malformed sealed value (%d bytes): %w", p, len(blob), ErrTampered)
	}
	if !hmac.Equal(blob[1:1+bindTagLen], p.tag()) {
		return nil, fmt.Errorf("open %s: %w", p, ErrMisplaced)
	}
	nonce := blob[1+bindTagLen : 1+bindTagLen+nonceLen]
	plain, err := s.aead.Open(nil, nonce, blob[1+bindTagLen+nonceLen:], p.ad(keyID))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, ErrTampered)
	}
	return plain, nil
}
