package wsman

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
)

// Action URIs (spec/wsman.md §4).
const (
	ActionGet       = NSTransfer + "/Get"
	ActionPut       = NSTransfer + "/Put"
	ActionCreate    = NSTransfer + "/Create"
	ActionDelete    = NSTransfer + "/Delete"
	ActionEnumerate = NSEnumeration + "/Enumerate"
	ActionPull      = NSEnumeration + "/Pull"
	ActionFault     = NSAddressing + "/fault"
)

// Request is one built request envelope with what an error about it needs.
type Request struct {
	Class     string // e.g. AMT_GeneralSettings
	Operation string // Get, Put, Create, Delete, Enumerate, Pull, or the method name
	MessageID uint64
	Body      []byte // the envelope, one line, no whitespace between elements
}

// Builder builds request envelopes in go-wsman-messages' exact shape
// (spec/wsman.md §3). MessageID is a per-builder counter from 0; safe for
// concurrent use.
type Builder struct {
	next atomic.Uint64
}

// Get builds a transfer Get; singletons need no selectors.
func (b *Builder) Get(class string, sel ...Selector) (*Request, error) {
	return b.build(class, "Get", ActionGet, sel, "")
}

// Delete builds a transfer Delete with the key selectors.
func (b *Builder) Delete(class string, sel ...Selector) (*Request, error) {
	if len(sel) == 0 {
		return nil, fmt.Errorf("wsman: Delete %s needs a key selector", class)
	}
	return b.build(class, "Delete", ActionDelete, sel, "")
}

// Put builds a transfer Put of body (normally EncodeWritable of a struct
// read with Get). Body properties go out in the order given.
func (b *Builder) Put(class string, body Instance, sel ...Selector) (*Request, error) {
	return b.buildInstance(class, "Put", ActionPut, body, sel)
}

// Create builds a transfer Create of body.
func (b *Builder) Create(class string, body Instance) (*Request, error) {
	return b.buildInstance(class, "Create", ActionCreate, body, nil)
}

// Enumerate builds an Enumerate.
func (b *Builder) Enumerate(class string) (*Request, error) {
	return b.build(class, "Enumerate", ActionEnumerate, nil, `<Enumerate xmlns="`+NSEnumeration+`" />`)
}

// Pull builds a Pull for an enumeration context, asking for up to 999
// items as go-wsman-messages and RPS do (spec/wsman.md §4).
func (b *Builder) Pull(class, context string) (*Request, error) {
	body := `<Pull xmlns="` + NSEnumeration + `"><EnumerationContext>` + escapeText(context) +
		`</EnumerationContext><MaxElements>999</MaxElements><MaxCharacters>99999</MaxCharacters></Pull>`
	return b.build(class, "Pull", ActionPull, nil, body)
}

// Invoke builds a method call: action {uri}/{method}, body
// <h:{method}_INPUT xmlns:h="{uri}"> with the parameters in the order given
// (the class schema's order; "field order matters in practice").
func (b *Builder) Invoke(class, method string, params []Property, sel ...Selector) (*Request, error) {
	uri, err := ResourceURI(class)
	if err != nil {
		return nil, err
	}
	if !validName(method) {
		return nil, fmt.Errorf("wsman: method name %q is not an XML name", clip(method))
	}
	var w strings.Builder
	in := Instance{Class: method + "_INPUT", Namespace: uri, Props: params}
	if err := writeRequestInstance(&w, in, true); err != nil {
		return nil, fmt.Errorf("wsman: %s.%s: %w", class, method, err)
	}
	return b.build(class, method, uri+"/"+method, sel, w.String())
}

// RequestStateChange builds the common CIM method with one RequestedState.
func (b *Builder) RequestStateChange(class string, state int) (*Request, error) {
	uri, err := ResourceURI(class)
	if err != nil {
		return nil, err
	}
	return b.Invoke(class, "RequestStateChange", []Property{{Name: "RequestedState", Namespace: uri, Value: strconv.Itoa(state)}})
}

func (b *Builder) buildInstance(class, op, action string, body Instance, sel []Selector) (*Request, error) {
	uri, err := ResourceURI(class)
	if err != nil {
		return nil, err
	}
	if body.Class == "" {
		body.Class = class
	}
	if body.Namespace == "" {
		body.Namespace = uri
	}
	var w strings.Builder
	if err := writeRequestInstance(&w, body, false); err != nil {
		return nil, fmt.Errorf("wsman: %s %s: %w", op, class, err)
	}
	return b.build(class, op, action, sel, w.String())
}

const envelopeStart = `<?xml version="1.0" encoding="utf-8"?><Envelope xmlns:xsi="` + NSXSI + `" xmlns:xsd="` + NSXSD +
	`" xmlns:a="` + NSAddressing + `" xmlns:w="` + NSWSMan + `" xmlns="` + NSSOAP + `"><Header>`

func (b *Builder) build(class, op, action string, sel []Selector, body string) (*Request, error) {
	uri, err := ResourceURI(class)
	if err != nil {
		return nil, err
	}
	id := b.next.Add(1) - 1
	var w strings.Builder
	w.Grow(len(envelopeStart) + 512 + len(body))
	w.WriteString(envelopeStart)
	w.WriteString("<a:Action>" + escapeText(action) + "</a:Action><a:To>/wsman</a:To><w:ResourceURI>" + escapeText(uri) +
		"</w:ResourceURI><a:MessageID>" + strconv.FormatUint(id, 10) + "</a:MessageID><a:ReplyTo><a:Address>" + AnonymousAddress +
		"</a:Address></a:ReplyTo><w:OperationTimeout>PT60S</w:OperationTimeout>")
	if len(sel) > 0 {
		w.WriteString("<w:SelectorSet>")
		for _, s := range sel {
			if err := writeSelector(&w, "w:", s); err != nil {
				return nil, fmt.Errorf("wsman: %s %s: %w", op, class, err)
			}
		}
		w.WriteString("</w:SelectorSet>")
	}
	w.WriteString("</Header><Body>" + body + "</Body></Envelope>")
	return &Request{Class: class, Operation: op, MessageID: id, Body: []byte(w.String())}, nil
}

