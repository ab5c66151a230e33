// Package password applies AMT's password rule and generates passwords
// that satisfy it (spec/activation.md §11).
package password

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"

	"amtd/secret"
)

// Check applies the AMT admin and MEBx rule (spec/activation.md §11): 8–32
// characters of 7-bit ASCII 32–126 without : , ", with a digit, a
// lower-case and an upper-case letter, and a non-alphanumeric character
// other than _ and space. The error never quotes the password.
func Check(p string) error {
	if len(p) < 8 || len(p) > 32 {
		return fmt.Errorf("password has %d characters; AMT takes 8–32", len(p))
	}
	var digit, lower, upper, special bool
	for _, c := range []byte(p) {
		switch {
		case c < 32 || c > 126:
			return fmt.Errorf("password has a byte 0x%02x outside printable ASCII", c)
		case c == ':' || c == ',' || c == '"':
			return fmt.Errorf("password contains %q, which AMT forbids", c)
		case c >= '0' && c <= '9':
			digit = true
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= 'A' && c <= 'Z':
			upper = true
		case c == '_' || c == ' ':
		default:
			special = true
		}
	}
	if !digit || !lower || !upper || !special {
		return errors.New("password needs a digit, a lower-case and an upper-case letter, and a symbol other than _ and space")
	}
	return nil
}

// The amtd generator's classes (spec/activation.md §11): never : , " ' < > &
// or space, which some MEBx UIs refuse.
const (
	uppers   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	lowers   = "abcdefghijklmnopqrstuvwxyz"
	digits   = "0123456789"
	specials = "!@#$%^*"
	alphabet = uppers + lowers + digits + specials
)

// Generate returns a random password of n characters (16–32) from
// crypto/rand, with one character of each class at random positions.
// CIRA (MPS) passwords are 16: AddMpServer takes no more.
func Generate(n int) (secret.Value, error) {
	if n < 16 || n > 32 {
		return secret.Value{}, fmt.Errorf("password length %d: amtd generates 16–32", n)
	}
	b := make([]byte, n)
	defer clear(b)
	for i := range b {
		c, err := pick(alphabet)
		if err != nil {
			return secret.Value{}, err
		}
		b[i] = c
	}
	// One of each class at distinct random positions.
	pos := make([]int, n)
	for i := range pos {
		pos[i] = i
	}
	for i, class := range []string{uppers, lowers, digits, specials} {
		j, err := rand.Int(rand.Reader, big.NewInt(int64(n-i)))
		if err != nil {
			return secret.Value{}, err
		}
		k := i + int(j.Int64())
		pos[i], pos[k] = pos[k], pos[i]
		c, err := pick(class)
		if err != nil {
			return secret.Value{}, err
		}
		b[pos[i]] = c
	}
	return secret.New(b), nil
}

func pick(from string) (byte, error) {
	i, err := rand.Int(rand.Reader, big.NewInt(int64(len(from))))
	if err != nil {
		return 0, err
	}
	return from[i.Int64()], nil
}
