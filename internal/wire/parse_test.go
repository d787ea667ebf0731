package wire

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// requireSameDecoding checks that Decoder and the msgpack-based reference
// (refdecode_test.go) agree on body: both refuse it, the same way as far
// as a caller can tell, or both give the same message.
func requireSameDecoding(t *testing.T, body []byte) {
	t.Helper()
	want, wantErr := refDecode(body)
	got, err := NewDecoder().Decode(body)
	if wantErr != nil {
		var fe *FrameError
		require.ErrorAs(t, err, &fe, "the reference refuses % x: %v", body, wantErr)
		require.Nil(t, got)
		var wantVE, gotVE *VersionError
		require.Equal(t, errors.As(wantErr, &wantVE), errors.As(err, &gotVE), "a version error one way, not the other: %v; %v", wantErr, err)
		require.Equal(t, body[:min(len(body), 32)], fe.Head)
		return
	}
	require.NoError(t, err, "the reference accepts % x as %#v", body, want)
	require.Equal(t, Canonical(want), Canonical(got))
}

// FuzzDecodeReference: on any body, Decoder does what msgpack.Decoder did.
func FuzzDecodeReference(f *testing.F) {
	for _, s := range samples() {
		f.Add(encode(f, s.msg))
	}
	for _, b := range brokenBodies {
		f.Add(b.body)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		f.Add(randomBody(rng))
	}
	f.Fuzz(requireSameDecoding)
}

// TestDecodeMatchesReference decodes random valid Runs and Results, in
// every encoding msgpack.Decoder accepted (integers of any width, nil for
// zero and false, str for bin, arrays in any form), and the same bodies
// cut short and with a byte changed.
func TestDecodeMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	n := 3000
	if testing.Short() {
		n = 300
	}
	for range n {
		body := randomBody(rng)
		_, err := refDecode(body)
		require.NoError(t, err, "the generator made an invalid body % x", body)
		requireSameDecoding(t, body)

		requireSameDecoding(t, body[:rng.IntN(len(body))])
		changed := append([]byte(nil), body...)
		changed[rng.IntN(len(changed))] = byte(rng.Uint32())
		requireSameDecoding(t, changed)
	}
}

// randomBody returns a valid Run or Result body, encoded with a random one
// of the forms each value may take.
func randomBody(rng *rand.Rand) []byte {
	g := &bodyGen{rng: rng}
	if rng.IntN(2) == 0 {
		g.array(5)
		g.uint(uint64(KindRun))
		g.uint(g.number())
		g.bin(g.bytes())
		g.uint(g.number())
		n := g.count()
		g.array(n)
		for range n {
			g.bin(g.bytes())
		}
		return g.b
	}
	g.array(5)
	g.uint(uint64(KindResult))
	g.uint(g.number())
	g.bool(rng.IntN(2) == 0)
	g.uint(g.number())
	n := g.count()
	g.array(n)
	for range n {
		if rng.IntN(3) > 0 {
			g.bin(g.bytes())
			continue
		}
		g.array(4)
		// Status is a byte: msgpack.Decoder dropped the higher ones.
		g.uint(uint64(1+rng.IntN(255)) | uint64(rng.IntN(3))<<8)
		g.bin(g.bytes())
		g.bin(g.bytes())
		if rng.IntN(3) == 0 {
			g.b = append(g.b, codeNil)
			continue
		}
		codes := g.count() % 4
		g.array(codes)
		for range codes {
			g.bin(g.bytes())
		}
	}
	return g.b
}

type bodyGen struct {
	rng *rand.Rand
	b   []byte
}

func (g *bodyGen) count() int {
	if g.rng.IntN(10) == 0 {
		return 16 + g.rng.IntN(300)
	}
	return g.rng.IntN(16)
}

func (g *bodyGen) number() uint64 {
	switch g.rng.IntN(4) {
	case 0:
		return uint64(g.rng.IntN(300))
	case 1:
		return uint64(-g.rng.Int64N(1 << 40)) // negative
	case 2:
		return g.rng.Uint64()
	}
	return 1 << g.rng.IntN(64)
}

