//go:build unix

package procpool_test

// Encoding: values that cannot cross the pipes, large payloads, the frame limit.

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

func TestValuesThatCannotCross(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 1})
	pid, err := PID.Submit(p, struct{}{}).Get(ctx(t))
	require.NoError(t, err)

	for _, tc := range []struct {
		name  string
		get   func() error
		stage procpool.Stage
		text  string
	}{
		{"argument the parent cannot encode", func() error {
			_, err := TakesChan.Submit(p, unencodable{C: make(chan int)}).Get(ctx(t))
			return err
		}, procpool.EncodeArgument, "chan int"},
		{"argument the worker cannot decode", func() error {
			_, err := WorkerRejects.Submit(p, workerRejects{V: 1}).Get(ctx(t))
			return err
		}, procpool.DecodeArgument, "workers do not accept this value"},
		{"result the worker cannot encode", func() error {
			_, err := Unencodable.Submit(p, 1).Get(ctx(t))
			return err
		}, procpool.EncodeResult, "chan int"},
		{"result the parent cannot decode", func() error {
			_, err := ParentRejects.Submit(p, 1).Get(ctx(t))
			return err
		}, procpool.DecodeResult, "the parent does not accept this value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ce *procpool.CodecError
			require.ErrorAs(t, tc.get(), &ce)
			assert.Equal(t, tc.stage, ce.Stage)
			assert.Contains(t, ce.Message, tc.text)
		})
	}
	_, err = TakesAny.Map(ctx(t), p, []any{1, make(chan int)})
	var ce *procpool.CodecError
	require.ErrorAs(t, err, &ce)
	assert.Contains(t, err.Error(), "map element 1")

	again, err := PID.Submit(p, struct{}{}).Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, pid, again, "no codec failure costs a worker")
	require.NoError(t, p.Close())
}

func TestLargePayloads(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2})
	payload := make([]byte, 16<<20)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	got, err := Echo.Submit(p, payload).Get(ctx(t))
	require.NoError(t, err)
	require.Equal(t, payload, got)

	out, err := Echo.Map(ctx(t), p, [][]byte{payload[:3<<20], payload[:5], payload[1<<20:]})
	require.NoError(t, err)
	assert.Equal(t, [][]byte{payload[:3<<20], payload[:5], payload[1<<20:]}, out)
	require.NoError(t, p.Close())
}

func TestFrameLimit(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 1, MaxFrameSize: 1 << 16})
	_, err := Echo.Submit(p, make([]byte, 1<<16)).Get(ctx(t))
	require.ErrorIs(t, err, procpool.ErrFrameTooLarge, "an argument over the limit fails at once")

	_, err = Big.Submit(p, 1<<16).Get(ctx(t))
	require.ErrorIs(t, err, procpool.ErrFrameTooLarge, "so does a result")
	var ce *procpool.CodecError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, procpool.EncodeResult, ce.Stage)

	// Results that fit one by one but not together come back in parts.
	out, err := Big.Map(ctx(t), p, []int{40000, 40000, 40000, 10}, procpool.Chunksize(4))
	require.NoError(t, err)
	assert.Equal(t, []int{40000, 40000, 40000, 10}, []int{len(out[0]), len(out[1]), len(out[2]), len(out[3])})
	require.NoError(t, p.Close())
}
