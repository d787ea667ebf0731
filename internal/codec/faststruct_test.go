package codec

import (
	"bytes"
	"encoding"
	"image"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// The struct fast path is checked like the others, against msgpack: the
// struct types of faststruct_values_test.go are among fastTypes, so
// TestFastOwnValues and TestFastDecodeOthers run on random values of them.
// The tests here cover what is particular to structs.

// Struct types the fast path must refuse, and the reason in their name.
type (
	temp             float64
	intList          []int
	withNamed        struct{ T temp }
	withNamedSlice   struct{ S intList }
	withTime         struct{ At time.Time }
	withDuration     struct{ D time.Duration }
	withPtr          struct{ P *int }
	withIface        struct{ V any }
	withMap          struct{ M map[string]int }
	withArray        struct{ A [4]byte }
	withChan         struct{ C chan int }
	withUintptr      struct{ U uintptr }
	withComplex      struct{ C complex128 }
	withPtrSlice     struct{ S []*inner }
	withSliceSlice   struct{ S [][]int }
	withRefusedInner struct{ In withMap }
	withRefusedElems struct{ S []withPtr }
	withStdStruct    struct{ P image.Point }
	recursive        struct{ Kids []recursive }
	withEmbedded     struct{ inner }
	withEmbeddedPtr  struct{ *inner }
	withEmbeddedStd  struct{ image.Point }
	withOmitStruct   struct {
		In inner `msgpack:",omitempty"`
	}
	asArray struct {
		_msgpack struct{} `msgpack:",as_array"`
		A        int
	}
	withAlias struct {
		A int `msgpack:"a,alias:b"`
	}
	withIntern struct {
		S string `msgpack:",intern"`
	}
	withInline struct {
		A int `msgpack:",inline"`
	}
	withQuote struct {
		A int `msgpack:"'a,b'"`
	}
	withOmitzero struct {
		A int `msgpack:",omitzero"`
	}
	withDup struct {
		A int
		B int `msgpack:"A"`
	}

	marshaler     struct{ A int }
	unmarshaler   struct{ A int }
	customEncoder struct{ A int }
	textMarshaler struct{ A int }
	binaryDecoder struct{ A int }
	withHooked    struct{ M marshaler }
	withHookedEls struct{ S []textMarshaler }

	registeredExt   struct{ A int } // by RegisterExtEncoder/Decoder, no methods
	registered      struct{ A int } // by msgpack.Register
	holdsRegistered struct{ R registered }
)

func (marshaler) MarshalMsgpack() ([]byte, error)           { return []byte{mNil}, nil }
func (*unmarshaler) UnmarshalMsgpack([]byte) error          { return nil }
func (*customEncoder) EncodeMsgpack(*msgpack.Encoder) error { return nil }
func (textMarshaler) MarshalText() ([]byte, error)          { return []byte("t"), nil }
func (*binaryDecoder) UnmarshalBinary([]byte) error         { return nil }

var _ encoding.TextMarshaler = textMarshaler{}

// Struct types the fast path takes, though they look close to refused ones.
type (
	withSkipped struct {
		A    int
		M    map[string]any `msgpack:"-"`
		c    chan int
		p    *int
		Emb  inner
		Embs []inner
	}
	withEmbeddedSkipped struct {
		inner `msgpack:"-"`
		A     int
	}
)

func hasFast[T any]() bool { return FastFor[T]() != nil }

func TestFastStructTypes(t *testing.T) {
	require.True(t, hasFast[point]())
	require.True(t, hasFast[struct{ A int }]())
	require.True(t, hasFast[withSkipped]())
	require.True(t, hasFast[withEmbeddedSkipped]())
	require.True(t, hasFast[square](), "a struct with methods msgpack does not use")
	for _, ft := range structTypes(rand.New(rand.NewPCG(1, 1))) {
		require.True(t, ft.(interface{ has() bool }).has(), ft.String())
	}

	for name, has := range map[string]bool{
		"named field":            hasFast[withNamed](),
		"named slice field":      hasFast[withNamedSlice](),
		"time.Time field":        hasFast[withTime](),
		"time.Duration field":    hasFast[withDuration](),
		"pointer field":          hasFast[withPtr](),
		"interface field":        hasFast[withIface](),
		"map field":              hasFast[withMap](),
		"array field":            hasFast[withArray](),
		"chan field":             hasFast[withChan](),
		"uintptr field":          hasFast[withUintptr](),
		"complex field":          hasFast[withComplex](),
		"slice of pointers":      hasFast[withPtrSlice](),
		"slice of slices":        hasFast[withSliceSlice](),
		"refused struct field":   hasFast[withRefusedInner](),
		"slice of refused":       hasFast[withRefusedElems](),
		"standard struct field":  hasFast[withStdStruct](),
		"standard struct":        hasFast[image.Point](),
		"time.Time":              hasFast[time.Time](),
		"recursive":              hasFast[recursive](),
		"embedded":               hasFast[withEmbedded](),
		"embedded pointer":       hasFast[withEmbeddedPtr](),
		"embedded standard":      hasFast[withEmbeddedStd](),
		"omitempty struct field": hasFast[withOmitStruct](),
		"as_array":               hasFast[asArray](),
		"alias":                  hasFast[withAlias](),
		"intern":                 hasFast[withIntern](),
		"inline option":          hasFast[withInline](),
		"quoted tag":             hasFast[withQuote](),
		"unknown option":         hasFast[withOmitzero](),
		"two fields of one name": hasFast[withDup](),
		"Marshaler":              hasFast[marshaler](),
		"Unmarshaler on pointer": hasFast[unmarshaler](),
		"CustomEncoder":          hasFast[customEncoder](),
		"TextMarshaler":          hasFast[textMarshaler](),
		"BinaryUnmarshaler":      hasFast[binaryDecoder](),
		"RegisterExt":            hasFast[circle](),
		"Marshaler field":        hasFast[withHooked](),
		"TextMarshaler elements": hasFast[withHookedEls](),
		"pointer to struct":      hasFast[*point](),
		"slice of structs":       hasFast[[]point](),
		"array of structs":       hasFast[[2]point](),
	} {
		require.False(t, has, name)
	}
}

func (tt typed[T]) has() bool { return tt.f != nil }

// TestFastStructRegistered registers encoders for struct types without
// methods, which their structure does not show: FastFor must find them.
func TestFastStructRegistered(t *testing.T) {
	msgpack.RegisterExtEncoder(43, registeredExt{}, func(*msgpack.Encoder, reflect.Value) ([]byte, error) {
		return []byte{1}, nil
	})
	msgpack.RegisterExtDecoder(43, registeredExt{}, func(*msgpack.Decoder, reflect.Value, int) error { return nil })
	msgpack.Register(registered{},
		func(e *msgpack.Encoder, v reflect.Value) error { return e.EncodeInt(v.Field(0).Int()) },
		func(d *msgpack.Decoder, v reflect.Value) error {
			n, err := d.DecodeInt64()
			v.Field(0).SetInt(n)
			return err
		})
	require.False(t, hasFast[registeredExt]())
	require.False(t, hasFast[registered]())
	require.False(t, hasFast[holdsRegistered]())
}

// TestFastStructRules pins the msgpack rules for structs that the fast
// path copies and that are least expected.
func TestFastStructRules(t *testing.T) {
	type f32 struct{ F float32 }
	v := f32{math.Float32frombits(0x7f800001)}
	require.Equal(t, []byte{0x81, 0xa1, 'F', mFloat, 0x7f, 0xc0, 0x00, 0x01}, FastFor[f32]().Append(nil, &v), "a float32 field goes through float64")
	var got f32
	require.True(t, FastFor[f32]().Decode([]byte{0x81, 0xa1, 'F', mFloat, 0x7f, 0x80, 0x00, 0x01}, &got))
	require.Equal(t, uint32(0x7fc00001), math.Float32bits(got.F))

	type omit struct {
		Z float64 `msgpack:"z,omitempty"`
		N float64 `msgpack:"n,omitempty"`
		S []int   `msgpack:"s,omitempty"`
	}
	o := omit{Z: math.Copysign(0, -1), N: math.NaN(), S: []int{}}
	require.Equal(t, []byte{0x81, 0xa1, 'n'}, FastFor[omit]().Append(nil, &o)[:3], "-0 and an empty slice are empty, NaN is not")

	var all allKinds
	require.Equal(t, []byte{mMap16, 0, 29}, FastFor[allKinds]().Append(nil, &all)[:3], "29 fields: a map16")
	var tg tagged
	b := FastFor[tagged]().Append(nil, &tg)
	require.Equal(t, []byte{0x86, 0xa4, 'n', 'a', 'm', 'e'}, b[:6], "6 fields not omitempty, the first renamed")
	require.True(t, bytes.Contains(b, []byte{mStr8, 56, 'a'}), "a long name in a str8")
	require.True(t, bytes.Contains(b, []byte{0xa5, 'O', 't', 'h', 'e', 'r'}), "the json tag is not read")
	require.True(t, bytes.Contains(b, []byte{0xa3, 'O', 'w', 'n'}), "an empty name is the field's")
	require.False(t, bytes.Contains(b, []byte("Dash")), "tagged -")
}

// kv is a map entry: a key written as msgpack writes it, and a value
// written by Codec.Encode.
func kv(key string, v any) []byte {
	b, err := New().Encode(v)
	if err != nil {
		panic(err)
	}
	return append(appendString(nil, key), b...)
}

// structForms are forms of structs msgpack reads but the Codec never
// writes, for the fuzz target's corpus.
func structForms() [][]byte {
	X, Y := kv("X", 1), kv("Y", -2)
	return [][]byte{
		mapOf(Y, X), mapOf(X, X), mapOf(X, kv("Z", 3)), {0x81, mNil, 0x01}, {0x93, 0x01, 0x02, 0xa1, 't'},
		mapOf(kv("In", nil), kv("ins", []any{nil, map[string]any{}})),
		mapOf(append(appendString(nil, "In"), mapOf(kv("b", "x"), kv("A", 1))...)),
	}
}

// mapOf is a map of the entries.
func mapOf(entries ...[]byte) []byte {
	return append(appendMapLen(nil, len(entries)), bytes.Join(entries, nil)...)
}

// TestFastStructDecodeForms decodes forms of a struct msgpack reads but the
// Codec never writes, and forms it refuses: Decode must take those the
// table says, and give what Codec.Decode gives, or refuse, leaving *v alone.
func TestFastStructDecodeForms(t *testing.T) {
	X, Y, tag := kv("X", 1), kv("Y", -2), kv("tag", "t")
	pointForms := []struct {
		name string
		b    []byte
		took bool
	}{
		{"in order", mapOf(X, Y, tag), true},
		{"some keys", mapOf(Y), true},
		{"no keys", mapOf(), true},
		{"nil", []byte{mNil}, true},
		{"map16", append([]byte{mMap16, 0, 2}, append(X, Y...)...), true},
		{"map32", append([]byte{mMap32, 0, 0, 0, 1}, Y...), true},
		{"other order", mapOf(Y, X), false},
		{"twice", mapOf(X, X), false},
		{"twice apart", mapOf(X, Y, X), false},
		{"unknown key", mapOf(X, kv("Z", 3)), false},
		{"key of another case", mapOf(kv("x", 3)), false},
		{"unexported name", mapOf(kv("Tag", "t")), false},
		{"key as bin", []byte{0x81, mBin8, 1, 'X', 0x01}, false},
		{"key as str8", []byte{0x81, mStr8, 1, 'X', 0x01}, false},
		{"nil key", []byte{0x81, mNil, 0x01}, false},
		{"array", []byte{0x93, 0x01, 0x02, 0xa1, 't'}, false},
		{"empty array", []byte{0x90}, false},
		{"value of another type", mapOf(kv("X", "one")), false},
		{"value as float", mapOf(kv("X", 1.0)), false},
		{"wider int", mapOf(append(appendString(nil, "X"), mUint32, 0, 0, 0, 7)), true},
		{"trailing byte", append(mapOf(X), 0x00), false},
		{"cut short", mapOf(X, Y)[:5], false},
		{"a pair too few", append([]byte{0x82}, X...), false},
		{"ext", []byte{0xd4, 0x01, 0x00}, false},
	}
	c := New()
	pt := newTyped([]point{{X: 9, Y: 9, Tag: "before"}}).(typed[point])
	for _, f := range pointForms {
		require.Equal(t, f.took, pt.decodeLikeGeneral(t, c, f.b), f.name)
	}

	In, ins := kv("In", inner{A: 1, B: "b"}), kv("ins", []inner{{A: 2}})
	nestedForms := []struct {
		name string
		b    []byte
		took bool
	}{
		{"in order", mapOf(In, ins), true},
		{"nil struct", mapOf(kv("In", nil)), true},
		{"nil slice of structs", mapOf(kv("ins", nil)), true},
		{"nil element", mapOf(kv("ins", []any{nil, map[string]any{}})), true},
		{"empty slice", mapOf(kv("ins", []inner{})), true},
		{"inner keys in another order", mapOf(append(appendString(nil, "In"), mapOf(kv("b", "x"), kv("A", 1))...)), false},
		{"inner unknown key", mapOf(kv("In", map[string]int{"Q": 1})), false},
		{"element as array", mapOf(kv("ins", [][]int{{1, 2, 3}})), false},
		{"slice as nil in a map16", append([]byte{mMap16, 0, 1}, kv("ins", nil)...), true},
	}
	nt := newTyped([]nested{{Tail: 9, Ins: []inner{{A: 5}}}}).(typed[nested])
	for _, f := range nestedForms {
		require.Equal(t, f.took, nt.decodeLikeGeneral(t, c, f.b), f.name)
	}
}

// TestFastStructShuffled rewrites random encodings with the keys in
// another order, some left out, an unknown one put in, one twice: Decode
// must refuse or give what Codec.Decode gives, and take any in order.
func TestFastStructShuffled(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 3))
	c := New()
	g := newValueGen(r)
	var taken, refused int
	check := func(ft interface {
		decodeLikeGeneral(*testing.T, *Codec, []byte) bool
	}, enc []byte) {
		pairs := splitMap(t, enc)
		var inOrder bool
		switch r.IntN(4) {
		case 0:
			r.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })
			inOrder = false
		case 1:
			pairs = slices.DeleteFunc(pairs, func([]byte) bool { return r.IntN(2) == 0 })
			inOrder = true
		case 2:
			pairs = slices.Insert(pairs, r.IntN(len(pairs)+1), kv("unknown", "x"))
		case 3:
			if len(pairs) > 0 {
				pairs = slices.Insert(pairs, r.IntN(len(pairs)+1), pairs[r.IntN(len(pairs))])
			}
		}
		took := ft.decodeLikeGeneral(t, c, mapOf(pairs...))
		if inOrder && !took {
			t.Fatalf("%x: keys in order refused", mapOf(pairs...))
		}
		if took {
			taken++
		} else {
			refused++
		}
	}
	for _, v := range structVals[allKinds](g) {
		check(newTyped([]allKinds{{I: 77}}).(typed[allKinds]), FastFor[allKinds]().Append(nil, &v))
	}
	for _, v := range structVals[tagged](g) {
		check(newTyped([]tagged{{Name: "before"}}).(typed[tagged]), FastFor[tagged]().Append(nil, &v))
	}
	for _, v := range structVals[nested](g) {
		check(newTyped([]nested{{Tail: 77}}).(typed[nested]), FastFor[nested]().Append(nil, &v))
	}
	require.NotZero(t, taken)
	require.NotZero(t, refused)
}

