package codec

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// Types that can contain themselves, each through another kind of reference.
type (
	node struct {
		V    int
		Next *node
	}
	tree struct {
		Name string
		Kids []tree
	}
	graph map[string]graph
	boxed struct {
		V any
	}
	// Mutual recursion: a reaches itself only through b.
	a struct{ B *b }
	b struct {
		A *a
		N int
	}
	// holdsNode is not recursive itself, but holds a type that is.
	holdsNode struct {
		Label string
		Head  *node
	}
	// selfEncoded reaches itself, but encodes itself: msgpack does not
	// look inside it, and neither does the walk.
	selfEncoded struct{ Self *selfEncoded }
	// hidden reaches itself only through a field msgpack leaves out.
	hidden struct {
		Name string
		up   *hidden
		Up   *hidden `msgpack:"-"`
	}
)

func (s *selfEncoded) EncodeMsgpack(e *msgpack.Encoder) error { return e.EncodeNil() }

// TestWhichTypesAreWalked pins the decision made once per type: only values
// that can contain themselves, or hold an interface, are walked.
func TestWhichTypesAreWalked(t *testing.T) {
	notWalked := []any{
		0, "", 1.5, true, []byte(nil), [4]int{}, []string(nil), map[string]int(nil),
		map[string][]float64(nil), point{}, &point{}, []point(nil), map[int]*point(nil),
		time.Time{}, time.Duration(0), struct{ T time.Time }{},
		selfEncoded{}, &selfEncoded{}, hidden{},
		struct{ Err error }{}, // an error field is sent as its text
	}
	for _, v := range notWalked {
		assert.False(t, infoOf(reflect.TypeOf(v)).walk, "%T must not be walked", v)
	}
	walked := []any{
		node{}, &node{}, tree{}, graph(nil), boxed{}, a{}, &b{}, holdsNode{}, []holdsNode(nil),
		map[string]any(nil), []any(nil), shape{}, struct{ X fmtStringer }{},
	}
	for _, v := range walked {
		assert.True(t, infoOf(reflect.TypeOf(v)).walk, "%T must be walked", v)
	}
	// Within a walked type, only the fields that need it are visited.
	ti := infoOf(reflect.TypeFor[holdsNode]())
	require.Len(t, ti.fields, 1)
	assert.Equal(t, "Head", ti.fields[0].name)
}

type fmtStringer interface{ String() string }

// TestCycles checks that a value containing itself, through each kind of
// reference, fails to encode with an error naming the way round, and leaves
// the arena as it was.
func TestCycles(t *testing.T) {
	self := &node{V: 1}
	self.Next = self

	ring := &node{V: 1, Next: &node{V: 2, Next: &node{V: 3}}}
	ring.Next.Next.Next = ring.Next

	kids := make([]tree, 1)
	kids[0] = tree{Name: "kid", Kids: kids}

	g := graph{}
	g["loop"] = graph{"back": g}

	box := &boxed{}
	box.V = box

	inMap := map[string]any{"k": nil}
	inMap["k"] = []any{1, inMap}

	var ab a
	ab.B = &b{A: &ab}

	var loop any
	loop = &loop

	tests := []struct {
		name string
		in   any
		to   string // the path that leads back
		from string // to where
		typs string
	}{
		{"pointer to itself", self, "v.Next", "v", "*codec.node → *codec.node"},
		{"pointer ring", ring, "v.Next.Next.Next", "v.Next", "*codec.node → *codec.node → *codec.node"},
		{"slice holding itself", tree{Name: "root", Kids: kids}, "v.Kids[0].Kids", "v.Kids", "[]codec.tree → []codec.tree"},
		{"map holding itself", g, `v["loop"]["back"]`, "v", "codec.graph → codec.graph → codec.graph"},
		{"interface holding its holder", box, "v.V.(*codec.boxed)", "v", "*codec.boxed → *codec.boxed"},
		{"any map through a slice", inMap, `v["k"].([]interface {})[1].(map[string]interface {})`, "v", "map[string]interface {} → []interface {} → map[string]interface {}"},
		{"mutual recursion", &ab, "v.B.A", "v", "*codec.a → *codec.b → *codec.a"},
		{"interface pointing to itself", &loop, "v.(*interface {})", "v", "*interface {} → *interface {}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New()
			first, err := c.Encode("first")
			require.NoError(t, err)
			out, err := c.Encode(tt.in)
			require.Nil(t, out)
			var ce *CycleError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tt.to, ce.To)
			assert.Equal(t, tt.from, ce.From)
			assert.Contains(t, err.Error(), "("+tt.typs+")")
			assert.Contains(t, err.Error(), "contains a cycle, which msgpack cannot encode")
			assert.Equal(t, first, c.Bytes(), "a refused value leaves nothing in the arena")
			_, err = c.Encode(7)
			require.NoError(t, err, "the codec goes on")
		})
	}
}

