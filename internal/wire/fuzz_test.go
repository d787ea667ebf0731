package wire

import (
	"bytes"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// fuzzMax is small so that the fuzzer easily makes prefixes over it.
const fuzzMax = 1 << 10

// allocSlack covers what a decode allocates besides what its input pays
// for, plus the span granularity of heapAllocated. Fixed allocations beyond
// it, like msgpack's 1 MiB read-ahead for a claimed string length, fail.
const allocSlack = 512 << 10

func FuzzReadFrame(f *testing.F) {
	var all []byte
	for _, s := range samples() {
		fr := frame(encode(f, s.msg))
		f.Add(fr)
		all = append(all, fr...)
	}
	f.Add(all)
	f.Add([]byte{})
	f.Add([]byte("\x00\x00"))
	f.Add([]byte("\xff\xff\xff\xffgarbage"))
	f.Add([]byte("\x00\x00\x00\x10short"))
	f.Add([]byte("\x00\x00\x00\x00\x00\x00\x00\x00"))
	for _, b := range brokenBodies {
		f.Add(frame(b.body))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), fuzzMax)
		d := NewDecoder()
		// Every call consumes a 4-byte header or ends the stream, so a
		// reader that keeps going past that is stuck.
		for calls := 1; ; calls++ {
			if calls > len(data)/headerLen+2 {
				t.Fatalf("%d ReadFrame calls on %d bytes without io.EOF", calls, len(data))
			}
			before := heapAllocated()
			body, err := r.ReadFrame()
			if err == io.EOF {
				break
			}
			if err == nil {
				require.LessOrEqual(t, len(body), fuzzMax)
				_, err = d.Decode(body)
			}
			if err != nil {
				var fe *FrameError
				require.ErrorAs(t, err, &fe)
			}
			// The body, and what decoding it may allocate (see FuzzDecode).
			require.LessOrEqual(t, heapAllocated()-before, uint64(65*fuzzMax+allocSlack), "bytes allocated for frame %d", calls)
		}
	})
}

func FuzzDecode(f *testing.F) {
	for _, s := range samples() {
		f.Add(encode(f, s.msg))
	}
	for _, b := range brokenBodies {
		f.Add(b.body)
	}

	f.Fuzz(func(t *testing.T, body []byte) {
		before := heapAllocated()
		m, err := NewDecoder().Decode(body)
		// An array of n items may be accepted as long as n bytes remain, and
		// an Item is 64 bytes.
		require.LessOrEqual(t, heapAllocated()-before, uint64(64*len(body)+allocSlack), "bytes allocated")
		if err != nil {
			var fe *FrameError
			require.ErrorAs(t, err, &fe)
			require.Nil(t, m)
			return
		}

		// A body may be accepted in a non-canonical form (ints of any
		// width, str for bin); its re-encoding must decode to the same
		// message and be canonical: encoding that again changes nothing.
		again := encode(t, m)
		m2, err := NewDecoder().Decode(again)
		require.NoError(t, err)
		require.Equal(t, Canonical(m), Canonical(m2))
		require.Equal(t, again, encode(t, m2), "the re-encoding is not canonical")
	})
}
