package codec

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestBin(t *testing.T) {
	c := New()
	for _, n := range []int{0, 1, 255, 256, 65535, 65536, 1 << 20} {
		want := bytes.Repeat([]byte{7}, n)
		enc, err := c.Encode(want)
		assert.NoError(t, err)
		got, ok := Bin(enc)
		if assert.True(t, ok, "size %d", n) {
			assert.Equal(t, want, got, "size %d", n)
			if n > 0 {
				assert.Same(t, &enc[len(enc)-1], &got[len(got)-1], "size %d: Bin copied", n)
			}
		}
		_, ok = Bin(enc[:len(enc)-1])
		assert.False(t, ok, "size %d cut short", n)
	}
	text, err := c.Encode("text")
	assert.NoError(t, err)
	got, ok := Bin(text)
	assert.True(t, ok, "a str decodes into a []byte as its bytes")
	assert.Equal(t, []byte("text"), got)
	for _, v := range []any{nil, 3, []int{1}} {
		enc, err := c.Encode(v)
		assert.NoError(t, err)
		_, ok := Bin(enc)
		assert.False(t, ok, "%v", v)
	}
}