// TestSharedIsNoCycle: the same part reached twice, not through itself, is
// encoded twice, as msgpack does; only a part on its own way down is a cycle.
func TestSharedIsNoCycle(t *testing.T) {
	shared := &node{V: 5}
	list := []*node{shared, shared, {V: 1, Next: shared}}
	m := map[string]any{"a": shared, "b": []any{shared, shared}}
	backing := make([]tree, 3)
	backing[0] = tree{Name: "first", Kids: backing[1:2]} // another slice of the same array
	box := &boxed{V: &boxed{V: 1}}
	type pair struct{ L, R *node }
	c := New()
	for _, v := range []any{list, m, backing, box, pair{shared, shared}} {
		b, err := c.Encode(v)
		require.NoError(t, err, "%T", v)
		require.NotEmpty(t, b)
	}
}

// TestDepthBound: a deep value that does not contain itself is refused past
// MaxDepth levels, before msgpack can recurse that deep; up to it, it is
// encoded.
func TestDepthBound(t *testing.T) {
	list := func(n int) *node {
		var head *node
		for i := range n {
			head = &node{V: i, Next: head}
		}
		return head
	}
	c := New()
	b, err := c.Encode(list(MaxDepth))
	require.NoError(t, err)
	var back *node
	require.NoError(t, c.Decode(b, &back))
	assert.Equal(t, MaxDepth-1, back.V)

	_, err = c.Encode(list(MaxDepth + 1))
	var de *DepthError
	require.ErrorAs(t, err, &de)
	assert.Contains(t, err.Error(), "value of type *codec.node nests more than 10000 levels deep")
	assert.Contains(t, err.Error(), "v.Next.Next.Next…(")

	// Nested interfaces, as decoded JSON-like data is.
	var deep any = 1
	for range MaxDepth + 1 {
		deep = []any{deep}
	}
	_, err = c.Encode(deep)
	require.ErrorAs(t, err, &de)

	// A chain of pointers nests with no level at all.
	var chain any
	for range 5 * MaxDepth {
		prev := chain
		chain = &prev
	}
	_, err = c.Encode(chain)
	require.ErrorAs(t, err, &de)
}

// TestPlainEncodeDoesNotWalk: the check costs a value of a type without
// recursion or interfaces nothing, not even an allocation.
func TestPlainEncodeDoesNotWalk(t *testing.T) {
	c := New()
	p := point{X: 1, Y: 2, Tag: "t"}
	checked := testing.AllocsPerRun(100, func() {
		c.Reset()
		if _, err := c.Encode(p); err != nil {
			t.Fatal(err)
		}
	})
	var boxed any = p
	bare := testing.AllocsPerRun(100, func() {
		c.Reset()
		if err := c.encode(boxed); err != nil {
			t.Fatal(err)
		}
	})
	// Encode boxes p into an any; the rest is msgpack's own.
	assert.Equal(t, bare+1, checked, "the check allocates nothing")
	assert.Zero(t, c.w.walks, "the walker never ran")

	_, err := c.Encode(&node{V: 1})
	require.NoError(t, err)
	assert.Equal(t, 1, c.w.walks, "a recursive type is walked")
}

