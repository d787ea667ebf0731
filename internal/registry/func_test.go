package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/internal/codec"
	"github.com/procpool/procpool/internal/errcode"
	"github.com/procpool/procpool/internal/wire"
)

// generalFunc is Func as it was before the fast paths: every argument and
// result through Codec.Decode and Codec.Encode.
func generalFunc[I, O any](fn func(context.Context, I) (O, error)) Handler {
	return func(ctx context.Context, c *codec.Codec, arg []byte, res *wire.Item) {
		*res = generalCall(ctx, c, arg, fn)
	}
}

func generalCall[I, O any](ctx context.Context, c *codec.Codec, arg []byte, fn func(context.Context, I) (O, error)) wire.Item {
	var in I
	if err := c.Decode(arg, &in); err != nil {
		return wire.Item{Status: wire.StatusDecodeArg, Message: fmt.Sprintf("decode argument as %T: %v", in, err)}
	}
	out, err, panicked := call(ctx, fn, in)
	if panicked != nil {
		return *panicked
	}
	if err != nil {
		return wire.Item{Status: wire.StatusError, Message: err.Error(), Codes: errcode.Codes(err)}
	}
	v, err := c.Encode(out)
	if err != nil {
		return wire.Item{Status: wire.StatusEncodeResult, Message: fmt.Sprintf("encode result of type %T: %v", out, err)}
	}
	return wire.Item{Value: v}
}

// TestFuncFastPathsAsGeneral runs tasks whose types have fast paths on
// arguments of every kind, good, bad, cut short and trailing bytes, and
// checks each call ends as it did without the fast paths: the same
// result bytes, or the same status and message.
func TestFuncFastPathsAsGeneral(t *testing.T) {
	enc := codec.New()
	var args [][]byte
	for _, v := range []any{
		0, 7, -1, 300, -40000, int64(1 << 40), uint64(1<<64 - 1), 1.5, float32(-2), true, nil,
		"", "hello", strings.Repeat("x", 300), []byte{}, []byte("raw"), []byte(nil),
		[]int{1, -2, 300}, []string{"a", ""}, [][]byte{nil, {}, []byte("b")}, []float32{1.5},
		[]any{1, "x"}, map[string]int{"k": 1}, struct{ A int }{1},
	} {
		b, err := enc.Encode(v)
		require.NoError(t, err)
		args = append(args, b, b[:len(b)-1], append(bytes.Clone(b), 0x01))
	}
	args = append(args, []byte{}, []byte{0xc1}, []byte{0xd4, 0x01, 0x00})

	fail := errors.New("odd")
	check(t, args, func(_ context.Context, n int) (int, error) { return 2 * n, nil })
	check(t, args, func(_ context.Context, n int8) (string, error) { return fmt.Sprint(n), nil })
	check(t, args, func(_ context.Context, n uint64) (float64, error) {
		if n%2 == 1 {
			return 0, fail
		}
		return float64(n), nil
	})
	check(t, args, func(_ context.Context, f float32) (float32, error) { return f / 3, nil })
	check(t, args, func(_ context.Context, s string) ([]byte, error) { return []byte(s), nil })
	check(t, args, func(_ context.Context, b []byte) ([]string, error) { return strings.Split(string(b), "a"), nil })
	check(t, args, func(_ context.Context, s []int) ([]int, error) { return s, nil })
	check(t, args, func(_ context.Context, s []string) ([][]byte, error) {
		var out [][]byte
		for _, x := range s {
			out = append(out, []byte(x))
		}
		return out, nil
	})
	check(t, args, func(_ context.Context, b bool) (bool, error) { return !b, nil })
	// A fast path on one side only.
	check(t, args, func(_ context.Context, m map[string]int) (int, error) { return len(m), nil })
	check(t, args, func(_ context.Context, n int) (map[string]int, error) { return map[string]int{"n": n}, nil })
}

func check[I, O any](t *testing.T, args [][]byte, fn func(context.Context, I) (O, error)) {
	t.Helper()
	fast, general := Func(fn), generalFunc(fn)
	c, cg := codec.New(), codec.New()
	for _, arg := range args {
		got, want := fast.Call(context.Background(), c, arg), general.Call(context.Background(), cg, arg)
		require.Equal(t, want, got, "%T → %T of %x", *new(I), *new(O), arg)
	}
}

