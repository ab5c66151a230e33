package config

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong in a configuration file, at one line.
type Problem struct {
	File string
	Line int // 0 when the problem is the file as a whole (it cannot be read)
	Msg  string
	Err  error // the underlying error, if any (an *fs.PathError for an unreadable file)
}

// Error is "FILE:LINE: message", or "FILE: message" without a line, the shape
// editors and `nginx -t` users expect.
func (p *Problem) Error() string {
	if p.Line == 0 {
		return fmt.Sprintf("%s: %s", p.File, p.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
}

func (p *Problem) Unwrap() error { return p.Err }

// Errors is every problem found in one file, in line order. Parse and Load
// return it, never a bare first error: an admin fixes a file in one pass.
type Errors struct {
	Problems []*Problem
	// Warnings are things that are allowed but probably not meant. They are
	// not part of Error(); `amtd check-config` prints them too.
	Warnings []*Problem
}

// Error joins the problems, one per line.
func (e *Errors) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap returns the problems, so errors.As finds a *Problem and callers that
// list joined errors (daemon reload) get one message per problem.
func (e *Errors) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}
