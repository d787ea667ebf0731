package codec

import (
	"fmt"
	"reflect"
	"strings"
	"unsafe"
)

// msgpack encodes a value by recursion, with no bound and no memory of what
// it passed: a value that contains itself recurses until the goroutine's
// stack overflows, and that is a fatal error, which no recover catches,
// ending the whole program. So before a value that can contain itself is
// encoded, it is walked, and refused if it does.
//
// Only types that need it are walked (see [typeInfo]): those that can reach
// themselves through pointers, slices, maps or interfaces, and those that
// hold such types or interfaces. For the others, every type without
// recursion or interfaces (ints, strings, []byte, plain structs), the check
// is one comparison.

// MaxDepth is how many levels deep a value may nest: the structs, slices,
// arrays and maps on the way down from the value to its deepest part. A
// value nested deeper is refused, as one that contains itself is, since
// msgpack would recurse as deep encoding it, and the other side decoding it.
// Only values of types that can nest without bound are measured.
const MaxDepth = 10_000

// maxHops bounds the pointers and interfaces on the way down, which cost
// msgpack a recursion each, as a level does, though they are not levels of
// their own: a chain of them with no level in between is refused too.
const maxHops = 4 * MaxDepth

// CycleError reports a value that contains itself.
type CycleError struct {
	Type  reflect.Type   // the type of the value encoded
	From  string         // the path to the part reached again ("v", "v.Next")
	To    string         // the path that reaches it again ("v.Next.Next")
	Types []reflect.Type // the types along the cycle, From's first and last
}

func (e *CycleError) Error() string {
	names := make([]string, len(e.Types))
	for i, t := range e.Types {
		names[i] = t.String()
	}
	return fmt.Sprintf("value of type %s contains a cycle, which msgpack cannot encode: %s leads back to %s (%s)",
		e.Type, e.To, e.From, strings.Join(names, " → "))
}

// DepthError reports a value that nests deeper than [MaxDepth] levels.
type DepthError struct {
	Type reflect.Type // the type of the value encoded
	Path string       // the way down to where the bound was passed, shortened
}

func (e *DepthError) Error() string {
	return fmt.Sprintf("value of type %s nests more than %d levels deep, which msgpack cannot encode safely: %s", e.Type, MaxDepth, e.Path)
}

// ref identifies what a pointer, slice or map refers to. The type is part of
// it: a struct and its first field share an address, and reaching the one
// from the other is no cycle.
type ref struct {
	p unsafe.Pointer
	n int // a slice's length: a shorter slice of the same array is another value
	t reflect.Type
}

// A step is one move down a value, for the paths in errors.
type step struct {
	kind  byte // '.' field, '[' element, 'k' map value, 's' map[string]any value, 'K' map key, '*' pointer, '(' interface
	name  string
	index int
	key   reflect.Value // of a map value or key
	t     reflect.Type  // the type of the value the step reaches
}

// walker walks values before they are encoded. It is kept in a Codec, so
// that its memory is reused.
//
// A walk first runs without keeping its path, which is needed only to
// describe a failure; a walk that fails runs again, tracing its path.
type walker struct {
	walks  int // how many values were walked, for tests
	root   reflect.Type
	trace  bool // keep the path
	levels int
	hops   int
	path   []step      // the way down to the value being walked, when tracing
	refs   []onPath    // the references on the way down, outermost first
	deep   map[ref]int // those past the first scanRefs, with where they were entered

	// The types last met inside interfaces, and what they need.
	dynTypes [4]reflect.Type
	dynInfos [4]*typeInfo
	dynNext  int
}

// onPath is a reference on the walk's path, and where along it it was
// entered.
type onPath struct {
	r  ref
	at int
}

// scanRefs is how many references on the path are searched one by one
// before a map takes over: most values are shallow, and a short scan is
// cheaper than a map.
const scanRefs = 32

// walk checks v, of type info ti, for cycles and depth.
func (w *walker) walk(v reflect.Value, ti *typeInfo) error {
	w.walks++
	err := w.run(v, ti, false)
	if err != nil {
		// Again, to say where. A value that another goroutine changes
		// under us (a data race) may not fail twice; the first error
		// stands then, without its way.
		if traced := w.run(v, ti, true); traced != nil {
			err = traced
		}
	}
	return err
}

func (w *walker) run(v reflect.Value, ti *typeInfo, trace bool) error {
	w.root, w.trace = ti.typ, trace
	w.levels, w.hops = 0, 0
	w.path, w.refs = w.path[:0], w.refs[:0]
	err := w.value(v, ti)
	clear(w.deep)
	clear(w.path) // let go of the keys
	w.root = nil
	return err
}

