package registry

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/internal/codec"
	"github.com/procpool/procpool/internal/wire"
)

// TestSignature: two builds whose task names agree but whose types do not
// must be told apart.
func TestSignature(t *testing.T) {
	type point struct{ X, Y int }
	assert.Equal(t, "square(int) int", Signature[int, int]("square"))
	assert.Equal(t, "resize([]uint8) map[string]float64", Signature[[]byte, map[string]float64]("resize"))
	assert.Equal(t, "move(registry.point) *registry.point", Signature[point, *point]("move"))
	assert.NotEqual(t, Signature[int, int]("f"), Signature[int64, int]("f"))
}

func TestSignaturesSorted(t *testing.T) {
	Register("zz.b", nil, nil, "zz.b(int) int", 0)
	Register("zz.a", nil, nil, "zz.a(string) string", 0)
	sigs := Signatures()
	assert.IsNonDecreasing(t, sigs)
	assert.Contains(t, sigs, "zz.a(string) string")
	assert.Contains(t, sigs, "zz.b(int) int")
}

type link struct {
	N    int
	Next *link
}

type shape interface{ Area() float64 }

type square struct{ Side float64 }

func (s square) Area() float64 { return s.Side * s.Side }

// TestFuncSurvivesValuesThatCannotCross: a task returning a value that
// contains itself, or getting an interface it cannot be sent, fails that
// call with a codec status; nothing panics, so the worker lives on.
func TestFuncSurvivesValuesThatCannotCross(t *testing.T) {
	c := codec.New()
	loop := Func(func(_ context.Context, n int) (*link, error) {
		l := &link{N: n}
		l.Next = l
		return l, nil
	})
	arg, err := c.Encode(3)
	require.NoError(t, err)
	it := loop.Call(context.Background(), c, arg)
	assert.Equal(t, wire.StatusEncodeResult, it.Status)
	assert.Equal(t, "encode result of type *registry.link: value of type *registry.link contains a cycle, which msgpack cannot encode: v.Next leads back to v (*registry.link → *registry.link)", it.Message)

	type scene struct{ Main shape }
	area := Func(func(_ context.Context, s scene) (float64, error) { return s.Main.Area(), nil })
	arg, err = c.Encode(scene{Main: square{Side: 2}})
	require.NoError(t, err)
	it = area.Call(context.Background(), c, arg)
	assert.Equal(t, wire.StatusDecodeArg, it.Status)
	assert.Contains(t, it.Message, "decode argument as registry.scene: cannot decode registry.scene.Main (of interface type registry.shape): msgpack made a map[string]interface {} of the data sent")
}

func TestCheckTypes(t *testing.T) {
	require.NoError(t, CheckTypes[int, *link]())
	assert.EqualError(t, CheckTypes[struct{ Done chan int }, int](),
		"its argument type struct { Done chan int } cannot be sent to a worker: struct { Done chan int }.Done is a channel (chan int), which msgpack cannot encode; leave the field out with the tag `msgpack:\"-\"`, or give the struct holding it a msgpack encoding of its own")
	assert.EqualError(t, CheckTypes[int, func()](),
		"its result type func() cannot come back from a worker: func() is a func, which msgpack cannot encode")
}
