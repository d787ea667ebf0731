//go:build unix

package procpool_test

// What crosses between processes: values that contain themselves or nest too
// deep, types Register refuses, interfaces, and each rule the README's table
// states.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/procpool/procpool/pkg/procpool"
)

// Types whose values can contain themselves, each through another kind of
// reference.
type (
	codecNode struct {
		V    int
		Next *codecNode
	}
	codecTree struct {
		Name string
		Kids []codecTree
	}
	codecGraph map[string]codecGraph
	codecBox   struct{ V any }
)

// codecList returns a list of n nodes, n-1 down to 0.
func codecList(n int) *codecNode {
	var head *codecNode
	for i := range n {
		head = &codecNode{V: i, Next: head}
	}
	return head
}

func (n *codecNode) len() int {
	k := 0
	for ; n != nil; n = n.Next {
		k++
	}
	return k
}

var (
	CodecCount = procpool.Register("test.codec.count", func(_ context.Context, n *codecNode) (int, error) { return n.len(), nil })
	CodecTree  = procpool.Register("test.codec.tree", func(_ context.Context, t codecTree) (int, error) { return len(t.Kids), nil })
	CodecGraph = procpool.Register("test.codec.graph", func(_ context.Context, g codecGraph) (int, error) { return len(g), nil })
	// CodecTypeOf tells what the worker made of an argument sent as an any.
	CodecTypeOf = procpool.Register("test.codec.type-of", func(_ context.Context, v any) (string, error) { return fmt.Sprintf("%T %v", v, v), nil })
	// CodecLoop returns a list of n nodes; for 0, a node that is its own next.
	CodecLoop = procpool.Register("test.codec.loop", func(_ context.Context, n int) (*codecNode, error) {
		if n == 0 {
			l := &codecNode{}
			l.Next = l
			return l, nil
		}
		return codecList(n), nil
	})
)

func requireCodecError(t *testing.T, err error, stage procpool.Stage, text ...string) {
	t.Helper()
	var ce *procpool.CodecError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, stage, ce.Stage)
	for _, s := range text {
		assert.Contains(t, ce.Message, s)
	}
}

// TestCodecCycleSubmit: an argument that contains itself, through a pointer,
// a slice, a map or an interface, used to end the program with a stack
// overflow inside msgpack. Now that call alone fails, before anything is
// sent, and the pool and its worker go on.
func TestCodecCycleSubmit(t *testing.T) {
	p, _ := newPool(t, relCfg(procpool.Config{Workers: 1}))
	pid, err := PID.Submit(p, struct{}{}).Get(ctx(t))
	require.NoError(t, err)

	self := &codecNode{V: 1}
	self.Next = self
	_, err = CodecCount.Submit(p, self).Get(ctx(t))
	requireCodecError(t, err, procpool.EncodeArgument,
		"value of type *procpool_test.codecNode contains a cycle, which msgpack cannot encode: v.Next leads back to v (*procpool_test.codecNode → *procpool_test.codecNode)")

	kids := make([]codecTree, 1)
	kids[0] = codecTree{Name: "kid", Kids: kids}
	_, err = CodecTree.Submit(p, codecTree{Name: "root", Kids: kids}).Get(ctx(t))
	requireCodecError(t, err, procpool.EncodeArgument, "v.Kids[0].Kids leads back to v.Kids")

	g := codecGraph{}
	g["me"] = g
	_, err = CodecGraph.Submit(p, g).Get(ctx(t))
	requireCodecError(t, err, procpool.EncodeArgument, `v["me"] leads back to v`)

	box := &codecBox{}
	box.V = []any{"x", box}
	_, err = CodecTypeOf.Submit(p, box).Get(ctx(t))
	requireCodecError(t, err, procpool.EncodeArgument, "v.V.([]interface {})[1].(*procpool_test.codecBox) leads back to v")

	// Deep without a cycle: refused past the bound, encoded up to it.
	_, err = CodecCount.Submit(p, codecList(10_001)).Get(ctx(t))
	requireCodecError(t, err, procpool.EncodeArgument, "nests more than 10000 levels deep")
	n, err := CodecCount.Submit(p, codecList(10_000)).Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, 10_000, n)

	// The same part twice is no cycle.
	shared := &codecNode{V: 7}
	n, err = CodecCount.Submit(p, &codecNode{Next: &codecNode{Next: shared}}).Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	_, err = CodecTypeOf.Submit(p, []any{shared, shared}).Get(ctx(t))
	require.NoError(t, err)

	again, err := PID.Submit(p, struct{}{}).Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, pid, again, "no cycle costs a worker")
	require.NoError(t, p.Close())
}

