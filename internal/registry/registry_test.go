package registry

import (
	"testing"

	"github.com/stretchr/testify/assert"
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
	Register("zz.b", nil, "zz.b(int) int", 0)
	Register("zz.a", nil, "zz.a(string) string", 0)
	sigs := Signatures()
	assert.IsNonDecreasing(t, sigs)
	assert.Contains(t, sigs, "zz.a(string) string")
	assert.Contains(t, sigs, "zz.b(int) int")
}