// TestCheckType pins what Register refuses, and what it lets through.
func TestCheckType(t *testing.T) {
	type job struct {
		Name  string
		Steps []struct {
			Done chan struct{}
		}
	}
	type callbacks struct {
		OnDone func(int) `msgpack:",omitempty"`
	}
	type keyed struct{ M map[complex64]string }
	type unsafePtr struct{ P unsafe.Pointer }
	type handle struct{ H uintptr }
	refused := []struct {
		t    reflect.Type
		want string
	}{
		{reflect.TypeFor[chan int](), "chan int is a channel, which msgpack cannot encode"},
		{reflect.TypeFor[func()](), "func() is a func, which msgpack cannot encode"},
		{reflect.TypeFor[*job](), "codec.job.Steps[i].Done is a channel (chan struct {}), which msgpack cannot encode; leave the field out with the tag `msgpack:\"-\"`"},
		{reflect.TypeFor[[]callbacks](), "[]codec.callbacks[i].OnDone is a func (func(int))"},
		{reflect.TypeFor[keyed](), "a key of codec.keyed.M is a complex number (complex64)"},
		{reflect.TypeFor[map[string]unsafePtr](), "map[string]codec.unsafePtr[k].P is an unsafe.Pointer"},
		{reflect.TypeFor[handle](), "codec.handle.H is a uintptr"},
		{reflect.TypeFor[complex128](), "complex128 is a complex number"},
	}
	for _, tt := range refused {
		err := CheckType(tt.t)
		var te *TypeError
		require.ErrorAs(t, err, &te, "%s", tt.t)
		assert.Contains(t, err.Error(), tt.want)
	}

	type leftOut struct {
		Name string
		Done chan struct{} `msgpack:"-"`
		done chan struct{}
	}
	accepted := []reflect.Type{
		reflect.TypeFor[int](), reflect.TypeFor[shape](), reflect.TypeFor[leftOut](),
		reflect.TypeFor[node](), reflect.TypeFor[graph](), reflect.TypeFor[any](),
		reflect.TypeFor[selfEncodedChan](), reflect.TypeFor[time.Time](), reflect.TypeFor[struct{ E error }](),
	}
	for _, typ := range accepted {
		assert.NoError(t, CheckType(typ), "%s", typ)
	}
}

// selfEncodedChan holds a channel, but encodes and decodes itself.
type selfEncodedChan struct{ C chan int }

func (s selfEncodedChan) EncodeMsgpack(e *msgpack.Encoder) error { return e.EncodeNil() }
func (s *selfEncodedChan) DecodeMsgpack(d *msgpack.Decoder) error {
	s.C = make(chan int)
	return d.Skip()
}

type area interface{ Area() float64 }

type square struct{ Side float64 }

func (s square) Area() float64 { return s.Side * s.Side }

type circle struct{ R float64 }

func (c *circle) Area() float64                   { return 3 * c.R * c.R }
func (c *circle) MarshalMsgpack() ([]byte, error) { return msgpack.Marshal(c.R) }
func (c *circle) UnmarshalMsgpack(b []byte) error { return msgpack.Unmarshal(b, &c.R) }

func init() { msgpack.RegisterExt(42, (*circle)(nil)) }