// value walks v, of type info ti. After an error the walker's state is
// left as it was: run resets it.
func (w *walker) value(v reflect.Value, ti *typeInfo) error {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		r := ref{v.UnsafePointer(), 0, ti.typ}
		if err := w.enter(r); err != nil {
			return err
		}
		if err := w.hop(); err != nil {
			return err
		}
		if w.trace {
			w.path = append(w.path, step{kind: '*', t: ti.elem.typ})
		}
		if err := w.value(v.Elem(), ti.elem); err != nil {
			return err
		}
		w.up()
		w.hops--
		w.leave(r)
	case reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return w.dynamic(v.Elem())
	case reflect.Struct:
		if ti.err != nil {
			return ti.err
		}
		if err := w.level(); err != nil {
			return err
		}
		for _, f := range ti.fields {
			if w.trace {
				w.path = append(w.path, step{kind: '.', name: f.name, t: f.info.typ})
			}
			if err := w.value(v.Field(f.index), f.info); err != nil {
				return err
			}
			w.up()
		}
		w.levels--
	case reflect.Slice:
		if v.Len() == 0 || !ti.elem.walk {
			return nil
		}
		r := ref{v.UnsafePointer(), v.Len(), ti.typ}
		if err := w.enter(r); err != nil {
			return err
		}
		var err error
		if ti.typ == sliceAny {
			err = w.anyElems(unsafe.Slice((*any)(v.UnsafePointer()), v.Len()))
		} else {
			err = w.elems(v, ti)
		}
		if err != nil {
			return err
		}
		w.leave(r)
	case reflect.Array:
		if v.Len() == 0 || !ti.elem.walk {
			return nil
		}
		return w.elems(v, ti)
	case reflect.Map:
		if v.Len() == 0 || !ti.key.walk && !ti.elem.walk {
			return nil
		}
		r := ref{v.UnsafePointer(), 0, ti.typ}
		if err := w.enter(r); err != nil {
			return err
		}
		var err error
		if ti.typ == mapStringAny && v.CanInterface() {
			err = w.stringAnyEntries(v.Interface().(map[string]any))
		} else {
			err = w.entries(v, ti)
		}
		if err != nil {
			return err
		}
		w.leave(r)
	}
	return nil
}

// dynamic walks e, the value in an interface.
func (w *walker) dynamic(e reflect.Value) error {
	if k := e.Kind(); k <= reflect.Complex128 || k == reflect.String {
		return nil // numbers and strings hold nothing
	}
	et := e.Type()
	var ei *typeInfo
	for i, t := range w.dynTypes {
		if t == et {
			ei = w.dynInfos[i]
			break
		}
	}
	if ei == nil {
		ei = infoOf(et)
		w.dynTypes[w.dynNext], w.dynInfos[w.dynNext] = et, ei
		w.dynNext = (w.dynNext + 1) % len(w.dynTypes)
	}
	if !ei.walk {
		return nil
	}
	if err := w.hop(); err != nil {
		return err
	}
	if w.trace {
		w.path = append(w.path, step{kind: '(', t: et})
	}
	if err := w.value(e, ei); err != nil {
		return err
	}
	w.up()
	w.hops--
	return nil
}

var (
	anyType      = reflect.TypeFor[any]()
	mapStringAny = reflect.TypeFor[map[string]any]()
	sliceAny     = reflect.TypeFor[[]any]()
)

// stringAnyEntries walks a map[string]any, the shape of decoded JSON,
// without reflect's map iteration.
func (w *walker) stringAnyEntries(m map[string]any) error {
	if err := w.level(); err != nil {
		return err
	}
	for k, x := range m {
		if x == nil {
			continue
		}
		if w.trace {
			w.path = append(w.path, step{kind: 's', name: k, t: anyType})
		}
		if err := w.dynamic(reflect.ValueOf(x)); err != nil {
			return err
		}
		w.up()
	}
	w.levels--
	return nil
}

// anyElems walks a []any, as stringAnyEntries a map[string]any.
func (w *walker) anyElems(s []any) error {
	if err := w.level(); err != nil {
		return err
	}
	for i, x := range s {
		if x == nil {
			continue
		}
		if w.trace {
			w.path = append(w.path, step{kind: '[', index: i, t: anyType})
		}
		if err := w.dynamic(reflect.ValueOf(x)); err != nil {
			return err
		}
		w.up()
	}
	w.levels--
	return nil
}

// elems walks the elements of a slice or array, one level down.
func (w *walker) elems(v reflect.Value, ti *typeInfo) error {
	if err := w.level(); err != nil {
		return err
	}
	for i := range v.Len() {
		if w.trace {
			w.path = append(w.path, step{kind: '[', index: i, t: ti.elem.typ})
		}
		if err := w.value(v.Index(i), ti.elem); err != nil {
			return err
		}
		w.up()
	}
	w.levels--
	return nil
}

