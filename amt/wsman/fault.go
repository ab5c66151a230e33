package wsman

import (
	"fmt"
	"strings"
)

// Fault is a SOAP fault (spec/wsman.md §5), reported as an error naming the
// class and action of the call that failed.
type Fault struct {
	Class  string // e.g. AMT_GeneralSettings (from the request, or the response's ResourceURI)
	Action string // the request's action or method, e.g. "Get", "Setup"
	Code   string // Code/Value, e.g. "a:Sender"
	// Subcode is Code/Subcode/Value, e.g. "b:DestinationUnreachable" or
	// "e:AccessDenied"; the prefix is as sent.
	Subcode string
	Reason  string // Reason/Text
	Detail  string // Detail text
}

// SubcodeLocal returns the subcode without its prefix, e.g.
// "DestinationUnreachable", for callers that branch on it.
func (f *Fault) SubcodeLocal() string {
	if i := strings.IndexByte(f.Subcode, ':'); i >= 0 {
		return f.Subcode[i+1:]
	}
	return f.Subcode
}

func (f *Fault) Error() string {
	var b strings.Builder
	b.WriteString("wsman: ")
	if f.Class != "" {
		b.WriteString(f.Class)
		b.WriteByte(' ')
	}
	if f.Action != "" {
		b.WriteString(f.Action)
		b.WriteByte(' ')
	}
	b.WriteString("fault")
	if f.Subcode != "" {
		fmt.Fprintf(&b, " %s", clip(f.Subcode))
	} else if f.Code != "" {
		fmt.Fprintf(&b, " %s", clip(f.Code))
	}
	if f.Reason != "" {
		fmt.Fprintf(&b, ": %s", clip(f.Reason))
	}
	if f.Detail != "" {
		fmt.Fprintf(&b, " (detail: %s)", clip(f.Detail))
	}
	return b.String()
}

func parseFault(n *node, m *Message) *Fault {
	f := &Fault{Class: m.Class()}
	if code := n.child(NSSOAP, "Code"); code != nil {
		if v := code.child(NSSOAP, "Value"); v != nil {
			f.Code = strings.TrimSpace(v.textValue())
		}
		if sc := code.child(NSSOAP, "Subcode"); sc != nil {
			if v := sc.child(NSSOAP, "Value"); v != nil {
				f.Subcode = strings.TrimSpace(v.textValue())
			}
		}
	}
	if r := n.child(NSSOAP, "Reason"); r != nil {
		if t := r.child(NSSOAP, "Text"); t != nil {
			f.Reason = strings.TrimSpace(t.textValue())
		}
	}
	if d := n.child(NSSOAP, "Detail"); d != nil {
		f.Detail = strings.TrimSpace(allText(d))
	}
	return f
}

// allText concatenates the text of a node and its descendants, separated
// by spaces, for fault details that nest elements.
func allText(n *node) string {
	parts := []string{strings.TrimSpace(n.textValue())}
	for _, k := range n.kids {
		parts = append(parts, allText(k))
	}
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, " ")
}