// TestCodecCycleMapImap: in Map, the element that contains itself fails the
// Map, naming the element; in Imap, it fails alone, and the others run.
func TestCodecCycleMapImap(t *testing.T) {
	p, _ := newPool(t, relCfg(procpool.Config{Workers: 2}))
	self := &codecNode{V: 1}
	self.Next = self
	in := []*codecNode{codecList(2), codecList(3), self, codecList(4)}

	_, err := CodecCount.Map(ctx(t), p, in, procpool.Chunksize(1))
	requireCodecError(t, err, procpool.EncodeArgument, "contains a cycle")
	assert.Contains(t, err.Error(), "map element 2: ")

	var got []int
	var errs []error
	for n, err := range CodecCount.Imap(ctx(t), p, slices.Values(in), procpool.Chunksize(2)) {
		got = append(got, n)
		errs = append(errs, err)
	}
	require.Len(t, errs, 4)
	assert.Equal(t, []int{2, 3, 0, 4}, got)
	assert.NoError(t, errs[0])
	assert.NoError(t, errs[1])
	requireCodecError(t, errs[2], procpool.EncodeArgument, "contains a cycle")
	assert.NoError(t, errs[3])

	out, err := CodecCount.Map(ctx(t), p, []*codecNode{codecList(1), codecList(5)})
	require.NoError(t, err)
	assert.Equal(t, []int{1, 5}, out)
	require.NoError(t, p.Close())
}

// TestCodecCycleResult: a task that returns a value containing itself, or
// nested too deep, fails that call; its worker lives on. On the Goroutines
// backend the result is encoded in this very process, which must survive it
// too.
func TestCodecCycleResult(t *testing.T) {
	for _, backend := range []procpool.Backend{procpool.Processes, procpool.Goroutines} {
		t.Run(backend.String(), func(t *testing.T) {
			p, _ := newPool(t, relCfg(procpool.Config{Workers: 1, Backend: backend}))
			pid, err := PID.Submit(p, struct{}{}).Get(ctx(t))
			require.NoError(t, err)

			_, err = CodecLoop.Submit(p, 0).Get(ctx(t))
			requireCodecError(t, err, procpool.EncodeResult,
				"encode result of type *procpool_test.codecNode: value of type *procpool_test.codecNode contains a cycle, which msgpack cannot encode: v.Next leads back to v")
			_, err = CodecLoop.Submit(p, 20_000).Get(ctx(t))
			requireCodecError(t, err, procpool.EncodeResult, "nests more than 10000 levels deep")

			l, err := CodecLoop.Submit(p, 3).Get(ctx(t))
			require.NoError(t, err)
			assert.Equal(t, 3, l.len())
			again, err := PID.Submit(p, struct{}{}).Get(ctx(t))
			require.NoError(t, err)
			assert.Equal(t, pid, again, "the worker lived on")
			require.NoError(t, p.Close())
		})
	}
}