// entries walks the keys and values of a map, one level down, as far as
// their types need.
func (w *walker) entries(v reflect.Value, ti *typeInfo) error {
	if err := w.level(); err != nil {
		return err
	}
	k, e := reflect.New(ti.key.typ).Elem(), reflect.New(ti.elem.typ).Elem()
	for it := v.MapRange(); it.Next(); {
		k.SetIterKey(it)
		if ti.key.walk {
			if w.trace {
				w.path = append(w.path, step{kind: 'K', key: k, t: ti.key.typ})
			}
			if err := w.value(k, ti.key); err != nil {
				return err
			}
			w.up()
		}
		if ti.elem.walk {
			e.SetIterValue(it)
			if w.trace {
				w.path = append(w.path, step{kind: 'k', key: k, t: ti.elem.typ})
			}
			if err := w.value(e, ti.elem); err != nil {
				return err
			}
			w.up()
		}
	}
	w.levels--
	return nil
}

// up undoes the last step down, when tracing.
func (w *walker) up() {
	if w.trace {
		w.path = w.path[:len(w.path)-1]
	}
}

// enter notes that the walk passes through reference r, unless r is on the
// path already: then the value contains itself.
func (w *walker) enter(r ref) error {
	for _, o := range w.refs[:min(len(w.refs), scanRefs)] {
		if o.r == r {
			return w.cycle(o.at)
		}
	}
	if len(w.refs) >= scanRefs {
		if at, ok := w.deep[r]; ok {
			return w.cycle(at)
		}
		if w.deep == nil {
			w.deep = map[ref]int{}
		}
		w.deep[r] = len(w.path)
	}
	w.refs = append(w.refs, onPath{r, len(w.path)})
	return nil
}

// leave undoes enter.
func (w *walker) leave(r ref) {
	w.refs = w.refs[:len(w.refs)-1]
	if len(w.refs) >= scanRefs {
		delete(w.deep, r)
	}
}

// level goes one level deeper; the caller decrements w.levels on its way
// back.
func (w *walker) level() error {
	if w.levels++; w.levels > MaxDepth {
		return w.tooDeep()
	}
	return nil
}

// hop passes a pointer or an interface; the caller decrements w.hops on
// its way back.
func (w *walker) hop() error {
	if w.hops++; w.hops > maxHops {
		return w.tooDeep()
	}
	return nil
}

func (w *walker) tooDeep() error {
	return &DepthError{Type: w.root, Path: w.render(w.path, 12)}
}

// cycle reports that the value at w.path[:at] is reached again.
func (w *walker) cycle(at int) error {
	e := &CycleError{Type: w.root, From: w.render(w.path[:at], 0), To: w.render(w.path, 0)}
	for _, o := range w.refs {
		if o.at >= at {
			e.Types = append(e.Types, w.typeAt(o.at))
		}
	}
	e.Types = append(e.Types, w.typeAt(len(w.path)))
	return e
}

// typeAt is the type of the value at w.path[:n].
func (w *walker) typeAt(n int) reflect.Type {
	if n == 0 {
		return w.root
	}
	return w.path[n-1].t
}

// render writes a path as a Go expression on v. With max > 0, a path of
// more steps shows only its first and last max/2.
func (w *walker) render(path []step, max int) string {
	var b strings.Builder
	b.WriteString("v")
	for i, s := range path {
		if max > 0 && len(path) > max && i >= max/2 && i < len(path)-max/2 {
			if i == max/2 {
				fmt.Fprintf(&b, "…(%d steps)…", len(path)-max)
			}
			continue
		}
		switch s.kind {
		case '.':
			b.WriteString("." + s.name)
		case '[':
			fmt.Fprintf(&b, "[%d]", s.index)
		case 'k':
			fmt.Fprintf(&b, "[%s]", keyString(s.key))
		case 's':
			fmt.Fprintf(&b, "[%s]", keyString(reflect.ValueOf(s.name)))
		case 'K':
			fmt.Fprintf(&b, "{key %s}", keyString(s.key))
		case '(':
			fmt.Fprintf(&b, ".(%s)", s.t)
		}
	}
	return b.String()
}

// keyString shows a map key in a path.
func keyString(k reflect.Value) string {
	var s string
	switch k.Kind() {
	case reflect.String:
		s = fmt.Sprintf("%q", k.String())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		s = fmt.Sprint(k.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		s = fmt.Sprint(k.Uint())
	default:
		s = "…" // a key of another kind may itself be large, or unexported
	}
	if len(s) > 40 {
		s = s[:37] + "…"
	}
	return s
}
