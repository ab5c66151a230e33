package wsman

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits on what the parser accepts from the network. AMT's largest bodies
// (a Pull of certificates or an audit-log page) are tens of kilobytes.
const (
	MaxEnvelopeBytes = 4 << 20 // reject bodies over 4 MiB before parsing
	maxDepth         = 32      // fixtures nest 9 deep; a hostile body cannot recurse further
	maxElements      = 65536   // bounds the tree built from one body
)

// ErrTooLarge and ErrTooDeep are wrapped by parse errors for hostile sizes.
var (
	ErrTooLarge = errors.New("wsman: envelope over 4 MiB")
	ErrTooDeep  = errors.New("wsman: envelope nests too deep or has too many elements")
)

// Kind says what a parsed body holds.
type Kind int

// Body kinds.
const (
	KindEmpty            Kind = iota // <Body/>: Delete and some Put responses, Get/Delete requests
	KindInstance                     // one or more class instances: Get/Put responses, Put/Create requests
	KindPull                         // PullResponse: Items, EnumerationContext, EndOfSequence
	KindEnumerate                    // EnumerateResponse: EnumerationContext
	KindMethod                       // a method's _OUTPUT (response) or _INPUT (request), or bare properties
	KindCreated                      // transfer ResourceCreated: the new instance's EPR
	KindFault                        // SOAP fault
	KindEnumerateRequest             // Enumerate request
	KindPullRequest                  // Pull request
)