// splitMap returns the entries, key and value, of the msgpack map b.
func splitMap(t *testing.T, b []byte) [][]byte {
	rd := bytes.NewReader(b)
	d := msgpack.NewDecoder(rd)
	n, err := d.DecodeMapLen()
	require.NoError(t, err)
	var out [][]byte
	for range n {
		start := len(b) - rd.Len()
		require.NoError(t, d.Skip())
		require.NoError(t, d.Skip())
		out = append(out, b[start:len(b)-rd.Len()])
	}
	require.Zero(t, rd.Len())
	return out
}

// TestFastStructAllocs checks that encoding allocates nothing but the
// buffer's growth, and decoding nothing but what the value holds.
func TestFastStructAllocs(t *testing.T) {
	type small struct {
		X, Y int
		F    float64
		B    bool
		U    uint16 `msgpack:"u,omitempty"`
	}
	c := New()
	f := FastFor[small]()
	allocs := testing.AllocsPerRun(100, func() {
		c.Reset()
		b, err := EncodeWith(c, f, small{X: 1, Y: -300, F: 2.5, U: 9})
		if err != nil {
			t.Fatal(err)
		}
		v, err := DecodeWith(c, f, b)
		if err != nil || v.Y != -300 || v.U != 9 {
			t.Fatal(v, err)
		}
	})
	require.Zero(t, allocs)

	g := newValueGen(rand.New(rand.NewPCG(1, 4)))
	fn := FastFor[nested]()
	buf := make([]byte, 0, 1<<20)
	for _, v := range structVals[nested](g) {
		require.Zero(t, testing.AllocsPerRun(10, func() { fn.Append(buf[:0], &v) }))
	}

	type el struct{ A int }
	type els struct{ S []el }
	fe := FastFor[els]()
	for _, v := range []els{{S: []el{{1}, {2}, {3}}}, {S: []el{}}} {
		enc := fe.Append(nil, &v)
		require.Equal(t, float64(len(v.S)/3), testing.AllocsPerRun(100, func() {
			if got, err := DecodeWith(c, fe, enc); err != nil || len(got.S) != len(v.S) || got.S == nil {
				t.Fatal(got, err)
			}
		}), "a slice of structs is one allocation, an empty one none")
	}

	fp := FastFor[point]()
	enc := fp.Append(nil, &point{X: 1, Tag: "a string"})
	require.Equal(t, 1.0, testing.AllocsPerRun(100, func() {
		if v, err := DecodeWith(c, fp, enc); err != nil || v.Tag != "a string" {
			t.Fatal(v, err)
		}
	}), "the string only")
}