// TestCodecRegisterRefuses: what can never cross is refused once, at
// Register, with the field named, rather than at every call.
func TestCodecRegisterRefuses(t *testing.T) {
	type job struct {
		Name  string
		Steps []struct{ Done chan struct{} }
	}
	type hooks struct{ OnDone func(int) }
	type chain struct {
		*chain
		V int
	}
	for _, tc := range []struct {
		name     string
		register func()
		want     string
	}{
		{"chan in a field of an element", func() {
			procpool.Register("test.codec.refused-chan", func(context.Context, job) (int, error) { return 0, nil })
		}, "its argument type procpool_test.job cannot be sent to a worker: procpool_test.job.Steps[i].Done is a channel (chan struct {}), which msgpack cannot encode; leave the field out with the tag `msgpack:\"-\"`"},
		{"func in a result", func() {
			procpool.Register("test.codec.refused-func", func(context.Context, int) (*hooks, error) { return nil, nil })
		}, "its result type *procpool_test.hooks cannot come back from a worker: procpool_test.hooks.OnDone is a func (func(int))"},
		{"uintptr in a map", func() {
			procpool.Register("test.codec.refused-unsafe", func(context.Context, map[string]struct{ P uintptr }) (int, error) { return 0, nil })
		}, "map[string]struct { P uintptr }[k].P is a uintptr"},
		{"a struct embedding itself", func() {
			procpool.Register("test.codec.refused-embed", func(context.Context, []chain) (int, error) { return 0, nil })
		}, "its argument type []procpool_test.chain cannot be sent to a worker: procpool_test.chain embeds *procpool_test.chain, which msgpack cannot encode or decode"},
		{"a chan as the whole argument", func() {
			procpool.Register("test.codec.refused-whole", func(context.Context, chan int) (int, error) { return 0, nil })
		}, "its argument type chan int cannot be sent to a worker: chan int is a channel, which msgpack cannot encode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				msg := fmt.Sprint(recover())
				assert.Contains(t, msg, "procpool: task \"test.codec.refused-")
				assert.Contains(t, msg, "codec_rules_test.go:")
				assert.Contains(t, msg, "cannot run in a worker: ")
				assert.Contains(t, msg, tc.want)
			}()
			tc.register()
		})
	}
}

// The README's table, rule by rule.

type codecPoint struct{ X, Y int }

type codecEmbedded struct{ E int }

// codecRules holds one field per rule of the README's table that a typed
// field shows.
type codecRules struct {
	Int        int
	Int8       int8
	Uint64     uint64
	Float32    float32
	Bool       bool
	Str        string
	Bytes      []byte
	NilBytes   []byte
	EmptyBytes []byte
	Ints       []int
	NilInts    []int
	EmptyInts  []int
	Array      [3]int
	Map        map[string]int
	NilMap     map[string]int
	EmptyMap   map[string]int
	IntKeys    map[int]string
	Struct     codecPoint
	Ptr        *codecPoint
	NilPtr     *codecPoint
	Shared1    *int
	Shared2    *int
	When       time.Time
	Zero       time.Time
	Dur        time.Duration
	Err        error
	NilErr     error
	Any        any
	Renamed    int      `msgpack:"renamed"`
	Skipped    int      `msgpack:"-"`
	LeftOut    chan int `msgpack:"-"`
	hidden     int
	codecEmbedded
}

// codecOwn holds a channel, but encodes and decodes itself: Register takes
// it on trust.
type codecOwn struct{ C chan int }

func (o codecOwn) EncodeMsgpack(e *msgpack.Encoder) error { return e.EncodeBool(o.C != nil) }
func (o *codecOwn) DecodeMsgpack(d *msgpack.Decoder) error {
	has, err := d.DecodeBool()
	if has {
		o.C = make(chan int)
	}
	return err
}

// Interfaces with methods.
type (
	codecShape  interface{ Area() float64 }
	codecSquare struct{ Side float64 }
	codecCircle struct{ R float64 }
	codecScene  struct {
		Name string
		Main codecShape
	}
)

func (s codecSquare) Area() float64  { return s.Side * s.Side }
func (c *codecCircle) Area() float64 { return 3 * c.R * c.R }

// codecCircle is registered with msgpack as an extension type: the data then
// says which type it is, and it can fill a codecShape.
func (c *codecCircle) MarshalMsgpack() ([]byte, error) { return msgpack.Marshal(c.R) }
func (c *codecCircle) UnmarshalMsgpack(b []byte) error { return msgpack.Unmarshal(b, &c.R) }

func init() { msgpack.RegisterExt(77, (*codecCircle)(nil)) }

var (
	CodecEcho      = procpool.Register("test.codec.echo", func(_ context.Context, v codecRules) (codecRules, error) { return v, nil })
	CodecOwnEcho   = procpool.Register("test.codec.own", func(_ context.Context, v codecOwn) (codecOwn, error) { return v, nil })
	CodecArea      = procpool.Register("test.codec.area", func(_ context.Context, s codecScene) (float64, error) { return areaOf(s.Main), nil })
	CodecErrorText = procpool.Register("test.codec.error-arg", func(_ context.Context, err error) (string, error) { return fmt.Sprint(err), nil })
	// CodecZone tells how the worker sees a time: its zone, and the instant.
	CodecZone = procpool.Register("test.codec.zone", func(_ context.Context, t time.Time) (string, error) {
		return t.Format("15:04 MST") + " " + fmt.Sprint(t.Location() == time.Local), nil
	})
)

