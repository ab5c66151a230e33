package wsman

import (
	"fmt"
	"strings"
)

// Reply addresses a response: the simulator fills it from the request it
// answers (ReplyTo).
type Reply struct {
	Action      string // full action URI of the response
	RelatesTo   string // the request's MessageID
	ResourceURI string
	MessageID   uint64 // rendered as uuid:00000000-8086-8086-8086-XXXXXXXXXXXX, as AMT does
}

// ReplyTo addresses the answer to req: action {request action}Response,
// RelatesTo the request's MessageID.
func ReplyTo(req *Message, id uint64) Reply {
	return Reply{Action: req.Header.Action + "Response", RelatesTo: req.Header.MessageID, ResourceURI: req.Header.ResourceURI, MessageID: id}
}

// respWriter writes a response envelope in AMT's shape: a: SOAP, b:
// addressing, c: wsman, d–f the other namespaces AMT declares, then g, h, …
// for body namespaces in order of first use (spec/wsman.md §5).
type respWriter struct {
	prefixes map[string]string
	order    []string
	body     strings.Builder
}

var fixedPrefixes = []struct{ p, ns string }{
	{"a", NSSOAP}, {"b", NSAddressing}, {"c", NSWSMan}, {"d", nsTrust}, {"e", nsWSSecurity}, {"f", nsCIMBinding},
}

func newRespWriter() *respWriter {
	w := &respWriter{prefixes: map[string]string{}}
	for _, f := range fixedPrefixes {
		w.prefixes[f.ns] = f.p
	}
	return w
}

// prefix returns the prefix for ns, allocating g, h, … on first use.
func (w *respWriter) prefix(ns string) string {
	if p, ok := w.prefixes[ns]; ok {
		return p
	}
	n := len(w.order)
	var p string
	if n < 17 { // g … w
		p = string(rune('g' + n))
	} else {
		p = fmt.Sprintf("n%d", n)
	}
	w.prefixes[ns] = p
	w.order = append(w.order, ns)
	return p
}

func (w *respWriter) instance(in Instance) {
	p := w.prefix(in.Namespace)
	name := safeName(in.Class)
	w.body.WriteString("<" + p + ":" + name + ">")
	w.props(in.Props, in.Namespace)
	w.body.WriteString("</" + p + ":" + name + ">")
}

func (w *respWriter) props(props []Property, ns string) {
	for _, pr := range props {
		pns := pr.Namespace
		if pns == "" {
			pns = ns
		}
		tag := w.prefix(pns) + ":" + safeName(pr.Name)
		switch {
		case pr.Nil:
			w.body.WriteString("<" + tag + ` xsi:nil="true"></` + tag + ">")
		case pr.EPR != nil:
			w.body.WriteString("<" + tag + ">")
			w.epr(pr.EPR)
			w.body.WriteString("</" + tag + ">")
		case len(pr.Fields) > 0:
			w.body.WriteString("<" + tag + ">")
			w.props(pr.Fields, pns)
			w.body.WriteString("</" + tag + ">")
		default:
			w.body.WriteString("<" + tag + ">" + escapeText(pr.Value) + "</" + tag + ">")
		}
	}
}

func (w *respWriter) epr(e *EPR) {
	w.body.WriteString("<b:Address>" + escapeText(e.Address) + "</b:Address><b:ReferenceParameters><c:ResourceURI>" +
		escapeText(e.ResourceURI) + "</c:ResourceURI><c:SelectorSet>")
	for _, s := range e.Selectors {
		w.body.WriteString(`<c:Selector Name="` + escapeAttr(s.Name) + `">`)
		if s.EPR != nil {
			w.body.WriteString("<b:EndpointReference>")
			w.epr(s.EPR)
			w.body.WriteString("</b:EndpointReference>")
		} else {
			w.body.WriteString(escapeText(s.Value))
		}
		w.body.WriteString("</c:Selector>")
	}
	w.body.WriteString("</c:SelectorSet></b:ReferenceParameters>")
}