// writeSelector writes <{p}Selector Name="n">v</{p}Selector>; an EPR value
// goes in the xmlns-default form go-wsman-messages uses in headers.
func writeSelector(w *strings.Builder, p string, s Selector) error {
	if !validName(s.Name) {
		return fmt.Errorf("selector name %q is not an XML name", clip(s.Name))
	}
	w.WriteString("<" + p + `Selector Name="` + escapeAttr(s.Name) + `">`)
	if s.EPR != nil {
		w.WriteString(`<EndpointReference xmlns="` + NSAddressing + `"><Address>` + escapeText(eprAddress(s.EPR)) + `</Address><ReferenceParameters>`)
		writeRefParamsXMLNS(w, s.EPR)
		w.WriteString(`</ReferenceParameters></EndpointReference>`)
	} else {
		w.WriteString(escapeText(s.Value))
	}
	w.WriteString("</" + p + "Selector>")
	return nil
}

func eprAddress(e *EPR) string {
	if e.Address == "" {
		return AnonymousAddress
	}
	return e.Address
}

// writeRefParamsXMLNS writes ResourceURI and SelectorSet with default
// namespace declarations (the form of spec/wsman.md §3 and §6 MpServer).
func writeRefParamsXMLNS(w *strings.Builder, e *EPR) {
	w.WriteString(`<ResourceURI xmlns="` + NSWSMan + `">` + escapeText(e.ResourceURI) + `</ResourceURI><SelectorSet xmlns="` + NSWSMan + `">`)
	for _, s := range e.Selectors {
		_ = writeSelector(w, "", s)
	}
	w.WriteString(`</SelectorSet>`)
}

// writeRequestInstance writes <h:{Class} xmlns:h="{ns}"> and its
// properties. EPR properties of a class body (Put/Create) use the envelope's
// a:/w: prefixes, as the AMT_TLSCredentialContext body of spec/wsman.md §6;
// EPR parameters of a method use default-namespace declarations, as
// AddRemoteAccessPolicyRule's MpServer.
func writeRequestInstance(w *strings.Builder, in Instance, method bool) error {
	if !validName(in.Class) {
		return fmt.Errorf("element name %q is not an XML name", clip(in.Class))
	}
	w.WriteString("<h:" + in.Class + ` xmlns:h="` + escapeAttr(in.Namespace) + `">`)
	if err := writeRequestProps(w, in.Props, in.Namespace, method); err != nil {
		return err
	}
	w.WriteString("</h:" + in.Class + ">")
	return nil
}

func writeRequestProps(w *strings.Builder, props []Property, ns string, method bool) error {
	for _, p := range props {
		if !validName(p.Name) {
			return fmt.Errorf("property name %q is not an XML name", clip(p.Name))
		}
		open, closeTag := "<h:"+p.Name, "</h:"+p.Name+">"
		if p.Namespace != "" && p.Namespace != ns {
			open, closeTag = "<"+p.Name+` xmlns="`+escapeAttr(p.Namespace)+`"`, "</"+p.Name+">"
		}
		switch {
		case p.Nil:
			w.WriteString(open + ` xsi:nil="true">` + closeTag)
		case p.EPR != nil:
			w.WriteString(open + ">")
			if method {
				w.WriteString(`<Address xmlns="` + NSAddressing + `">` + escapeText(eprAddress(p.EPR)) + `</Address><ReferenceParameters xmlns="` + NSAddressing + `">`)
				writeRefParamsXMLNS(w, p.EPR)
				w.WriteString(`</ReferenceParameters>`)
			} else {
				w.WriteString("<a:Address>" + escapeText(eprAddress(p.EPR)) + "</a:Address><a:ReferenceParameters><w:ResourceURI>" +
					escapeText(p.EPR.ResourceURI) + "</w:ResourceURI><w:SelectorSet>")
				for _, s := range p.EPR.Selectors {
					if err := writeSelector(w, "w:", s); err != nil {
						return err
					}
				}
				w.WriteString("</w:SelectorSet></a:ReferenceParameters>")
			}
			w.WriteString(closeTag)
		case len(p.Fields) > 0:
			// Nested elements are written as properties are, so a
			// method parameter can hold an instance with CIM dates in it
			// (AddAlarm's AlarmTemplate).
			w.WriteString(open + ">")
			if err := writeRequestProps(w, p.Fields, ns, method); err != nil {
				return err
			}
			w.WriteString(closeTag)
		default:
			w.WriteString(open + ">" + escapeText(p.Value) + closeTag)
		}
	}
	return nil
}

// escapeText escapes character data minimally, so plain values come out
// byte-identical to go-wsman-messages' requests.
func escapeText(s string) string {
	if !strings.ContainsAny(s, "&<>\r") {
		return s
	}
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\r", "&#xD;").Replace(s)
}

func escapeAttr(s string) string {
	if !strings.ContainsAny(s, "&<>\"\r\n\t") {
		return s
	}
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "\r", "&#xD;", "\n", "&#xA;", "\t", "&#x9;").Replace(s)
}

// validName accepts the XML names AMT uses: letters, digits, '_', '-', '.'
// not starting with a digit, '-' or '.'. It keeps caller strings from
// injecting markup.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}