func areaOf(s codecShape) float64 {
	if s == nil {
		return 0
	}
	return s.Area()
}

// TestCodecRules checks each rule of the README's table on both backends:
// they encode the same way.
func TestCodecRules(t *testing.T) {
	for _, backend := range []procpool.Backend{procpool.Processes, procpool.Goroutines} {
		t.Run(backend.String(), func(t *testing.T) {
			p, _ := newPool(t, relCfg(procpool.Config{Workers: 1, Backend: backend}))
			shared := 9
			when := time.Date(2024, 5, 6, 7, 8, 9, 10, time.FixedZone("CEST", 2*3600))
			in := codecRules{
				Int: -1 << 40, Int8: -128, Uint64: 1<<64 - 1, Float32: 1.25, Bool: true, Str: "héllo\x00\xff",
				Bytes: []byte{0, 1, 255}, EmptyBytes: []byte{}, Ints: []int{3, -3}, EmptyInts: []int{},
				Array: [3]int{1, 2, 3}, Map: map[string]int{"a": 1}, EmptyMap: map[string]int{}, IntKeys: map[int]string{-1: "m"},
				Struct: codecPoint{1, 2}, Ptr: &codecPoint{3, 4}, Shared1: &shared, Shared2: &shared,
				When: when, Dur: 90 * time.Second, Err: errors.New("boom"), Any: codecPoint{5, 6},
				Renamed: 11, Skipped: 12, LeftOut: make(chan int), hidden: 13, codecEmbedded: codecEmbedded{E: 14},
			}
			out, err := CodecEcho.Submit(p, in).Get(ctx(t))
			require.NoError(t, err)

			// Numbers, strings, bytes: exact.
			assert.Equal(t, in.Int, out.Int)
			assert.Equal(t, in.Int8, out.Int8)
			assert.Equal(t, in.Uint64, out.Uint64)
			assert.Equal(t, in.Float32, out.Float32)
			assert.Equal(t, in.Bool, out.Bool)
			assert.Equal(t, in.Str, out.Str, "strings are bytes: invalid UTF-8 crosses too")
			assert.Equal(t, in.Bytes, out.Bytes)
			// nil and empty stay apart.
			assert.Nil(t, out.NilBytes)
			assert.NotNil(t, out.EmptyBytes)
			assert.Empty(t, out.EmptyBytes)
			assert.Nil(t, out.NilInts)
			assert.NotNil(t, out.EmptyInts)
			assert.Nil(t, out.NilMap)
			assert.NotNil(t, out.EmptyMap)
			// Slices, arrays, maps, structs: element by element.
			assert.Equal(t, in.Ints, out.Ints)
			assert.Equal(t, in.Array, out.Array)
			assert.Equal(t, in.Map, out.Map)
			assert.Equal(t, in.IntKeys, out.IntKeys)
			assert.Equal(t, in.Struct, out.Struct)
			assert.Equal(t, in.codecEmbedded, out.codecEmbedded, "an embedded struct's fields cross")
			// Pointers: the value they point to; nil stays nil; sharing is lost.
			assert.Equal(t, in.Ptr, out.Ptr)
			assert.Nil(t, out.NilPtr)
			assert.Equal(t, 9, *out.Shared1)
			assert.Equal(t, 9, *out.Shared2)
			assert.NotSame(t, out.Shared1, out.Shared2, "two pointers to one value come back as two values")
			// Times: the same instant, in the local zone; the zone sent is lost.
			assert.True(t, in.When.Equal(out.When))
			assert.Same(t, time.Local, out.When.Location())
			assert.Same(t, time.UTC, out.Zero.Location(), "the zero time comes back in UTC")
			assert.True(t, out.Zero.IsZero())
			assert.Equal(t, in.Dur, out.Dur, "a Duration is an int64")
			// Errors: their text.
			require.Error(t, out.Err)
			assert.Equal(t, "boom", out.Err.Error())
			assert.Equal(t, "*errors.errorString", fmt.Sprintf("%T", out.Err))
			assert.NoError(t, out.NilErr)
			// any: loose types.
			assert.Equal(t, map[string]any{"X": int64(5), "Y": int64(6)}, out.Any)
			// Tags rename and leave out; unexported fields are dropped silently.
			assert.Equal(t, 11, out.Renamed)
			assert.Zero(t, out.Skipped)
			assert.Nil(t, out.LeftOut)
			assert.Zero(t, out.hidden)

			// A type that encodes itself is taken on trust, chan and all.
			own, err := CodecOwnEcho.Submit(p, codecOwn{C: make(chan int)}).Get(ctx(t))
			require.NoError(t, err)
			assert.NotNil(t, own.C)

			// What an any holds arrives as msgpack's loose types.
			for _, tc := range []struct {
				in   any
				want string
			}{
				{5, "int64 5"},
				{-5, "int64 -5"},
				{300, "uint64 300"}, // a non-negative number travels as a msgpack uint
				{uint8(7), "int64 7"},
				{float32(1.5), "float64 1.5"},
				{"s", "string s"},
				{[]byte("b"), "string b"}, // bytes come back as a string
				{true, "bool true"},
				{nil, "<nil> <nil>"},
				{[]int{1}, "[]interface {} [1]"},
				{codecPoint{1, 2}, "map[string]interface {} map[X:1 Y:2]"},
				{when, "time.Time " + when.Local().String()},
			} {
				got, err := CodecTypeOf.Submit(p, tc.in).Get(ctx(t))
				require.NoError(t, err)
				assert.Equal(t, tc.want, got, "%T %v", tc.in, tc.in)
			}

			// A map in an any needs string keys.
			_, err = CodecTypeOf.Submit(p, map[int]int{1: 2}).Get(ctx(t))
			requireCodecError(t, err, procpool.DecodeArgument, "decoding string/bytes length")

			// Interfaces with methods: nil crosses, a registered extension
			// type crosses, any other value fails that call, naming the
			// field.
			a, err := CodecArea.Submit(p, codecScene{Name: "none"}).Get(ctx(t))
			require.NoError(t, err)
			assert.Zero(t, a)
			a, err = CodecArea.Submit(p, codecScene{Main: &codecCircle{R: 2}}).Get(ctx(t))
			require.NoError(t, err)
			assert.Equal(t, 12.0, a)
			_, err = CodecArea.Submit(p, codecScene{Main: codecSquare{Side: 2}}).Get(ctx(t))
			requireCodecError(t, err, procpool.DecodeArgument,
				"decode argument as procpool_test.codecScene: cannot decode procpool_test.codecScene.Main (of interface type procpool_test.codecShape): msgpack made a map[string]interface {} of the data sent, which is not a procpool_test.codecShape")
			assert.NotContains(t, err.Error(), "reflect.Set")

			// An error as the whole argument: the value sent is the error's
			// struct, not its text.
			s, err := CodecErrorText.Submit(p, nil).Get(ctx(t))
			require.NoError(t, err)
			assert.Equal(t, "<nil>", s)
			_, err = CodecErrorText.Submit(p, errors.New("boom")).Get(ctx(t))
			requireCodecError(t, err, procpool.DecodeArgument, "cannot decode into interface type error", "send the error's text instead")
			require.NoError(t, p.Close())
		})
	}
}

// TestCodecTimeZone: a time arrives in the receiving process's local zone.
// The workers here run in Tokyo.
func TestCodecTimeZone(t *testing.T) {
	if _, err := os.Stat("/usr/share/zoneinfo/Asia/Tokyo"); err != nil {
		t.Skip("no zoneinfo for Asia/Tokyo:", err)
	}
	p, _ := newPool(t, relCfg(procpool.Config{Workers: 1, Env: []string{"TZ=Asia/Tokyo"}}))
	when := time.Date(2024, 5, 6, 7, 8, 0, 0, time.UTC)
	got, err := CodecZone.Submit(p, when).Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, "16:08 JST true", got)
	require.NoError(t, p.Close())
}
