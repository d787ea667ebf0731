package codec

import (
	"math/rand/v2"
	"reflect"
)

// The struct types the struct fast path is tested on, and random values of
// them: every field type it takes, tags, omitempty, nesting, and fields it
// must leave out.

// allKinds has a field of every type with a fast path, and fields msgpack
// leaves out. Its 29 fields make a map16.
type allKinds struct {
	B      bool
	I      int
	I8     int8
	I16    int16
	I32    int32
	I64    int64
	U      uint
	U8     uint8
	U16    uint16
	U32    uint32
	U64    uint64
	F32    float32
	F64    float64
	S      string
	Raw    []byte
	Bs     []bool
	Is     []int
	I8s    []int8
	I16s   []int16
	I32s   []int32
	I64s   []int64
	Us     []uint
	U16s   []uint16
	U32s   []uint32
	U64s   []uint64
	F32s   []float32
	F64s   []float64
	Ss     []string
	Raws   [][]byte
	hidden float32 // unexported: not encoded
	Skip   string  `msgpack:"-"`
}

// tagged renames fields and leaves empty ones out.
type tagged struct {
	Name  string    `msgpack:"name"`
	Count int       `msgpack:"count,omitempty"`
	Ratio float64   `msgpack:",omitempty"`
	Flag  bool      `msgpack:" flag , omitempty "`
	F32   float32   `msgpack:"f32,omitempty"`
	U     uint64    `msgpack:"u,omitempty"`
	Data  []byte    `msgpack:"data,omitempty"`
	List  []string  `msgpack:"list,omitempty"`
	Nums  []float32 `msgpack:"nums,omitempty"`
	Long  uint16    `msgpack:"a key long enough to need a str8 header and not a fixstr"`
	Uni   int8      `msgpack:"clé ✓"`
	Other string    `json:"other_json"` // the json tag is not read
	Dash  int       `msgpack:"-,omitempty"`
	Own   string    `msgpack:","`
	Trail int32     `msgpack:"trail,"`
	x     int
}

// inner is a named struct inside others.
type inner struct {
	A int
	B string `msgpack:"b,omitempty"`
	C []float32
}

// nested holds structs, named and not, and slices of them.
type nested struct {
	In   inner
	Ins  []inner `msgpack:"ins,omitempty"`
	Anon struct {
		X uint8
		Y []string `msgpack:"y"`
	}
	Deep struct {
		In   inner
		List []inner
	} `msgpack:"deep"`
	Tail int64
}

// empties has nothing msgpack encodes.
type empties struct {
	a, b int
	C    []int `msgpack:"-"`
}

// structTypes returns the struct types and random values of each.
func structTypes(r *rand.Rand) []fastType {
	g := newValueGen(r)
	return []fastType{
		newTyped(structVals[allKinds](g)),
		newTyped(structVals[tagged](g)),
		newTyped(structVals[nested](g)),
		newTyped(structVals[point](g)),
		newTyped(structVals[empties](g)),
		newTyped(structVals[struct{}](g)),
	}
}

// valueGen makes random values of any type the fast path takes, from the
// edge values of fast_values_test.go.
type valueGen struct {
	r    *rand.Rand
	ints []int64
	f32  []float32
	f64  []float64
	strs []string
}

func newValueGen(r *rand.Rand) *valueGen {
	return &valueGen{r: r, ints: ints[int64](r), f32: floats32(r), f64: floats64(r), strs: strs(r, true)}
}

// structVals returns the zero T and random ones.
func structVals[T any](g *valueGen) []T {
	out := make([]T, 1, randomValues+1)
	for range randomValues {
		var v T
		g.fill(reflect.ValueOf(&v).Elem(), 0)
		out = append(out, v)
	}
	return out
}

// fill sets v, which is zero and addressable, to a random value: zero a
// quarter of the time. Slices are short but for some of the fields of the
// top struct (depth 1), which may be of an edge length.
func (g *valueGen) fill(v reflect.Value, depth int) {
	r := g.r
	if r.IntN(4) == 0 {
		return
	}
	if !v.CanSet() { // an unexported field: set all the same, to check it is left out
		v = reflect.NewAt(v.Type(), v.Addr().UnsafePointer()).Elem()
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(g.ints[r.IntN(len(g.ints))]) // truncated to the width
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(g.ints[r.IntN(len(g.ints))]))
	case reflect.Float32:
		x := g.f32[r.IntN(len(g.f32))] // not through SetFloat, which would quiet a signalling NaN
		*(*float32)(v.Addr().UnsafePointer()) = x
	case reflect.Float64:
		v.SetFloat(g.f64[r.IntN(len(g.f64))])
	case reflect.String:
		v.SetString(g.strs[r.IntN(len(g.strs))])
	case reflect.Slice:
		n := r.IntN(20)
		switch r.IntN(20) {
		case 0:
			n = lengths[r.IntN(len(lengths))]
			if v.Type().Elem().Kind() == reflect.Struct || depth > 1 {
				n = min(n, 17)
			}
		case 1, 2:
			n = 0
		}
		v.Set(reflect.MakeSlice(v.Type(), n, n))
		for i := range n {
			g.fill(v.Index(i), depth+1)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			g.fill(v.Field(i), depth+1)
		}
	}
}

// fromBytes sets v from the bytes at *src, consuming them, for the fuzz
// targets: each field and element takes what it needs, and a slice takes
// a byte for its length, 0xff for nil.
func fromBytes(src *[]byte, v reflect.Value) {
	take := func(n int) []byte {
		b := make([]byte, n)
		k := copy(b, *src)
		*src = (*src)[k:]
		return b
	}
	if !v.CanSet() {
		v = reflect.NewAt(v.Type(), v.Addr().UnsafePointer()).Elem()
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(take(1)[0]&1 == 1)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(be.Uint64(take(8))))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(be.Uint64(take(8)))
	case reflect.Float32:
		*(*uint32)(v.Addr().UnsafePointer()) = be.Uint32(take(4))
	case reflect.Float64:
		*(*uint64)(v.Addr().UnsafePointer()) = be.Uint64(take(8))
	case reflect.String:
		v.SetString(string(take(int(take(1)[0]))))
	case reflect.Slice:
		n := int(take(1)[0])
		if n == 0xff {
			return
		}
		n %= 8
		v.Set(reflect.MakeSlice(v.Type(), n, n))
		for i := range n {
			fromBytes(src, v.Index(i))
		}
	case reflect.Struct:
		for i := range v.NumField() {
			fromBytes(src, v.Field(i))
		}
	}
}
