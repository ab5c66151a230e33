package dns

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"regexp"
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"

	"amtd/netsvc"
	"amtd/secret"
	"amtd/store"
)

// TSIG secrets are kept in the store (kind store.KeyTSIG) as the raw key
// bytes, sealed; `amtd dns tsig add` writes them. The wire and BIND's files
// carry them base64-encoded.

// MinTSIGKeyLen is the shortest secret accepted: RFC 8945 §6 asks for keys
// at least as long as the HMAC output; 16 bytes is the floor below which
// we refuse outright.
const MinTSIGKeyLen = 16

// tsigKeys is the miekg/dns TsigProvider of the server: the secrets of the
// keys [DNS] UpdateKey= names, swapped whole on reload.
type tsigKeys struct {
	keys atomic.Pointer[map[string][]byte] // canonical key name → secret
}

func newTSIGKeys() *tsigKeys {
	t := &tsigKeys{}
	t.replace(nil)
	return t
}

func (t *tsigKeys) replace(keys map[string][]byte) {
	if keys == nil {
		keys = map[string][]byte{}
	}
	t.keys.Store(&keys)
}

func (t *tsigKeys) secret(name string) ([]byte, bool) {
	k, ok := (*t.keys.Load())[netsvc.Canonical(name)]
	return k, ok
}

// Generate implements dns.TsigProvider.
func (t *tsigKeys) Generate(msg []byte, rr *dns.TSIG) ([]byte, error) {
	key, ok := t.secret(rr.Hdr.Name)
	if !ok {
		return nil, dns.ErrSecret
	}
	return tsigMAC(key, rr.Algorithm, msg)
}

// Verify implements dns.TsigProvider.
func (t *tsigKeys) Verify(msg []byte, rr *dns.TSIG) error {
	key, ok := t.secret(rr.Hdr.Name)
	if !ok {
		return dns.ErrSecret
	}
	want, err := tsigMAC(key, rr.Algorithm, msg)
	if err != nil {
		return err
	}
	got, err := hex.DecodeString(rr.MAC)
	if err != nil || !hmac.Equal(want, got) {
		return dns.ErrSig
	}
	return nil
}

// tsigMAC computes the HMAC of msg. Only the SHA-2 algorithms are accepted:
// hmac-md5 and hmac-sha1 are not used to authorise changes to the site's
// names.
func tsigMAC(key []byte, alg string, msg []byte) ([]byte, error) {
	var h func() hash.Hash
	switch strings.ToLower(dns.Fqdn(alg)) {
	case dns.HmacSHA224:
		h = sha256.New224
	case dns.HmacSHA256:
		h = sha256.New
	case dns.HmacSHA384:
		h = sha512.New384
	case dns.HmacSHA512:
		h = sha512.New
	default:
		return nil, dns.ErrKeyAlg
	}
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil), nil
}

// TSIGAlgorithm returns the canonical name of a TSIG algorithm given as in
// amtd.conf (hmac-sha256, default when empty), or an error.
func TSIGAlgorithm(name string) (string, error) {
	if name == "" {
		return dns.HmacSHA256, nil
	}
	alg := strings.ToLower(dns.Fqdn(name))
	if _, err := tsigMAC([]byte{0}, alg, nil); err != nil {
		return "", fmt.Errorf("TSIG algorithm %q is not hmac-sha224, hmac-sha256, hmac-sha384 or hmac-sha512", name)
	}
	return alg, nil
}

// loadTSIGKey opens the secret of the TSIG key called name from the store.
func loadTSIGKey(ctx context.Context, s *store.Store, name string) ([]byte, error) {
	for _, n := range []string{strings.TrimSuffix(name, "."), name} {
		v, err := s.Keys().Get(ctx, n)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		kind, err := s.Keys().Kind(ctx, n)
		if err != nil {
			return nil, err
		}
		if kind != store.KeyTSIG {
			return nil, fmt.Errorf("key %s in the store is a %s key, not a TSIG key", n, kind)
		}
		if v.Len() < MinTSIGKeyLen {
			return nil, fmt.Errorf("key %s is %d bytes; TSIG keys must have at least %d", n, v.Len(), MinTSIGKeyLen)
		}
		return append([]byte(nil), v.Reveal()...), nil
	}
	return nil, fmt.Errorf("no TSIG key %s in the store; add it with 'amtd dns tsig add %s --generate' (or --secret-file FILE)",
		strings.TrimSuffix(name, "."), strings.TrimSuffix(name, "."))
}

// bindSecret matches the secret of a BIND key clause, as tsig-keygen and
// rndc-confgen print it: key "name" { algorithm hmac-sha256; secret "...."; };
var bindSecret = regexp.MustCompile(`secret\s+"([^"]+)"`)

// ParseTSIGSecret reads a TSIG secret from the contents of a file: either a
// BIND key clause (tsig-keygen's output) or the bare base64 secret. It
// returns the raw key bytes.
func ParseTSIGSecret(b []byte) (secret.Value, error) {
	text := strings.TrimSpace(string(b))
	if m := bindSecret.FindStringSubmatch(text); m != nil {
		text = m[1]
	}
	if text == "" {
		return secret.Value{}, errors.New("no secret in the file: want the base64 secret, or a BIND key clause from tsig-keygen")
	}
	raw, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return secret.Value{}, errors.New("the secret is not valid base64 (want the base64 secret, or a BIND key clause from tsig-keygen)")
	}
	if len(raw) < MinTSIGKeyLen {
		return secret.Value{}, fmt.Errorf("the secret is %d bytes; TSIG keys must have at least %d (tsig-keygen makes 32)", len(raw), MinTSIGKeyLen)
	}
	v := secret.New(raw)
	clear(raw)
	return v, nil
}