// TestFastStructRefusesLengthsPastTheEnd gives Decode headers, of the
// struct and of its fields, that claim more than follows them: it must
// refuse them before allocating for them.
func TestFastStructRefusesLengthsPastTheEnd(t *testing.T) {
	key := func(k string) []byte { return appendString(nil, k) }
	fn, fa := FastFor[nested](), FastFor[allKinds]()
	for _, b := range [][]byte{
		{mMap32, 0xff, 0xff, 0xff, 0xff},
		{mMap16, 0xff, 0xff, 0x01, 0x01},
		{0x83, 0xa1, 'X', 0x01},
		append(append([]byte{0x81}, key("ins")...), mArray32, 0xff, 0xff, 0xff, 0xff),
		append(append([]byte{0x81}, key("ins")...), mArray16, 0x01, 0x00, 0x80, 0x80),
		append(append([]byte{0x81}, key("deep")...), 0x81, 0xa4, 'L', 'i', 's', 't', mArray32, 0x7f, 0xff, 0xff, 0xff),
		append(append([]byte{0x81}, key("Is")...), mArray32, 0xff, 0xff, 0xff, 0xff),
		append(append([]byte{0x81}, key("S")...), mStr32, 0xff, 0xff, 0xff, 0xff),
	} {
		var n nested
		var a allKinds
		took := false
		allocs := testing.AllocsPerRun(10, func() {
			took = took || fn.Decode(b, &n) || fa.Decode(b, &a)
		})
		require.False(t, took, "%x", b)
		require.Zero(t, allocs, "%x", b)
	}
}

// TestFastStructDecodeCopies checks that decoded strings and slices hold
// no byte of the input, which the caller reuses.
func TestFastStructDecodeCopies(t *testing.T) {
	in := tagged{Name: "name", Data: []byte("data"), List: []string{"l"}, Other: "other"}
	b := FastFor[tagged]().Append(nil, &in)
	var out tagged
	require.True(t, FastFor[tagged]().Decode(b, &out))
	for i := range b {
		b[i] = 'X'
	}
	require.Equal(t, in, out)
}
