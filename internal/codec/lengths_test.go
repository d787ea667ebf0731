package codec

import (
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lengthSamples are values of every msgpack family: each encodes to bytes
// checkLengths must pass, and whose every strict prefix it must refuse.
func lengthSamples() []any {
	long := make([]int, 70000)
	for i := range long {
		long[i] = i
	}
	m := map[string]any{}
	for i := range 20 {
		m[string(rune('a'+i))] = []any{i, "x", nil, true}
	}
	type inner struct {
		A []byte
		B map[string]int
	}
	type outer struct {
		Name  string
		In    []inner
		When  time.Time // an ext
		Float float32
	}
	return []any{
		nil, true, false, 0, -1, 127, 128, -33, math.MaxInt64, math.MinInt64, uint64(math.MaxUint64),
		float32(1.5), 2.5, "", "short", string(make([]byte, 40)), string(make([]byte, 300)), string(make([]byte, 70000)),
		[]byte{}, make([]byte, 300), make([]byte, 70000), []int{}, []int{1, 2, 3}, long, m,
		map[int]string{1: "a", 2: "b"},
		outer{Name: "n", In: []inner{{A: []byte{1}, B: map[string]int{"k": 1}}}, When: time.Unix(1700000000, 5), Float: 3},
	}
}

func TestCheckLengthsPassesWhatMsgpackWrites(t *testing.T) {
	c := New()
	for _, v := range lengthSamples() {
		b, err := c.Encode(v)
		require.NoError(t, err, "%T", v)
		require.NoError(t, checkLengths(b), "%T %.40v", v, v)
		require.NoError(t, checkLengths(append(b, 0xc1)), "%T: bytes after the value are not its concern", v)
		for n := range len(b) {
			if n > 2000 && n < len(b)-2000 {
				continue // the ends are where lengths and cuts meet
			}
			require.Error(t, checkLengths(b[:n]), "%T cut to %d of %d bytes", v, n, len(b))
		}
		c.Reset()
	}
}

// TestDecodeRefusesLengthsBeyondTheData: a few bytes claiming a huge array,
// map, string or byte string are an error, and cost no allocation for what
// they claim; msgpack alone allocates for the claim first.
func TestDecodeRefusesLengthsBeyondTheData(t *testing.T) {
	c := New()
	for _, tc := range []struct {
		name string
		b    []byte
		into func() any
	}{
		{"array32 into []int", []byte{0xdd, 0x01, 0, 0, 0}, func() any { return new([]int) }},
		{"array32 of 4G into []int", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, func() any { return new([]int) }},
		{"bin32 into []byte", []byte{0xc6, 0x04, 0, 0, 0}, func() any { return new([]byte) }},
		{"str32 into string", []byte{0xdb, 0x04, 0, 0, 0}, func() any { return new(string) }},
		{"map32 into map", []byte{0xdf, 0x01, 0, 0, 0}, func() any { return new(map[string]int) }},
		{"ext32 into any", []byte{0xc9, 0x04, 0, 0, 0, 1}, func() any { return new(any) }},
		{"nested array16 into [][]int", []byte{0x91, 0xdc, 0xff, 0xff}, func() any { return new([][]int) }},
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := c.Decode(tc.b, tc.into())
		runtime.ReadMemStats(&after)
		require.Error(t, err, tc.name)
		assert.Contains(t, err.Error(), "corrupt msgpack", tc.name)
		assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "%s: bytes allocated", tc.name)
	}
}

// FuzzCheckLengths: checkLengths never panics, and nothing it passes makes
// msgpack's decoder allocate far beyond the size of the data.
func FuzzCheckLengths(f *testing.F) {
	c := New()
	for _, v := range lengthSamples()[:20] {
		b, err := c.Encode(v)
		require.NoError(f, err)
		f.Add(append([]byte(nil), b...))
	}
	f.Add([]byte{0xdd, 0x01, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkLengths(b) != nil {
			return
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var v any
		_ = New().Decode(b, &v)
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20+uint64(1000*len(b)) {
			t.Fatalf("checkLengths passed % x, for which msgpack allocated %d bytes", b, n)
		}
	})
}
