// Package secret holds values that must never reach a log line, an API response,
// an error message or a core dump: AMT admin, MEBx and MPS passwords, .pfx
// passwords, TSIG keys.
//
// A Value prints as "[redacted]" through fmt, slog (LogValue), encoding/json and
// encoding/text; the plain bytes come out only through Reveal, so every place
// that hands a secret to a device or a hash function is easy to find.
package secret

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
)

const redacted = "[redacted]"

// Value is a secret byte string. The zero value is the empty secret.
type Value struct{ b []byte }

// New copies b into a new Value.
func New(b []byte) Value { return Value{b: append([]byte(nil), b...)} }

// FromString returns a Value holding s.
func FromString(s string) Value { return Value{b: []byte(s)} }

// Reveal returns the secret's bytes. The caller must not log or keep them.
func (v Value) Reveal() []byte { return v.b }

// RevealString returns the secret as a string. The caller must not log it.
func (v Value) RevealString() string { return string(v.b) }

// Len returns the length in bytes.
func (v Value) Len() int { return len(v.b) }

// IsZero reports whether the secret is empty.
func (v Value) IsZero() bool { return len(v.b) == 0 }

// Equal compares in constant time (for equal lengths).
func (v Value) Equal(o Value) bool { return subtle.ConstantTimeCompare(v.b, o.b) == 1 }

// Wipe overwrites the bytes. Values that share the slice (copies of v) are wiped too.
func (v Value) Wipe() { clear(v.b) }

// String implements fmt.Stringer.
func (Value) String() string { return redacted }

// GoString implements fmt.GoStringer, so %#v does not print the bytes either.
func (Value) GoString() string { return redacted }

// LogValue implements slog.LogValuer.
func (Value) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText implements encoding.TextMarshaler (and so JSON), always redacted.
func (Value) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Format implements fmt.Formatter so that no verb (%s, %v, %x, %q) prints the bytes.
func (Value) Format(f fmt.State, verb rune) {
	f.Write([]byte(redacted))
}
