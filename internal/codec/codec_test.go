package codec

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type point struct {
	X, Y int
	Tag  string `msgpack:"tag,omitempty"`
}

type shape struct {
	Name   string
	Points []point
	Attrs  map[string]any
	Raw    []byte
}

// TestRoundTrip decodes each value into a fresh value of its own type,
// the way a task receives its argument.
func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   any
	}{
		{"int zero", 0},
		{"int small", 7},
		{"int negative", -1 << 40},
		{"int64 min", int64(-1 << 63)},
		{"uint64 max", uint64(1<<64 - 1)},
		{"int8", int8(-128)},
		{"float64", 3.25},
		{"bool", true},
		{"string", "héllo"},
		{"string empty", ""},
		{"string long", strings.Repeat("x", 70000)},
		{"bytes", []byte{0x00, 0xff, 0x10}},
		{"bytes empty", []byte{}},
		{"slice of strings", []string{"a", "", "c"}},
		{"map", map[string]int{"one": 1, "two": 2}},
		{"map int keys", map[int]string{1: "a", -2: "b"}},
		{"struct", point{X: 1, Y: -2, Tag: "p"}},
		{"pointer to struct", &point{X: 3}},
		{"nested", shape{Name: "tri", Points: []point{{1, 2, ""}, {3, 4, "c"}}, Attrs: map[string]any{"n": int64(3), "s": "x", "l": []any{int64(1), "y"}}, Raw: []byte("raw")}},
	}
	c := New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := c.Encode(tt.in)
			require.NoError(t, err)
			out := reflect.New(reflect.TypeOf(tt.in))
			require.NoError(t, c.Decode(b, out.Interface()))
			require.Equal(t, tt.in, out.Elem().Interface())
		})
	}
}

// TestDecodeAny pins the types a task taking `any` sees. Loose decoding
// makes every signed width int64 and every float float64, but with compact
// ints the encoding keeps magnitude, not sign: a non-negative int of 128 or
// more travels as a msgpack uint and comes back uint64, and an unsigned
// value under 128 comes back int64.
func TestDecodeAny(t *testing.T) {
	tests := []struct {
		in   any
		want any
	}{
		{0, int64(0)},
		{127, int64(127)},
		{-1, int64(-1)},
		{int8(-100), int64(-100)},
		{int16(-1000), int64(-1000)},
		{int64(-1 << 40), int64(-1 << 40)},
		{uint8(5), int64(5)},
		{128, uint64(128)},
		{int64(1 << 40), uint64(1 << 40)},
		{uint64(1 << 63), uint64(1 << 63)},
		{float32(1.5), float64(1.5)},
		{2.5, float64(2.5)},
		{"s", "s"},
		{[]byte("b"), "b"},
		{nil, nil},
		{[]int{1, -1}, []any{int64(1), int64(-1)}},
		{map[string]int{"k": 1}, map[string]any{"k": int64(1)}},
	}
	c := New()
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%T(%v)", tt.in, tt.in), func(t *testing.T) {
			b, err := c.Encode(tt.in)
			require.NoError(t, err)
			var got any
			require.NoError(t, c.Decode(b, &got))
			require.Equal(t, tt.want, got)
		})
	}
}

func TestDecodeError(t *testing.T) {
	c := New()
	var n int
	require.Error(t, c.Decode([]byte{0xa1, 'x'}, &n), "a string is not an int")
	require.Error(t, c.Decode([]byte{0xcd, 0x01}, &n), "truncated uint16")
	require.Error(t, c.Decode(nil, &n))
	// The failures above must not leave state behind for the next value.
	require.NoError(t, c.Decode([]byte{0x05}, &n))
	require.Equal(t, 5, n)
}

// TestEncodeErrorKeepsArena checks that a value failing halfway, after some
// of its fields went out, is taken back whole: the next value must follow
// the last good one directly, or the slices handed out would be misaligned.
func TestEncodeErrorKeepsArena(t *testing.T) {
	type half struct {
		A    int
		B    string
		Chan chan int
	}
	tests := []struct {
		name string
		in   any
	}{
		{"chan", make(chan int)},
		{"func", func() {}},
		{"struct failing after two fields", half{A: 1, B: "written", Chan: make(chan int)}},
		{"map failing on a value", map[string]any{"f": func() {}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New()
			first, err := c.Encode("first")
			require.NoError(t, err)
			before := c.Len()

			b, err := c.Encode(tt.in)
			require.Error(t, err)
			require.Nil(t, b)
			require.Equal(t, before, c.Len())

			_, err = c.Encode(42)
			require.NoError(t, err)
			require.Equal(t, append(bytes.Clone(first), 42), c.Bytes())
		})
	}
}

// TestEncodedSlicesSurviveGrowth keeps every slice Encode returns while the
// arena grows through several reallocations, then checks each still holds
// its value: callers batch many encoded values before sending them.
func TestEncodedSlicesSurviveGrowth(t *testing.T) {
	c := New()
	var got, want [][]byte
	for i := range 2000 {
		b, err := c.Encode(fmt.Sprintf("value %d %s", i, strings.Repeat("x", i%200)))
		require.NoError(t, err)
		got = append(got, b)
		want = append(want, bytes.Clone(b))
	}
	require.Greater(t, c.Len(), 128<<10, "the arena must have grown several times")
	for i := range got {
		require.Equal(t, want[i], got[i], "value %d", i)
		var s string
		require.NoError(t, c.Decode(got[i], &s))
		require.True(t, strings.HasPrefix(s, fmt.Sprintf("value %d ", i)))
	}
}

// TestEncodedSliceIsCapped checks that appending to a returned slice cannot
// write over the value encoded after it.
func TestEncodedSliceIsCapped(t *testing.T) {
	c := New()
	first, err := c.Encode(1)
	require.NoError(t, err)
	second, err := c.Encode(2)
	require.NoError(t, err)
	_ = append(first, 0xff)
	require.Equal(t, []byte{0x02}, second)
}

// TestPoolHandsOutEmptyCodecs runs codecs through the pool many times; one
// handed out with an old arena would prefix every value it encodes.
func TestPoolHandsOutEmptyCodecs(t *testing.T) {
	for i := range 100 {
		c := Get()
		require.Zero(t, c.Len(), "round %d", i)
		b, err := c.Encode(i)
		require.NoError(t, err)
		var n int
		require.NoError(t, c.Decode(b, &n))
		require.Equal(t, i, n)
		Put(c)
	}
}

// TestPoolDropsLargeArenas checks that a codec whose arena grew past 1 MiB
// never comes back from the pool, so one big result does not pin memory.
func TestPoolDropsLargeArenas(t *testing.T) {
	big := Get()
	_, err := big.Encode(make([]byte, 2<<20))
	require.NoError(t, err)
	Put(big)
	for range 10 {
		c := Get()
		assert.NotSame(t, big, c)
		defer Put(c)
	}
}
