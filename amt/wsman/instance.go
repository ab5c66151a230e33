// Package wsman builds and parses the WS-Management messages Intel AMT
// speaks (spec/wsman.md), and carries them with HTTP Digest auth over any
// byte stream (client.go).
//
// The codec is pure: bytes in, typed values out; no sockets, no logging, no
// clock. Any body parses into generic Instances (ordered properties, repeated
// values, nested endpoint references) matched by namespace URI whatever
// prefixes the sender chose; typed structs (classes.go) are decoded from
// Instances by the class registry. The reverse side (server.go) parses
// requests and writes responses in the shape AMT firmware uses, for the
// simulator.
package wsman

import (
	"fmt"
	"strconv"
	"strings"
)

// Namespace URIs (spec/wsman.md §3).
const (
	NSSOAP        = "http://www.w3.org/2003/05/soap-envelope"
	NSAddressing  = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
	NSWSMan       = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
	NSEnumeration = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
	NSTransfer    = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
	NSXSI         = "http://www.w3.org/2001/XMLSchema-instance"
	NSXSD         = "http://www.w3.org/2001/XMLSchema"
	NSCIMCommon   = "http://schemas.dmtf.org/wbem/wscim/1/common"
	nsTrust       = "http://schemas.xmlsoap.org/ws/2005/02/trust"
	nsWSSecurity  = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
	nsCIMBinding  = "http://schemas.dmtf.org/wbem/wsman/1/cimbinding.xsd"

	// AnonymousAddress is the WS-Addressing anonymous role AMT puts in EPRs.
	AnonymousAddress = NSAddressing + "/role/anonymous"
)

// Resource URI bases by class-name prefix (spec/wsman.md §3).
const (
	BaseAMT = "http://intel.com/wbem/wscim/1/amt-schema/1/"
	BaseIPS = "http://intel.com/wbem/wscim/1/ips-schema/1/"
	BaseCIM = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/"
)

// ResourceURI returns the resource URI of a class from its prefix: AMT_,
// IPS_ or CIM_. Any other name is an error: AMT has no other schemas.
func ResourceURI(class string) (string, error) {
	switch {
	case strings.HasPrefix(class, "AMT_"):
		return BaseAMT + class, nil
	case strings.HasPrefix(class, "IPS_"):
		return BaseIPS + class, nil
	case strings.HasPrefix(class, "CIM_"):
		return BaseCIM + class, nil
	}
	return "", fmt.Errorf("wsman: class %q has no AMT_, IPS_ or CIM_ prefix, so no resource URI", class)
}

// ClassFromURI returns the class name at the end of a resource URI (or a
// class namespace URI), e.g. "AMT_GeneralSettings".
func ClassFromURI(uri string) string {
	if i := strings.LastIndexByte(uri, '/'); i >= 0 {
		return uri[i+1:]
	}
	return uri
}

// Instance is one element of a body with its child properties in document
// order: a class instance (AMT_GeneralSettings), a method's input or output
// (Setup_OUTPUT), or bare properties.
type Instance struct {
	Class     string // local name of the element
	Namespace string // its namespace URI (the class's resource URI for AMT)
	Props     []Property
}

// Property is one child element. Repeated elements are repeated Properties
// with the same Name, in order.
type Property struct {
	Name      string
	Namespace string
	Value     string     // text content of a leaf
	Nil       bool       // xsi:nil="true"
	EPR       *EPR       // set when the element is an endpoint reference
	Fields    []Property // other nested elements, e.g. <Datetime> in a CIM date
}

// EPR is a WS-Addressing endpoint reference naming one instance: a method
// output such as CreatedCertificate, an association end, or a selector
// value.
type EPR struct {
	Address     string
	ResourceURI string
	Selectors   []Selector
}

// Selector is one key of an instance. Its value is text or itself an EPR
// (spec/wsman.md §3).
type Selector struct {
	Name  string
	Value string
	EPR   *EPR
}

// Selector returns the text value of the named selector.
func (e *EPR) Selector(name string) string {
	if e == nil {
		return ""
	}
	for _, s := range e.Selectors {
		if s.Name == name {
			return s.Value
		}
	}
	return ""
}

// Get returns the first value of the named property and whether it exists.
func (in *Instance) Get(name string) (string, bool) {
	for i := range in.Props {
		if in.Props[i].Name == name {
			return in.Props[i].Value, true
		}
	}
	return "", false
}

// Value returns the first value of the named property, or "".
func (in *Instance) Value(name string) string {
	v, _ := in.Get(name)
	return v
}

// Values returns every value of a repeated property, in order.
func (in *Instance) Values(name string) []string {
	var out []string
	for i := range in.Props {
		if in.Props[i].Name == name {
			out = append(out, in.Props[i].Value)
		}
	}
	return out
}

// EPR returns the endpoint reference held by the named property, or nil.
func (in *Instance) EPR(name string) *EPR {
	for i := range in.Props {
		if in.Props[i].Name == name && in.Props[i].EPR != nil {
			return in.Props[i].EPR
		}
	}
	return nil
}

// Set replaces every value of name with the given values (appending at the
// end if the property is new), keeping the order of other properties.
func (in *Instance) Set(name string, values ...string) {
	var kept []Property
	pos := -1
	for _, p := range in.Props {
		if p.Name == name {
			if pos < 0 {
				pos = len(kept)
			}
			continue
		}
		kept = append(kept, p)
	}
	if pos < 0 {
		pos = len(kept)
	}
	add := make([]Property, len(values))
	for i, v := range values {
		add[i] = Property{Name: name, Namespace: in.Namespace, Value: v}
	}
	in.Props = append(kept[:pos], append(add, kept[pos:]...)...)
}

// Add appends a text property in the instance's namespace.
func (in *Instance) Add(name, value string) *Instance {
	in.Props = append(in.Props, Property{Name: name, Namespace: in.Namespace, Value: value})
	return in
}

// AddEPR appends an endpoint-reference property.
func (in *Instance) AddEPR(name string, epr EPR) *Instance {
	in.Props = append(in.Props, Property{Name: name, Namespace: in.Namespace, EPR: &epr})
	return in
}

// ReturnValue parses the ReturnValue property of a method output. ok is
// false when there is none.
func (in *Instance) ReturnValue() (code int, ok bool, err error) {
	v, found := in.Get("ReturnValue")
	if !found {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	if err != nil {
		return 0, true, fmt.Errorf("wsman: %s ReturnValue %q is not a number", in.Class, clip(v))
	}
	return int(n), true, nil
}

// Method returns the method name of an _INPUT or _OUTPUT instance, or "".
func (in *Instance) Method() string {
	if m, ok := strings.CutSuffix(in.Class, "_OUTPUT"); ok {
		return m
	}
	if m, ok := strings.CutSuffix(in.Class, "_INPUT"); ok {
		return m
	}
	return ""
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