// bytes returns nil, or a byte string whose length needs one form or
// another.
func (g *bodyGen) bytes() []byte {
	switch g.rng.IntN(100) {
	case 0, 1, 2, 3, 4, 5, 6, 7:
		return nil
	case 8, 9, 10, 11:
		return make([]byte, 256+g.rng.IntN(1000))
	case 12:
		return make([]byte, 1<<16+g.rng.IntN(10))
	}
	b := make([]byte, g.rng.IntN(40))
	for i := range b {
		b[i] = byte(g.rng.Uint32())
	}
	return b
}

func (g *bodyGen) array(n int) {
	switch r := g.rng.IntN(3); {
	case n < 16 && r == 0:
		g.b = append(g.b, codeFixArray|byte(n))
	case n <= math.MaxUint16 && r < 2:
		g.b = binary.BigEndian.AppendUint16(append(g.b, codeArray16), uint16(n))
	default:
		g.b = binary.BigEndian.AppendUint32(append(g.b, codeArray32), uint32(n))
	}
}

// uint appends v in a random one of the forms that decode to it.
func (g *bodyGen) uint(v uint64) {
	s := int64(v)
	var forms []func()
	add := func(ok bool, f func()) {
		if ok {
			forms = append(forms, f)
		}
	}
	b := &g.b
	add(v == 0, func() { *b = append(*b, codeNil) })
	add(v <= codePosFixMax || s >= -32 && s < 0, func() { *b = append(*b, byte(v)) })
	add(v <= math.MaxUint8, func() { *b = append(*b, codeUint8, byte(v)) })
	add(s >= math.MinInt8 && s <= math.MaxInt8, func() { *b = append(*b, codeInt8, byte(v)) })
	add(v <= math.MaxUint16, func() { *b = binary.BigEndian.AppendUint16(append(*b, codeUint16), uint16(v)) })
	add(s >= math.MinInt16 && s <= math.MaxInt16, func() { *b = binary.BigEndian.AppendUint16(append(*b, codeInt16), uint16(v)) })
	add(v <= math.MaxUint32, func() { *b = binary.BigEndian.AppendUint32(append(*b, codeUint32), uint32(v)) })
	add(s >= math.MinInt32 && s <= math.MaxInt32, func() { *b = binary.BigEndian.AppendUint32(append(*b, codeInt32), uint32(v)) })
	add(true, func() { *b = binary.BigEndian.AppendUint64(append(*b, codeUint64), v) })
	add(true, func() { *b = binary.BigEndian.AppendUint64(append(*b, codeInt64), v) })
	forms[g.rng.IntN(len(forms))]()
}

func (g *bodyGen) bool(v bool) {
	switch {
	case v:
		g.b = append(g.b, codeTrue)
	case g.rng.IntN(2) == 0:
		g.b = append(g.b, codeNil)
	default:
		g.b = append(g.b, codeFalse)
	}
}

// bin appends v as a bin or a str of a random form that holds its length.
func (g *bodyGen) bin(v []byte) {
	if v == nil {
		g.b = append(g.b, codeNil)
		return
	}
	n := len(v)
	str := g.rng.IntN(2)
	switch r := g.rng.IntN(4); {
	case n < 32 && r == 0:
		g.b = append(g.b, codeFixStr|byte(n))
	case n <= math.MaxUint8 && r < 2:
		g.b = append(g.b, []byte{codeBin8, codeStr8}[str], byte(n))
	case n <= math.MaxUint16 && r < 3:
		g.b = binary.BigEndian.AppendUint16(append(g.b, []byte{codeBin16, codeStr16}[str]), uint16(n))
	default:
		g.b = binary.BigEndian.AppendUint32(append(g.b, []byte{codeBin32, codeStr32}[str]), uint32(n))
	}
	g.b = append(g.b, v...)
}
