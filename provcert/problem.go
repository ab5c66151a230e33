package provcert

import (
	"fmt"
	"strings"
)

// Check names one check of spec/activation.md §12, for callers that branch
// on what failed.
type Check string

// The checks, in the order Check runs them.
const (
	CheckDecode     Check = "decode"      // the file opens with the password (§12.1)
	CheckKey        Check = "key"         // the key is RSA and belongs to a certificate in the file (§12.1)
	CheckServerAuth Check = "server-auth" // the leaf has the serverAuth EKU (§12.2)
	CheckPurpose    Check = "amt-purpose" // the leaf has the AMT provisioning OID or OU (§12.2)
	CheckSignature  Check = "sha2"        // SHA-2 signatures on every certificate (§12.3)
	CheckKeySize    Check = "rsa-size"    // RSA keys of 2048 bits or more (§12.4)
	CheckValidity   Check = "validity"    // inside NotBefore..NotAfter (§12.5)
	CheckChain      Check = "chain"       // each certificate signed by the next (§12.6)
	CheckRoot       Check = "root"        // a self-signed root ends the chain (§12.6, §12.8)
	CheckDomain     Check = "domain"      // the leaf CN matches the suffix (§12.7, §13)
)

// Severity tells a Problem that refuses the certificate from a warning.
type Severity int

// Severities.
const (
	Error   Severity = iota // the certificate cannot activate devices for this domain
	Warning                 // it may, but a source disagrees or something is unverified
)

// Problem is one finding: which check, how bad, and one sentence saying
// what is wrong and how to fix it. It never holds key material or the
// password.
type Problem struct {
	Check    Check
	Severity Severity
	Msg      string
}

func (p Problem) Error() string { return p.Msg }

func problem(c Check, format string, args ...any) Problem {
	return Problem{Check: c, Severity: Error, Msg: fmt.Sprintf(format, args...)}
}

func warning(c Check, format string, args ...any) Problem {
	return Problem{Check: c, Severity: Warning, Msg: fmt.Sprintf(format, args...)}
}

// Problems is every finding of a check run. As an error it reads as the
// sentences joined.
type Problems []Problem

func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.Msg
	}
	return strings.Join(s, "; ")
}

// Errors are the problems that refuse the certificate.
func (ps Problems) Errors() Problems { return ps.only(Error) }

// Warnings are the rest.
func (ps Problems) Warnings() Problems { return ps.only(Warning) }

func (ps Problems) only(s Severity) Problems {
	var out Problems
	for _, p := range ps {
		if p.Severity == s {
			out = append(out, p)
		}
	}
	return out
}

// Err is nil when no problem refuses the certificate, else the errors.
func (ps Problems) Err() error {
	if e := ps.Errors(); len(e) > 0 {
		return e
	}
	return nil
}

// Has reports whether a problem of check c is among ps.
func (ps Problems) Has(c Check) bool {
	for _, p := range ps {
		if p.Check == c {
			return true
		}
	}
	return false
}
