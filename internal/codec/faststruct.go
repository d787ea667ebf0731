package codec

import (
	"bytes"
	"reflect"
	"strings"
	"sync"
	"unsafe"
)

// The fast path for plain structs. msgpack (v5.4.1, with the Codec's
// settings: no custom struct tag, so only the `msgpack` tag counts) writes
// a struct as a map of field name to value, in the order of the fields,
// leaving out those tagged omitempty whose value is empty. planOf works out
// once per type, by reflection, what that takes: each field's offset, its
// kind and its key already encoded. The per-value code in
// faststructcodec.go then only follows the plan through unsafe pointers.
//
// Whatever msgpack would do that the plan cannot copy makes planOf give up
// on the type, which then goes through msgpack: see [Fast] for the list.

// kStruct is a Fast's kind, and a field's, for a plain struct;
// kSlice|kStruct a field's for an unnamed slice of plain structs.
const kStruct kind = 0x40

// structPlan is how to encode and decode one plain struct type.
type structPlan struct {
	typ     reflect.Type
	size    uintptr     // of the struct, to step through a slice of them
	fields  []fieldPlan // those msgpack encodes, in its order
	header  []byte      // the map header when no field can be left out
	omitted bool        // whether some field is tagged omitempty
}

// fieldPlan is one field of a structPlan.
type fieldPlan struct {
	off  uintptr
	k    kind
	key  []byte      // the field's name as msgpack writes it
	omit bool        // tagged omitempty: left out when empty
	sub  *structPlan // kStruct and kSlice|kStruct: the struct's plan
	typ  reflect.Type
}

var plans sync.Map // reflect.Type → *structPlan, nil for no fast path

// planOf returns the plan of struct type t, or nil if t has no fast path.
func planOf(t reflect.Type) *structPlan {
	if p, ok := plans.Load(t); ok {
		return p.(*structPlan)
	}
	p := newPlan(t, map[reflect.Type]bool{})
	if p != nil && !p.agrees() {
		p = nil
	}
	plans.Store(t, p)
	return p
}

// newPlan works out the plan of struct type t, or returns nil. open holds
// the struct types being worked out, which t is inside: a type that holds
// itself (through a slice) is refused, since a value of it can contain
// itself, which the walk before Codec.Encode is there to catch.
func newPlan(t reflect.Type, open map[reflect.Type]bool) *structPlan {
	if t.Kind() != reflect.Struct || open[t] || ownEncoding(t) || ownDecoding(t) || standard(t) {
		return nil
	}
	if _, ok := t.FieldByName("_msgpack"); ok {
		return nil // options for the whole struct: as_array, omitempty
	}
	open[t] = true
	defer delete(open, t)
	p := &structPlan{typ: t, size: t.Size()}
	names := map[string]bool{}
	for _, sf := range crossingFields(t) {
		name, omit, ok := parseTag(sf.Tag.Get("msgpack"))
		switch {
		case !ok:
			return nil
		case name == "-":
			continue
		case sf.Anonymous:
			return nil // inlined or not, depending on the other fields
		case name == "":
			name = sf.Name
		}
		if names[name] {
			return nil // msgpack writes both, and decodes into the last
		}
		names[name] = true
		f := fieldPlan{off: sf.Offset, key: appendString(nil, name), omit: omit, typ: sf.Type}
		if f.k = kindOf(reflect.New(sf.Type).Interface()); f.k == 0 {
			switch ft := sf.Type; {
			case ft.Kind() == reflect.Struct && !omit:
				// With omitempty, msgpack leaves a struct out when it
				// would leave out all its fields, or its IsZero says so:
				// rules not copied, so such a field is refused.
				f.k, f.sub = kStruct, newPlan(ft, open)
			case ft.Kind() == reflect.Slice && ft.Name() == "":
				f.k, f.sub = kSlice|kStruct, newPlan(ft.Elem(), open)
			}
			if f.sub == nil {
				return nil
			}
		}
		p.fields = append(p.fields, f)
		p.omitted = p.omitted || omit
	}
	p.header = appendMapLen(nil, len(p.fields))
	return p
}

// standard reports whether named type t looks like one of the standard
// library's: a package path whose first element has no dot. Such a type
// may be one msgpack treats specially (time.Time is an extension), or
// gain methods in a later Go. A program whose module path has no dot
// loses its structs' fast path too, which costs speed, not correctness.
func standard(t reflect.Type) bool {
	pkg := t.PkgPath()
	first, _, _ := strings.Cut(pkg, "/")
	return pkg != "" && pkg != "main" && !strings.Contains(first, ".")
}

// parseTag reads a `msgpack` struct tag as msgpack's parser
// (github.com/vmihailenco/tagparser/v2) does, for the tags the fast path
// takes: a name (trimmed; "" for the field's own, "-" to skip it) and at
// most the option omitempty. ok is false for anything else: quotes,
// key:value options (alias), other options (intern, inline, noinline,
// as_array and any the parser would keep without msgpack using it).
func parseTag(tag string) (name string, omit, ok bool) {
	if strings.ContainsAny(tag, "':") {
		return "", false, false
	}
	parts := strings.Split(tag, ",")
	for _, o := range parts[1:] {
		switch strings.TrimSpace(o) {
		case "omitempty":
			omit = true
		case "": // as in "name,", an empty option
		default:
			return "", false, false
		}
	}
	return strings.TrimSpace(parts[0]), omit, true
}

// agrees checks the plan against msgpack itself, on a zero value of the
// type and on one with every field set: the bytes written, and the values
// both decode those bytes to. That catches what the type's structure does
// not show: an encoder or decoder registered for it, or for a type in it,
// by msgpack.Register or msgpack.RegisterExtEncoder/Decoder before the
// plan was made.
func (p *structPlan) agrees() bool {
	zero, full := reflect.New(p.typ), reflect.New(p.typ)
	fill(full.Elem(), p)
	c := New()
	for _, v := range []reflect.Value{zero, full} {
		want, err := c.Encode(v.Elem().Interface())
		if err != nil || !bytes.Equal(p.append(nil, v.UnsafePointer()), want) {
			return false
		}
		general, fast := reflect.New(p.typ), reflect.New(p.typ)
		if c.Decode(want, general.Interface()) != nil || !reflect.DeepEqual(general.Interface(), v.Interface()) {
			return false
		}
		if rest, ok := p.decode(want, fast.UnsafePointer()); !ok || len(rest) != 0 || !reflect.DeepEqual(fast.Interface(), v.Interface()) {
			return false
		}
	}
	return true
}

// fill sets every field of p in struct v to a value that is not empty and
// takes more than msgpack's one-byte forms, and slices to one element.
func fill(v reflect.Value, p *structPlan) {
	for _, f := range p.fields {
		fv := reflect.NewAt(f.typ, unsafe.Add(v.Addr().UnsafePointer(), f.off)).Elem()
		fillValue(fv, f.sub)
	}
}

func fillValue(v reflect.Value, sub *structPlan) {
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(-100)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(200)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.5)
	case reflect.String:
		v.SetString("x")
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fillValue(v.Index(0), sub)
	case reflect.Struct:
		fill(v, sub)
	}
}
