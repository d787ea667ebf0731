package codec

import (
	"encoding"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// What msgpack does with a type is decided by the type alone, so it is
// worked out once per type, by reflection over the type graph, and kept:
// whether a value of the type can hold a pointer cycle or nest without bound
// (see [typeInfo]), and whether the type can cross at all (see [CheckType]).

var (
	errorType = reflect.TypeFor[error]()

	// The methods through which a value takes over its own encoding or
	// decoding. msgpack looks for each on the type, and then on a pointer
	// to it.
	encodeHooks = []reflect.Type{
		reflect.TypeFor[msgpack.CustomEncoder](),
		reflect.TypeFor[msgpack.Marshaler](),
		reflect.TypeFor[encoding.BinaryMarshaler](),
		reflect.TypeFor[encoding.TextMarshaler](),
	}
	decodeHooks = []reflect.Type{
		reflect.TypeFor[msgpack.CustomDecoder](),
		reflect.TypeFor[msgpack.Unmarshaler](),
		reflect.TypeFor[encoding.BinaryUnmarshaler](),
		reflect.TypeFor[encoding.TextUnmarshaler](),
	}
)

// hooked reports whether msgpack hands values of t to one of hooks, their
// own code, rather than going through t's structure. It follows msgpack's
// own lookup.
func hooked(t reflect.Type, hooks []reflect.Type) bool {
	for _, h := range hooks {
		if t.Implements(h) || t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(h) {
			return true
		}
	}
	return false
}

// ownEncoding reports whether a value of t is encoded by code of its own
// (a method, or for an error its Error text) rather than through its
// structure: msgpack does not look inside it.
func ownEncoding(t reflect.Type) bool { return t == errorType || hooked(t, encodeHooks) }

// ownDecoding reports whether a value of t is decoded by a method of its own.
func ownDecoding(t reflect.Type) bool { return hooked(t, decodeHooks) }

// crossingFields returns the fields of struct type t that msgpack encodes
// and decodes: the exported ones and the embedded ones, less those tagged
// `msgpack:"-"`.
func crossingFields(t reflect.Type) []reflect.StructField {
	var fs []reflect.StructField
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("msgpack"), ","); name == "-" {
			continue
		}
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		fs = append(fs, f)
	}
	return fs
}

// typeInfo is what the walk before encoding needs to know of a type.
type typeInfo struct {
	// walk is whether a value of the type must be walked before encoding:
	// the type is an interface (whose dynamic value may be anything), or
	// can reach itself through pointers, slices and maps (so a value may
	// contain itself, or nest without bound), or holds such a type. For
	// all other types, which covers every type without recursion or
	// interfaces, encoding never recurses deeper than the type itself, and
	// the walk is skipped.
	walk bool

	// err is why no value of the type can be encoded at all, found
	// before msgpack recursed forever over the type itself (see
	// embedLoop); such a type is walked, to meet it.
	err error

	typ    reflect.Type
	elem   *typeInfo   // pointer, slice, array, map: the element
	key    *typeInfo   // map: the key
	fields []fieldInfo // struct: the fields whose type needs the walk
}

type fieldInfo struct {
	index int
	name  string
	info  *typeInfo
}

var infos sync.Map // reflect.Type → *typeInfo

// infoOf returns the typeInfo of t, working it out on first use.
func infoOf(t reflect.Type) *typeInfo {
	if ti, ok := infos.Load(t); ok {
		return ti.(*typeInfo)
	}
	a := analysis{state: map[reflect.Type]*typeInfo{}, open: map[reflect.Type]bool{}}
	ti := a.visit(t)
	for t, ti := range a.state {
		infos.LoadOrStore(t, ti)
	}
	return ti
}

// analysis works out the typeInfo of a type and of every type it reaches,
// depth first. A type reached again while it is still open lies on a cycle
// of the type graph, so it, and every type that reaches it, needs the walk.
type analysis struct {
	state map[reflect.Type]*typeInfo
	open  map[reflect.Type]bool
}

func (a *analysis) visit(t reflect.Type) *typeInfo {
	if ti, ok := a.state[t]; ok {
		if a.open[t] {
			ti.walk = true // t reaches itself
		}
		return ti
	}
	if ti, ok := infos.Load(t); ok {
		return ti.(*typeInfo)
	}
	ti := &typeInfo{typ: t}
	a.state[t] = ti
	a.open[t] = true
	defer delete(a.open, t)
	if ownEncoding(t) {
		return ti
	}
	switch t.Kind() {
	case reflect.Interface:
		ti.walk = true
	case reflect.Pointer, reflect.Slice, reflect.Array:
		ti.elem = a.visit(t.Elem())
		ti.walk = ti.walk || ti.elem.walk
	case reflect.Map:
		ti.key = a.visit(t.Key())
		ti.elem = a.visit(t.Elem())
		ti.walk = ti.walk || ti.key.walk || ti.elem.walk
	case reflect.Struct:
		for _, f := range crossingFields(t) {
			fi := a.visit(f.Type)
			if fi.walk {
				ti.fields = append(ti.fields, fieldInfo{index: f.Index[0], name: f.Name, info: fi})
			}
		}
		ti.walk = ti.walk || len(ti.fields) > 0
		if err := embedLoop(t); err != nil {
			ti.err, ti.walk = err, true
		}
	}
	return ti
}