// TestFuncFastPathAllocs: a task of ints, the bulk Map of tiny tasks,
// allocates nothing per call.
func TestFuncFastPathAllocs(t *testing.T) {
	h := Func(func(_ context.Context, n int) (int, error) { return n + 1, nil })
	c := codec.New()
	arg := []byte{0xcd, 0x12, 0x34}
	var it wire.Item // an item of a Result being built, as the executor passes
	allocs := testing.AllocsPerRun(100, func() {
		c.Reset()
		if h(context.Background(), c, arg, &it); it.Status != wire.StatusOK {
			t.Fatal(it.Message)
		}
	})
	require.Zero(t, allocs)
}

// TestFuncSharesLargeByteArguments: with Codec.Share, a []byte argument of
// codec.MinShared bytes or more, encoded, is the task's in the bytes it arrived in;
// a smaller one, or any without Share, is a copy.
func TestFuncSharesLargeByteArguments(t *testing.T) {
	var got []byte
	h := Func(func(_ context.Context, b []byte) (int, error) { got = b; return len(b), nil })
	for _, tc := range []struct {
		size   int
		share  bool
		shared bool
	}{
		{codec.MinShared, true, true},
		{1 << 20, true, true},
		{codec.MinShared - 8, true, false}, // its encoding is under MinShared
		{1 << 20, false, false},
	} {
		c := codec.New()
		arg, err := c.Encode(bytes.Repeat([]byte{9}, tc.size))
		require.NoError(t, err)
		arg = bytes.Clone(arg)
		c.Reset()
		c.Share = tc.share
		it := h.Call(context.Background(), c, arg)
		require.Equal(t, wire.StatusOK, it.Status, it.Message)
		require.Equal(t, bytes.Repeat([]byte{9}, tc.size), got)
		same := &got[len(got)-1] == &arg[len(arg)-1]
		require.Equal(t, tc.shared, same, "size %d, Share %v", tc.size, tc.share)
	}
}

// BenchmarkFunc is a worker's whole cost per call around a task of ints,
// through the fast paths and as before them.
func BenchmarkFunc(b *testing.B) {
	fn := func(_ context.Context, n int) (int, error) { return n + 1, nil }
	for _, h := range []struct {
		name string
		h    Handler
	}{{"path=fast", Func(fn)}, {"path=general", generalFunc(fn)}} {
		b.Run(h.name, func(b *testing.B) {
			c := codec.New()
			arg := []byte{0xcd, 0x12, 0x34}
			b.ReportAllocs()
			for b.Loop() {
				c.Reset()
				if it := h.h.Call(context.Background(), c, arg); it.Status != wire.StatusOK {
					b.Fatal(it.Message)
				}
			}
		})
	}
}

// TestFuncSendsLargeByteResultsInPlace: with Codec.Share, a []byte result
// of codec.MinShared bytes or more is its header in the arena and the
// task's own bytes as the Tail, which together are the encoding a copy
// would have; a smaller one, or any without Share, is encoded whole.
func TestFuncSendsLargeByteResultsInPlace(t *testing.T) {
	buf := bytes.Repeat([]byte{7}, 1<<20)
	h := Func(func(_ context.Context, n int) ([]byte, error) { return buf[:n], nil })
	for _, tc := range []struct {
		size         int
		share, inPut bool
	}{
		{codec.MinShared, true, true},
		{1 << 20, true, true},
		{codec.MinShared - 1, true, false},
		{1 << 20, false, false},
	} {
		c := codec.New()
		arg, err := c.Encode(tc.size)
		require.NoError(t, err)
		want, err := codec.New().Encode(buf[:tc.size])
		require.NoError(t, err)
		c.Share = tc.share
		it := h.Call(context.Background(), c, bytes.Clone(arg))
		require.Equal(t, wire.StatusOK, it.Status, it.Message)
		require.Equal(t, want, append(bytes.Clone(it.Value), it.Tail...), "size %d, Share %v", tc.size, tc.share)
		require.Equal(t, tc.inPut, it.Tail != nil && &it.Tail[0] == &buf[0], "size %d, Share %v", tc.size, tc.share)
	}
}