func (w *respWriter) envelope(r Reply) []byte {
	var b strings.Builder
	b.Grow(w.body.Len() + 1200)
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><a:Envelope`)
	for _, f := range fixedPrefixes {
		b.WriteString(` xmlns:` + f.p + `="` + f.ns + `"`)
	}
	for _, ns := range w.order {
		b.WriteString(` xmlns:` + w.prefixes[ns] + `="` + escapeAttr(ns) + `"`)
	}
	b.WriteString(` xmlns:xsi="` + NSXSI + `"><a:Header><b:To>` + AnonymousAddress + `</b:To><b:RelatesTo>` + escapeText(r.RelatesTo) +
		`</b:RelatesTo><b:Action a:mustUnderstand="true">` + escapeText(r.Action) + `</b:Action><b:MessageID>` +
		fmt.Sprintf("uuid:00000000-8086-8086-8086-%012X", r.MessageID&0xFFFFFFFFFFFF) + `</b:MessageID>`)
	if r.ResourceURI != "" {
		b.WriteString(`<c:ResourceURI>` + escapeText(r.ResourceURI) + `</c:ResourceURI>`)
	}
	b.WriteString(`</a:Header><a:Body>` + w.body.String() + `</a:Body></a:Envelope>`)
	return []byte(b.String())
}

// safeName keeps a writer from emitting markup from a hostile element name
// (names normally come from our own structs or a parsed document).
func safeName(s string) string {
	if validName(s) {
		return s
	}
	return "Invalid"
}

// WriteGetResponse writes a Get (or Put) response carrying one instance.
func WriteGetResponse(r Reply, in Instance) []byte {
	w := newRespWriter()
	w.instance(in)
	return w.envelope(r)
}

// WriteEmptyResponse writes a response with an empty body (Delete, and Put
// on some classes).
func WriteEmptyResponse(r Reply) []byte {
	return newRespWriter().envelope(r)
}

// WriteEnumerateResponse writes an EnumerateResponse with its context.
func WriteEnumerateResponse(r Reply, context string) []byte {
	w := newRespWriter()
	g := w.prefix(NSEnumeration)
	w.body.WriteString("<" + g + ":EnumerateResponse><" + g + ":EnumerationContext>" + escapeText(context) +
		"</" + g + ":EnumerationContext></" + g + ":EnumerateResponse>")
	return w.envelope(r)
}

// WritePullResponse writes a PullResponse with items (any classes). With
// end, it carries EndOfSequence; otherwise the context to pull again.
func WritePullResponse(r Reply, items []Instance, context string, end bool) []byte {
	w := newRespWriter()
	g := w.prefix(NSEnumeration)
	w.body.WriteString("<" + g + ":PullResponse>")
	if !end {
		w.body.WriteString("<" + g + ":EnumerationContext>" + escapeText(context) + "</" + g + ":EnumerationContext>")
	}
	w.body.WriteString("<" + g + ":Items>")
	for _, it := range items {
		w.instance(it)
	}
	w.body.WriteString("</" + g + ":Items>")
	if end {
		w.body.WriteString("<" + g + ":EndOfSequence></" + g + ":EndOfSequence>")
	}
	w.body.WriteString("</" + g + ":PullResponse>")
	return w.envelope(r)
}

// WriteMethodResponse writes a method's output; out.Class is
// "{Method}_OUTPUT" and out.Namespace the class's resource URI.
func WriteMethodResponse(r Reply, out Instance) []byte {
	w := newRespWriter()
	if out.Class == "" {
		// Bare properties (e.g. <g:ReturnValue> directly in the Body).
		w.props(out.Props, out.Namespace)
		return w.envelope(r)
	}
	w.instance(out)
	return w.envelope(r)
}

// WriteCreatedResponse writes a Create response naming the new instance.
func WriteCreatedResponse(r Reply, created EPR) []byte {
	w := newRespWriter()
	g := w.prefix(NSTransfer)
	w.body.WriteString("<" + g + ":ResourceCreated>")
	w.epr(&created)
	w.body.WriteString("</" + g + ":ResourceCreated>")
	return w.envelope(r)
}

// WriteFault writes a SOAP fault (HTTP 400) in the shape of
// spec/wsman.md §5; r.Action is replaced by the addressing fault action.
func WriteFault(r Reply, f *Fault) []byte {
	r.Action = ActionFault
	w := newRespWriter()
	code := f.Code
	if code == "" {
		code = "a:Sender"
	}
	w.body.WriteString("<a:Fault><a:Code><a:Value>" + escapeText(code) + "</a:Value>")
	if f.Subcode != "" {
		w.body.WriteString("<a:Subcode><a:Value>" + escapeText(f.Subcode) + "</a:Value></a:Subcode>")
	}
	w.body.WriteString(`</a:Code><a:Reason><a:Text xml:lang="en-US">` + escapeText(f.Reason) + `</a:Text></a:Reason><a:Detail>` +
		escapeText(f.Detail) + `</a:Detail></a:Fault>`)
	return w.envelope(r)
}