// embedLoop finds whether struct type t embeds itself, through embedded
// pointers: msgpack inlines an embedded struct's fields into its
// container's, working them out by recursion over the types, which never
// ends for such a type, whatever the value. The tag option noinline, or a
// field name, avoids it. A loop is an *[EmbedError].
func embedLoop(t reflect.Type) error {
	on := map[reflect.Type]bool{}
	var chain []string
	var visit func(t reflect.Type) bool
	visit = func(t reflect.Type) bool {
		if on[t] {
			return true
		}
		on[t] = true
		for _, f := range crossingFields(t) {
			if !f.Anonymous || slices.Contains(strings.Split(f.Tag.Get("msgpack"), ",")[1:], "noinline") {
				continue
			}
			et := f.Type
			for et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() != reflect.Struct || ownEncoding(et) || ownDecoding(et) {
				continue
			}
			chain = append(chain, fmt.Sprintf("%s embeds %s", t, f.Type))
			if visit(et) {
				return true
			}
			chain = chain[:len(chain)-1]
		}
		delete(on, t)
		return false
	}
	if !visit(t) {
		return nil
	}
	return &EmbedError{Type: t, Chain: chain}
}

// EmbedError reports a struct type that embeds itself.
type EmbedError struct {
	Type  reflect.Type
	Chain []string // "main.Node embeds *main.Node", one per embedding, the last back to the first's type
}

func (e *EmbedError) Error() string {
	return fmt.Sprintf("%s, which msgpack cannot encode or decode: it inlines an embedded struct's fields, and recurses forever over a struct that embeds itself; give the field a name, or tag it `msgpack:\",noinline\"`", strings.Join(e.Chain, ", which "))
}

// refused is what msgpack cannot encode, whatever the value.
var refused = map[reflect.Kind]string{
	reflect.Chan:          "a channel",
	reflect.Func:          "a func",
	reflect.UnsafePointer: "an unsafe.Pointer",
	reflect.Uintptr:       "a uintptr",
	reflect.Complex64:     "a complex number",
	reflect.Complex128:    "a complex number",
}

// CheckType checks, once and for all, that values of type t can cross
// between processes: that nothing msgpack cannot encode (a channel, a func,
// an unsafe.Pointer, a uintptr or a complex number) lies anywhere in it, in
// the fields msgpack encodes. Types that encode and decode themselves (a
// [msgpack.CustomEncoder], a [msgpack.Marshaler], an
// [encoding.BinaryMarshaler] and their decoding counterparts) are taken on
// trust, and what an interface holds is only known per value. A failure is
// a *[TypeError], naming the field, or an *[EmbedError] for a struct that
// embeds itself, over which msgpack would recurse forever. CheckType also works out, for
// [Codec.Encode], whether values of t must be walked.
func CheckType(t reflect.Type) error {
	infoOf(t)
	return checkType(t, t.String(), true, map[reflect.Type]bool{})
}

func checkType(t reflect.Type, path string, top bool, seen map[reflect.Type]bool) error {
	if seen[t] {
		return nil
	}
	seen[t] = true
	if ownEncoding(t) || ownDecoding(t) {
		return nil
	}
	if what, ok := refused[t.Kind()]; ok {
		return &TypeError{Path: path, Type: t, What: what, Whole: top}
	}
	switch t.Kind() {
	case reflect.Pointer:
		if top {
			path = t.Elem().String() // a field of *T is T.Field
		}
		return checkType(t.Elem(), path, top, seen)
	case reflect.Slice, reflect.Array:
		return checkType(t.Elem(), path+"[i]", false, seen)
	case reflect.Map:
		if err := checkType(t.Key(), "a key of "+path, false, seen); err != nil {
			return err
		}
		return checkType(t.Elem(), path+"[k]", false, seen)
	case reflect.Struct:
		if err := embedLoop(t); err != nil {
			return err
		}
		for _, f := range crossingFields(t) {
			if err := checkType(f.Type, path+"."+f.Name, false, seen); err != nil {
				return err
			}
		}
	}
	return nil
}

// TypeError reports a part of a type that can never cross between
// processes.
type TypeError struct {
	Path  string       // where it lies: the type, then fields and elements ("main.Job.Steps[i].Done")
	Type  reflect.Type // its type
	What  string       // what it is ("a channel")
	Whole bool         // whether it is the whole type, not a part
}

func (e *TypeError) Error() string {
	if e.Whole {
		return fmt.Sprintf("%s is %s, which msgpack cannot encode", e.Type, e.What)
	}
	return fmt.Sprintf("%s is %s (%s), which msgpack cannot encode; leave the field out with the tag `msgpack:\"-\"`, or give the struct holding it a msgpack encoding of its own", e.Path, e.What, e.Type)
}

// ifacePlace is where a type holds a non-empty interface.
type ifacePlace struct {
	path  string       // as in TypeError
	iface reflect.Type // the interface
}

// interfacePlaces lists where a non-empty interface other than error lies
// in t, in the parts msgpack decodes through t's structure: the places a
// decoder cannot fill from a map without knowing which concrete type to
// make. A struct type reached along two paths is searched along the first.
func interfacePlaces(t reflect.Type) []ifacePlace {
	var out []ifacePlace
	seen := map[reflect.Type]bool{}
	var visit func(t reflect.Type, path string)
	visit = func(t reflect.Type, path string) {
		if seen[t] || ownDecoding(t) {
			return
		}
		if t.Kind() == reflect.Interface {
			if t.NumMethod() > 0 && t != errorType {
				out = append(out, ifacePlace{path, t})
			}
			return
		}
		seen[t] = true
		switch t.Kind() {
		case reflect.Pointer:
			if path == t.String() {
				path = t.Elem().String() // the top: a field of *T is T.Field
			}
			visit(t.Elem(), path)
		case reflect.Slice, reflect.Array:
			visit(t.Elem(), path+"[i]")
		case reflect.Map:
			visit(t.Key(), "a key of "+path)
			visit(t.Elem(), path+"[k]")
		case reflect.Struct:
			for _, f := range crossingFields(t) {
				visit(f.Type, path+"."+f.Name)
			}
		}
	}
	visit(t, t.String())
	return out
}