var kindNames = [...]string{"empty", "instance", "pull", "enumerate", "method", "created", "fault", "enumerate-request", "pull-request"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Header holds the SOAP header fields amtd uses.
type Header struct {
	Action           string
	To               string
	ResourceURI      string
	MessageID        string
	RelatesTo        string
	ReplyTo          string
	OperationTimeout string
	Selectors        []Selector
}

// Message is a parsed envelope, request or response.
type Message struct {
	Header Header
	Kind   Kind
	// Instances: Get/Put responses and Put/Create request bodies (one), or
	// Pull items (any number, any classes).
	Instances []Instance
	// Method is the _OUTPUT or _INPUT element (and bare body properties).
	Method *Instance
	// EnumerationContext of an Enumerate or Pull response, or Pull request.
	EnumerationContext string
	EndOfSequence      bool
	// MaxElements of a Pull request ("" when absent).
	MaxElements string
	Created     *EPR
	Fault       *Fault
}

// Class returns the class the message is about, from the ResourceURI header.
func (m *Message) Class() string { return ClassFromURI(m.Header.ResourceURI) }

// node is the bounded DOM the parser builds.
type node struct {
	name  xml.Name
	attrs []xml.Attr
	text  strings.Builder
	kids  []*node
}

func (n *node) local() string { return n.name.Local }

func (n *node) is(space, local string) bool { return n.name.Space == space && n.name.Local == local }

func (n *node) child(space, local string) *node {
	for _, k := range n.kids {
		if k.is(space, local) {
			return k
		}
	}
	return nil
}

func (n *node) textValue() string { return n.text.String() }

func (n *node) attr(local string) (string, bool) {
	for _, a := range n.attrs {
		if a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// parseTree parses body into a tree, enforcing the size, depth and element
// limits before they can cost memory.
func parseTree(body []byte) (*node, error) {
	if len(body) > MaxEnvelopeBytes {
		return nil, fmt.Errorf("%w (%d bytes)", ErrTooLarge, len(body))
	}
	// Some senders put whitespace before the XML declaration.
	d := xml.NewDecoder(bytes.NewReader(bytes.TrimLeft(body, " \t\r\n")))
	d.Strict = true
	d.CharsetReader = func(charset string, r io.Reader) (io.Reader, error) {
		// AMT declares UTF-8 in any case; anything else we do not convert.
		if strings.EqualFold(charset, "utf-8") || strings.EqualFold(charset, "utf8") {
			return r, nil
		}
		return nil, fmt.Errorf("charset %q is not UTF-8", clip(charset))
	}
	var root *node
	var stack []*node
	count := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("wsman: malformed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			count++
			if len(stack) >= maxDepth || count > maxElements {
				return nil, ErrTooDeep
			}
			n := &node{name: t.Name}
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" && a.Name.Space == "" {
					continue
				}
				n.attrs = append(n.attrs, a)
			}
			if len(stack) == 0 {
				if root != nil {
					return nil, errors.New("wsman: malformed XML: more than one root element")
				}
				root = n
			} else {
				p := stack[len(stack)-1]
				p.kids = append(p.kids, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text.Write(t)
			} else if len(bytes.TrimSpace(t)) > 0 {
				return nil, errors.New("wsman: malformed XML: text outside the root element")
			}
		case xml.Directive:
			// A DOCTYPE could declare entities; AMT never sends one.
			return nil, errors.New("wsman: XML directives (DOCTYPE) are not accepted")
		}
	}
	if root == nil {
		return nil, errors.New("wsman: empty document")
	}
	if !root.is(NSSOAP, "Envelope") {
		return nil, fmt.Errorf("wsman: root element is {%s}%s, not a SOAP 1.2 Envelope", clip(root.name.Space), clip(root.name.Local))
	}
	return root, nil
}

// ParseResponse parses a response envelope. A SOAP fault gives a Message
// with Kind KindFault and a *Fault error naming the class and action.
func ParseResponse(body []byte) (*Message, error) {
	m, err := parse(body)
	if err != nil {
		return nil, err
	}
	if m.Fault != nil {
		return m, m.Fault
	}
	return m, nil
}

// ParseRequest parses a request envelope: action, resource URI, selectors,
// message id, and the body (an instance for Put/Create, the _INPUT of a
// method, or Enumerate/Pull parameters). The simulator uses it.
func ParseRequest(body []byte) (*Message, error) {
	m, err := parse(body)
	if err != nil {
		return nil, err
	}
	if m.Header.Action == "" {
		return nil, errors.New("wsman: request has no Action header")
	}
	if m.Header.ResourceURI == "" && m.Kind != KindPullRequest {
		return nil, fmt.Errorf("wsman: request %s has no ResourceURI header", clip(m.Header.Action))
	}
	return m, nil
}

func parse(body []byte) (*Message, error) {
	root, err := parseTree(body)
	if err != nil {
		return nil, err
	}
	m := &Message{}
	if h := root.child(NSSOAP, "Header"); h != nil {
		parseHeader(h, &m.Header)
	}
	b := root.child(NSSOAP, "Body")
	if b == nil {
		return nil, errors.New("wsman: envelope has no Body")
	}
	if err := parseBody(b, m); err != nil {
		return nil, err
	}
	return m, nil
}

func parseHeader(h *node, out *Header) {
	for _, k := range h.kids {
		v := strings.TrimSpace(k.textValue())
		switch {
		case k.is(NSAddressing, "Action"):
			out.Action = v
		case k.is(NSAddressing, "To"):
			out.To = v
		case k.is(NSAddressing, "MessageID"):
			out.MessageID = v
		case k.is(NSAddressing, "RelatesTo"):
			out.RelatesTo = v
		case k.is(NSAddressing, "ReplyTo"):
			if a := k.child(NSAddressing, "Address"); a != nil {
				out.ReplyTo = strings.TrimSpace(a.textValue())
			}
		case k.is(NSWSMan, "ResourceURI"):
			out.ResourceURI = v
		case k.is(NSWSMan, "OperationTimeout"):
			out.OperationTimeout = v
		case k.is(NSWSMan, "SelectorSet"):
			out.Selectors = parseSelectors(k)
		}
	}
}

func parseSelectors(set *node) []Selector {
	var out []Selector
	for _, s := range set.kids {
		if s.local() != "Selector" {
			continue
		}
		name, _ := s.attr("Name")
		sel := Selector{Name: name}
		if ref := s.child(NSAddressing, "EndpointReference"); ref != nil {
			sel.EPR = parseEPR(ref)
		} else {
			sel.Value = s.textValue()
		}
		out = append(out, sel)
	}
	return out
}

// isEPR reports whether n holds an endpoint reference: an Address and/or
// ReferenceParameters in the addressing namespace and nothing else.
func isEPR(n *node) bool {
	if len(n.kids) == 0 {
		return false
	}
	for _, k := range n.kids {
		if !k.is(NSAddressing, "Address") && !k.is(NSAddressing, "ReferenceParameters") {
			return false
		}
	}
	return true
}

func parseEPR(n *node) *EPR {
	e := &EPR{}
	if a := n.child(NSAddressing, "Address"); a != nil {
		e.Address = strings.TrimSpace(a.textValue())
	}
	if rp := n.child(NSAddressing, "ReferenceParameters"); rp != nil {
		if r := rp.child(NSWSMan, "ResourceURI"); r != nil {
			e.ResourceURI = strings.TrimSpace(r.textValue())
		}
		if s := rp.child(NSWSMan, "SelectorSet"); s != nil {
			e.Selectors = parseSelectors(s)
		}
	}
	return e
}

func parseInstance(n *node) Instance {
	in := Instance{Class: n.local(), Namespace: n.name.Space}
	in.Props = parseProps(n.kids)
	return in
}

func parseProps(kids []*node) []Property {
	props := make([]Property, 0, len(kids))
	for _, k := range kids {
		props = append(props, parseProp(k))
	}
	return props
}

func parseProp(k *node) Property {
	p := Property{Name: k.local(), Namespace: k.name.Space}
	switch {
	case isEPR(k):
		p.EPR = parseEPR(k)
	case len(k.kids) == 1 && k.kids[0].is(NSAddressing, "EndpointReference"):
		p.EPR = parseEPR(k.kids[0])
	case len(k.kids) > 0:
		p.Fields = parseProps(k.kids)
	default:
		p.Value = k.textValue()
		if v, ok := k.attr("nil"); ok && v == "true" {
			p.Nil = true
		}
	}
	return p
}

func parseBody(b *node, m *Message) error {
	if len(b.kids) == 0 {
		m.Kind = KindEmpty
		return nil
	}
	first := b.kids[0]
	switch {
	case first.is(NSSOAP, "Fault"):
		m.Kind = KindFault
		m.Fault = parseFault(first, m)
	case first.is(NSEnumeration, "EnumerateResponse"):
		m.Kind = KindEnumerate
		if c := first.child(NSEnumeration, "EnumerationContext"); c != nil {
			m.EnumerationContext = strings.TrimSpace(c.textValue())
		}
	case first.is(NSEnumeration, "PullResponse"):
		m.Kind = KindPull
		for _, k := range first.kids {
			switch {
			case k.is(NSEnumeration, "EnumerationContext"):
				m.EnumerationContext = strings.TrimSpace(k.textValue())
			case k.is(NSEnumeration, "EndOfSequence"):
				m.EndOfSequence = true
			case k.is(NSEnumeration, "Items"):
				for _, it := range k.kids {
					m.Instances = append(m.Instances, parseInstance(it))
				}
			}
		}
	case first.is(NSEnumeration, "Enumerate"):
		m.Kind = KindEnumerateRequest
	case first.is(NSEnumeration, "Pull"):
		m.Kind = KindPullRequest
		if c := first.child(NSEnumeration, "EnumerationContext"); c != nil {
			m.EnumerationContext = strings.TrimSpace(c.textValue())
		}
		if c := first.child(NSEnumeration, "MaxElements"); c != nil {
			m.MaxElements = strings.TrimSpace(c.textValue())
		}
	case first.is(NSTransfer, "ResourceCreated"):
		m.Kind = KindCreated
		m.Created = parseEPR(first)
	case strings.HasSuffix(first.local(), "_OUTPUT") || strings.HasSuffix(first.local(), "_INPUT"):
		m.Kind = KindMethod
		in := parseInstance(first)
		m.Method = &in
	case len(first.kids) == 0:
		// Bare properties directly in the Body, e.g. a Delete answered with
		// <g:ReturnValue>0</g:ReturnValue> (cim/wifi/endpointsettings).
		m.Kind = KindMethod
		m.Method = &Instance{Namespace: first.name.Space, Props: parseProps(b.kids)}
	default:
		m.Kind = KindInstance
		for _, k := range b.kids {
			m.Instances = append(m.Instances, parseInstance(k))
		}
	}
	return nil
}
