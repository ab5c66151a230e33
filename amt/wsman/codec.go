package wsman

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"amtd/secret"
)

// Typed structs map to Instances by field: the property name is the field
// name or the first part of a `wsman:"Name,opts"` tag ("-" skips the
// field). Options:
//   - omitempty: Encode leaves out a zero value;
//   - readonly: EncodeWritable leaves the field out (AMT rejects or ignores
//     writes to it, e.g. AMT_TLSSettingData.NonSecureConnectionsSupported).
//
// Field types: string, bool, signed and unsigned integers, secret.Value,
// EPR, *EPR, CIMDateTime, pointers to the scalar types (nil = absent) and
// slices of all of these (repeated elements).

// CIMDateTime is a CIM date-time property: a nested <Datetime> element in
// the wscim common namespace (e.g. CIM_BIOSElement.ReleaseDate).
type CIMDateTime struct {
	Datetime string
}

type fieldInfo struct {
	index    int
	name     string
	omit     bool
	readonly bool
}

var fieldCache sync.Map // reflect.Type → []fieldInfo

func fieldsOf(t reflect.Type) []fieldInfo {
	if f, ok := fieldCache.Load(t); ok {
		return f.([]fieldInfo)
	}
	var out []fieldInfo
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		fi := fieldInfo{index: i, name: sf.Name}
		if tag, ok := sf.Tag.Lookup("wsman"); ok {
			parts := strings.Split(tag, ",")
			if parts[0] == "-" {
				continue
			}
			if parts[0] != "" {
				fi.name = parts[0]
			}
			for _, o := range parts[1:] {
				switch o {
				case "omitempty":
					fi.omit = true
				case "readonly":
					fi.readonly = true
				}
			}
		}
		out = append(out, fi)
	}
	fieldCache.Store(t, out)
	return out
}

var (
	typEPR      = reflect.TypeFor[EPR]()
	typDateTime = reflect.TypeFor[CIMDateTime]()
	typSecret   = reflect.TypeFor[secret.Value]()
)

// Decode fills the struct v points to from inst's properties. Unknown
// properties are ignored (newer firmware adds some); a value that does not
// fit the field's type is an error naming class and property.
func Decode(inst *Instance, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("wsman: Decode needs a pointer to a struct, got %T", v)
	}
	return decodeProps(inst.Class, inst.Props, rv.Elem())
}

func decodeProps(class string, props []Property, sv reflect.Value) error {
	fields := fieldsOf(sv.Type())
	byName := make(map[string]fieldInfo, len(fields))
	for _, f := range fields {
		byName[f.name] = f
	}
	for i := range props {
		p := &props[i]
		f, ok := byName[p.Name]
		if !ok {
			continue
		}
		fv := sv.Field(f.index)
		if fv.Kind() == reflect.Slice && fv.Type() != reflect.TypeFor[[]byte]() {
			ev := reflect.New(fv.Type().Elem()).Elem()
			if err := decodeOne(class, p, ev); err != nil {
				return err
			}
			fv.Set(reflect.Append(fv, ev))
			continue
		}
		if err := decodeOne(class, p, fv); err != nil {
			return err
		}
	}
	return nil
}

func decodeOne(class string, p *Property, fv reflect.Value) error {
	if fv.Kind() == reflect.Pointer {
		nv := reflect.New(fv.Type().Elem())
		if err := decodeOne(class, p, nv.Elem()); err != nil {
			return err
		}
		fv.Set(nv)
		return nil
	}
	switch fv.Type() {
	case typEPR:
		if p.EPR != nil {
			fv.Set(reflect.ValueOf(*p.EPR))
		}
		return nil
	case typSecret:
		fv.Set(reflect.ValueOf(secret.FromString(p.Value)))
		return nil
	}
	if fv.Kind() == reflect.Struct {
		return decodeProps(class, p.Fields, fv)
	}
	s := strings.TrimSpace(p.Value)
	bad := func() error {
		return fmt.Errorf("wsman: %s.%s: value %q is not a %s", class, p.Name, clip(p.Value), fv.Kind())
	}
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(p.Value)
	case reflect.Bool:
		switch strings.ToLower(s) {
		case "true", "1":
			fv.SetBool(true)
		case "false", "0", "":
			fv.SetBool(false)
		default:
			return bad()
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if s == "" {
			return nil // AMT sends empty elements for unset numbers
		}
		n, err := strconv.ParseInt(s, 10, fv.Type().Bits())
		if err != nil {
			return bad()
		}
		fv.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if s == "" {
			return nil
		}
		n, err := strconv.ParseUint(s, 10, fv.Type().Bits())
		if err != nil {
			return bad()
		}
		fv.SetUint(n)
	default:
		return fmt.Errorf("wsman: %s.%s: field type %s is not supported", class, p.Name, fv.Type())
	}
	return nil
}

// Encode turns a typed struct into an Instance named class in namespace ns
// (normally the class's resource URI), properties in field order.
func Encode(v any, class, ns string) Instance {
	return encode(v, class, ns, false)
}

// EncodeWritable is Encode without the readonly fields: the body of a Put.
func EncodeWritable(v any, class, ns string) Instance {
	return encode(v, class, ns, true)
}

func encode(v any, class, ns string, writable bool) Instance {
	rv := reflect.Indirect(reflect.ValueOf(v))
	in := Instance{Class: class, Namespace: ns}
	in.Props = encodeProps(rv, ns, writable)
	return in
}

func encodeProps(sv reflect.Value, ns string, writable bool) []Property {
	var props []Property
	for _, f := range fieldsOf(sv.Type()) {
		if writable && f.readonly {
			continue
		}
		fv := sv.Field(f.index)
		if f.omit && fv.IsZero() {
			continue
		}
		if fv.Kind() == reflect.Slice {
			for i := 0; i < fv.Len(); i++ {
				if p, ok := encodeOne(f.name, fv.Index(i), ns, writable); ok {
					props = append(props, p)
				}
			}
			continue
		}
		if p, ok := encodeOne(f.name, fv, ns, writable); ok {
			props = append(props, p)
		}
	}
	return props
}

func encodeOne(name string, fv reflect.Value, ns string, writable bool) (Property, bool) {
	p := Property{Name: name, Namespace: ns}
	if fv.Kind() == reflect.Pointer {
		if fv.IsNil() {
			return p, false
		}
		fv = fv.Elem()
	}
	switch fv.Type() {
	case typEPR:
		e := fv.Interface().(EPR)
		p.EPR = &e
		return p, true
	case typSecret:
		p.Value = fv.Interface().(secret.Value).RevealString()
		return p, true
	case typDateTime:
		p.Fields = []Property{{Name: "Datetime", Namespace: NSCIMCommon, Value: fv.Interface().(CIMDateTime).Datetime}}
		return p, true
	}
	switch fv.Kind() {
	case reflect.String:
		p.Value = fv.String()
	case reflect.Bool:
		p.Value = strconv.FormatBool(fv.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		p.Value = strconv.FormatInt(fv.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		p.Value = strconv.FormatUint(fv.Uint(), 10)
	case reflect.Struct:
		p.Fields = encodeProps(fv, ns, writable)
	default:
		return p, false
	}
	return p, true
}