// TestInterfaceFields: an interface with methods is filled only if the data
// says which concrete type to make; otherwise decoding fails with an error
// naming the field and the interface, not reflect's panic.
func TestInterfaceFields(t *testing.T) {
	type scene struct {
		Name    string
		Main    area
		Others  []area
		ByName  map[string]area
		Failure error
	}
	c := New()
	enc := func(v any) []byte {
		b, err := c.Encode(v)
		require.NoError(t, err)
		return b
	}

	var got scene
	require.NoError(t, c.Decode(enc(scene{Name: "empty"}), &got), "nil interfaces cross")
	assert.Equal(t, scene{Name: "empty"}, got)

	got = scene{}
	require.NoError(t, c.Decode(enc(scene{Main: &circle{R: 2}, Others: []area{&circle{R: 1}}}), &got), "a type registered with RegisterExt crosses")
	assert.Equal(t, &circle{R: 2}, got.Main)

	got = scene{}
	require.NoError(t, c.Decode(enc(scene{Failure: errors.New("boom")}), &got), "an error field crosses as its text")
	assert.EqualError(t, got.Failure, "boom")

	got = scene{}
	err := c.Decode(enc(scene{Others: []area{square{Side: 2}}}), &got)
	var ie *InterfaceError
	require.ErrorAs(t, err, &ie)
	assert.Equal(t, "cannot decode codec.scene.Main or codec.scene.Others[i] or codec.scene.ByName[k] (of interface type codec.area): "+
		"msgpack made a map[string]interface {} of the data sent, which is not a codec.area, as nothing in it says which concrete type to make; "+
		"make the field a concrete type, give codec.scene a DecodeMsgpack method, or register each concrete type that is sent in it with msgpack.RegisterExt", err.Error())

	var whole area
	err = c.Decode(enc(square{Side: 1}), &whole)
	require.ErrorAs(t, err, &ie)
	assert.True(t, strings.HasPrefix(err.Error(), "cannot decode into interface type codec.area: msgpack made a map[string]interface {} "), err.Error())

	var e error
	err = c.Decode(enc(errors.New("boom")), &e)
	require.ErrorAs(t, err, &ie)
	assert.Contains(t, err.Error(), "send the error's text instead")

	var n int
	require.NoError(t, c.Decode(enc(3), &n), "the codec goes on")
}

// Structs that embed themselves, over which msgpack's field inlining
// recurses forever, whatever the value.
type (
	selfEmbed struct {
		*selfEmbed
		V int
	}
	embA struct {
		*embB
		X int
	}
	embB struct {
		embA
		Y int
	}
	Chained struct {
		*Chained `msgpack:",noinline"`
		V        int
	}
)

func TestEmbedLoop(t *testing.T) {
	err := CheckType(reflect.TypeFor[[]selfEmbed]())
	var ee *EmbedError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, "codec.selfEmbed embeds *codec.selfEmbed, which msgpack cannot encode or decode: it inlines an embedded struct's fields, and recurses forever over a struct that embeds itself; give the field a name, or tag it `msgpack:\",noinline\"`", err.Error())
	err = CheckType(reflect.TypeFor[embB]())
	require.ErrorAs(t, err, &ee)
	assert.Contains(t, err.Error(), "codec.embB embeds codec.embA, which codec.embA embeds *codec.embB, which msgpack cannot")

	c := New()
	for _, v := range []any{selfEmbed{V: 1}, &embA{X: 1}, []any{&embB{}}} {
		_, err := c.Encode(v)
		require.ErrorAs(t, err, &ee, "%T", v)
	}
	_, err = c.Encode(&selfEmbed{}) // the struct is what msgpack cannot do
	require.ErrorAs(t, err, &ee)
	_, err = c.Encode((*selfEmbed)(nil)) // a nil pointer it does not look into
	require.NoError(t, err)

	require.NoError(t, CheckType(reflect.TypeFor[Chained]()))
	b, err := c.Encode(Chained{V: 1, Chained: &Chained{V: 2}})
	require.NoError(t, err)
	var out Chained
	require.NoError(t, c.Decode(b, &out))
	assert.Equal(t, 2, out.Chained.V)
}

// TestEmbeddedUnexportedPointer: msgpack sends the fields of an embedded
// pointer to an unexported struct type, but cannot set the pointer when
// decoding; the README says so.
func TestEmbeddedUnexportedPointer(t *testing.T) {
	type inner struct{ A int }
	type outer struct {
		*inner
		B int
	}
	c := New()
	b, err := c.Encode(outer{inner: &inner{A: 1}, B: 2})
	require.NoError(t, err)
	var out outer
	var pe *PanicError
	require.ErrorAs(t, c.Decode(b, &out), &pe)
	assert.Contains(t, pe.Error(), "unexported field")

	type plain struct {
		inner
		B int
	}
	b, err = c.Encode(plain{inner: inner{A: 1}, B: 2})
	require.NoError(t, err)
	var back plain
	require.NoError(t, c.Decode(b, &back), "an embedded unexported struct, not a pointer, crosses")
	assert.Equal(t, plain{inner: inner{A: 1}, B: 2}, back)
}
