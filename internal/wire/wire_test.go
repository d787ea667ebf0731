package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRoundTrip(t *testing.T) {
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(&buf, DefaultMaxFrame)
			require.NoError(t, w.Write(s.msg))
			require.NoError(t, w.Flush())

			r := NewReader(&buf, DefaultMaxFrame)
			body, err := r.ReadFrame()
			require.NoError(t, err)
			got, err := NewDecoder().Decode(body)
			require.NoError(t, err)
			require.Equal(t, Canonical(s.expected()), Canonical(got))

			_, err = r.ReadFrame()
			require.Equal(t, io.EOF, err, "a clean end of stream must be io.EOF itself, not wrapped")
		})
	}
}

// TestStream sends many frames of mixed sizes through one Writer, so frames
// straddle the 64 KiB buffers on both sides, and reads them back through
// readers that return a byte or half a buffer at a time.
func TestStream(t *testing.T) {
	var want []Message
	var buf bytes.Buffer
	w := NewWriter(&buf, DefaultMaxFrame)
	for i := range 30 {
		for _, s := range samples() {
			require.NoError(t, w.Write(s.msg))
			want = append(want, s.expected())
		}
		require.NoError(t, w.Write(&Run{ID: uint64(i), Task: "t", Args: ValuesOf(bytes.Repeat([]byte{byte(i)}, i*997))}))
		want = append(want, &Run{ID: uint64(i), Task: "t", Args: ValuesOf(bytes.Repeat([]byte{byte(i)}, i*997))})
	}
	require.NoError(t, w.Flush())
	stream := buf.Bytes()

	for name, wrap := range map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
	} {
		t.Run(name, func(t *testing.T) {
			r := NewReader(wrap(bytes.NewReader(stream)), DefaultMaxFrame)
			d := NewDecoder()
			for i, m := range want {
				body, err := r.ReadFrame()
				require.NoError(t, err, "frame %d", i)
				got, err := d.Decode(body)
				require.NoError(t, err, "frame %d", i)
				require.Equal(t, Canonical(m), Canonical(got), "frame %d", i)
			}
			_, err := r.ReadFrame()
			require.Equal(t, io.EOF, err)
		})
	}
}

// TestWriterBuffers checks that Write leaves the stream alone until Flush,
// as documented, so that callers can batch frames into one pipe write.
func TestWriterBuffers(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, DefaultMaxFrame)
	require.NoError(t, w.Write(&Cancel{ID: 1}))
	require.Zero(t, buf.Len())
	require.NoError(t, w.Flush())
	require.Equal(t, frame(encode(t, &Cancel{ID: 1})), buf.Bytes())
}

func TestLimitIsInclusive(t *testing.T) {
	body := encode(t, &Run{ID: 1, Task: "t", Args: ValuesOf(make([]byte, 100))})
	limit := len(body)

	var buf bytes.Buffer
	w := NewWriter(&buf, limit)
	require.Equal(t, limit, w.Max())
	require.NoError(t, w.Write(&Run{ID: 1, Task: "t", Args: ValuesOf(make([]byte, 100))}))
	w.SetMax(limit - 1)
	require.ErrorIs(t, w.Write(&Run{ID: 1, Task: "t", Args: ValuesOf(make([]byte, 100))}), ErrFrameTooLarge)
	require.NoError(t, w.Flush())

	stream := append(frame(body), frame(body)...)
	r := NewReader(bytes.NewReader(stream), limit)
	_, err := r.ReadFrame()
	require.NoError(t, err)
	r.SetMax(limit - 1)
	_, err = r.ReadFrame()
	require.ErrorIs(t, err, ErrFrameTooLarge)
}

// TestWriteTooLarge checks that a refused message leaves no trace, so the
// stream stays in step and the next message can still go out.
func TestWriteTooLarge(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, 64)
	err := w.Write(&Run{ID: 1, Task: "t", Args: ValuesOf(make([]byte, 100))})
	require.ErrorIs(t, err, ErrFrameTooLarge)
	assert.Contains(t, err.Error(), "run message")
	require.NoError(t, w.Flush())
	require.Zero(t, buf.Len(), "a refused message must write nothing")

	require.NoError(t, w.Write(&Cancel{ID: 9}))
	require.NoError(t, w.Flush())
	require.Equal(t, frame(encode(t, &Cancel{ID: 9})), buf.Bytes())
}

func TestReadFrameTooLarge(t *testing.T) {
	tests := []struct {
		name   string
		max    int
		stream []byte
		head   string // in the message, as ShowBytes prints it
	}{
		{"4 GiB claimed", 1 << 10, []byte("\xff\xff\xff\xffgarbage"), `ff ff ff ff 67 61 72 62 61 67 65 ("\xff\xff\xff\xffgarbage")`},
		{"one over", 16, []byte("\x00\x00\x00\x11"), `00 00 00 11 ("\x00\x00\x00\x11")`},
		{"text on the pipe", DefaultMaxFrame, []byte("hello from a stray fmt.Println\n"), `68 65 6c 6c 6f 20 66 72 6f 6d`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tt.stream), tt.max).ReadFrame()
			var fe *FrameError
			require.ErrorAs(t, err, &fe)
			require.ErrorIs(t, err, ErrFrameTooLarge)
			assert.Contains(t, err.Error(), tt.head)
			assert.Contains(t, err.Error(), fmt.Sprintf("over the %d-byte limit", tt.max))
		})
	}
}

// TestReadFrameTooLargeAllocates checks the point of the limit: a prefix
// claiming 4 GiB costs an error, not 4 GiB, even when the limit is the
// default 64 MiB.
func TestReadFrameTooLargeAllocates(t *testing.T) {
	const runs = 50
	for _, max := range []int{1 << 10, DefaultMaxFrame} {
		readers := make([]*Reader, runs)
		for i := range readers {
			readers[i] = NewReader(bytes.NewReader([]byte("\xff\xff\xff\xffgarbage")), max)
		}
		start, before := time.Now(), heapAllocated()
		for _, r := range readers {
			_, err := r.ReadFrame()
			require.ErrorIs(t, err, ErrFrameTooLarge)
		}
		perRead := (heapAllocated() - before) / runs
		assert.Less(t, perRead, uint64(64<<10), "max %d: bytes allocated per refused frame", max)
		assert.Less(t, time.Since(start), time.Second, "max %d", max)
	}
}

func TestReadFrameCut(t *testing.T) {
	body := encode(t, &Run{ID: 1, Task: "t", Args: ValuesOf([]byte("argument"))})
	full := frame(body)
	tests := []struct {
		name   string
		stream []byte
		head   []byte
	}{
		{"inside header", full[:2], full[:2]},
		{"after header", full[:4], body[:0]},
		{"inside body", full[:10], body[:6]},
		{"one byte short", full[:len(full)-1], body[:min(len(body)-1, 32)]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tt.stream), DefaultMaxFrame).ReadFrame()
			var fe *FrameError
			require.ErrorAs(t, err, &fe)
			require.ErrorIs(t, err, io.ErrUnexpectedEOF)
			require.Equal(t, tt.head, fe.Head)
		})
	}
}

// TestReadFrameCutHeadIsOwned checks that the Head of a cut-header error is
// the error's own: the Reader refills its header buffer on the next call.
func TestReadFrameCutHeadIsOwned(t *testing.T) {
	r := NewReader(&chunks{[]byte{0x00, 0x00}, nil, []byte{0xaa, 0xbb, 0xcc, 0xdd}}, 16)
	_, err := r.ReadFrame()
	var fe *FrameError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, []byte{0x00, 0x00}, fe.Head)

	_, err = r.ReadFrame()
	require.ErrorIs(t, err, ErrFrameTooLarge)
	require.Equal(t, []byte{0x00, 0x00}, fe.Head)
}

// chunks returns one chunk per Read; a nil chunk is an io.EOF that a later
// Read gets past, as on a file still being written.
type chunks [][]byte

func (c *chunks) Read(p []byte) (int, error) {
	if len(*c) == 0 {
		return 0, io.EOF
	}
	chunk := (*c)[0]
	*c = (*c)[1:]
	if chunk == nil {
		return 0, io.EOF
	}
	return copy(p, chunk), nil
}

func TestReadFrameError(t *testing.T) {
	boom := errors.New("boom")
	_, err := NewReader(iotest.ErrReader(boom), 16).ReadFrame()
	require.Equal(t, boom, err)
}

func TestDecodeBroken(t *testing.T) {
	for _, tt := range brokenBodies {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewDecoder().Decode(tt.body)
			require.Nil(t, m)
			var fe *FrameError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, tt.body[:min(len(tt.body), 32)], fe.Head)
		})
	}
}

// TestDecodeTruncated cuts every valid body at every byte: each cut must be
// an error, since every message is one array whose length demands the rest.
func TestDecodeTruncated(t *testing.T) {
	d := NewDecoder()
	for _, s := range samples() {
		body := encode(t, s.msg)
		for n := range min(len(body), 200) {
			_, err := d.Decode(body[:n])
			var fe *FrameError
			require.ErrorAs(t, err, &fe, "%s cut to %d bytes", s.name, n)
		}
	}
}

// TestDecodeLengthsAllocate checks that lengths in a body are checked against
// its size before anything is allocated: a few bytes must not cost megabytes.
func TestDecodeLengthsAllocate(t *testing.T) {
	const runs = 20
	d := NewDecoder()
	for _, tt := range brokenBodies {
		before := heapAllocated()
		for range runs {
			_, err := d.Decode(tt.body)
			require.Error(t, err)
		}
		perDecode := (heapAllocated() - before) / runs
		assert.Less(t, perDecode, uint64(64<<10), "%s: bytes allocated per decode", tt.name)
	}
}

// TestDecodeAliases checks the documented zero-copy: byte fields point into
// the body, and are capped so appending to one cannot overwrite the next.
func TestDecodeAliases(t *testing.T) {
	t.Run("run args", func(t *testing.T) {
		body := encode(t, &Run{ID: 1, Task: "t", Args: ValuesOf([]byte("first"), []byte("second"))})
		m, err := NewDecoder().Decode(body)
		require.NoError(t, err)
		args := m.(*Run).Args

		body[bytes.Index(body, []byte("first"))] = 'F'
		require.Equal(t, "First", string(args.At(0)))

		_ = append(args.At(0), "XXXXXXXX"...)
		require.Equal(t, "second", string(args.At(1)))
	})
	t.Run("result values", func(t *testing.T) {
		body := encode(t, &Result{ID: 1, Items: []Item{{Value: []byte("first")}, {Value: []byte("second")}}})
		m, err := NewDecoder().Decode(body)
		require.NoError(t, err)
		items := m.(*Result).Outcomes()

		body[bytes.Index(body, []byte("second"))] = 'S'
		require.Equal(t, "Second", string(items[1].Value))

		_ = append(items[0].Value, "XXXXXXXX"...)
		require.Equal(t, "Second", string(items[1].Value))
	})
}

func TestShowBytes(t *testing.T) {
	tests := []struct {
		in   []byte
		want string
	}{
		{[]byte("ok"), `6f 6b ("ok")`},
		{[]byte{0x00, 0xff}, `00 ff ("\x00\xff")`},
		{nil, ` ("")`},
		{[]byte(strings.Repeat("a", 40)), strings.TrimSpace(strings.Repeat("61 ", 32)) + ` … ("` + strings.Repeat("a", 32) + `")`},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, ShowBytes(tt.in))
	}
}

func TestFrameErrorMessage(t *testing.T) {
	inner := errors.New("inner")
	assert.Equal(t, "garbled frame: why", (&FrameError{Reason: "why", Err: inner}).Error())
	err := &FrameError{Reason: "why", Head: []byte("ab"), Err: inner}
	assert.Equal(t, `garbled frame: why; data starts 61 62 ("ab")`, err.Error())
	assert.ErrorIs(t, err, inner)
}

func TestKindString(t *testing.T) {
	names := map[Kind]string{KindHello: "hello", KindSetup: "setup", KindReady: "ready", KindRun: "run", KindResult: "result", KindCancel: "cancel", 0: "kind(0)", 200: "kind(200)"}
	for k, want := range names {
		assert.Equal(t, want, k.String())
	}
}

// TestHelloOtherVersion decodes a hello laid out by an older protocol: the
// version is read first, and the error says which it is.
func TestHelloOtherVersion(t *testing.T) {
	for _, body := range [][]byte{
		{0x94, byte(KindHello), 0x01, 0x01, 0x90},             // version 1: kind, version, pid, tasks
		{0x96, byte(KindHello), 0x07, 0x01, 0x90, 0xa0, 0xc0}, // a future version with more fields
	} {
		_, err := NewDecoder().Decode(body)
		var ve *VersionError
		require.ErrorAs(t, err, &ve)
		require.Equal(t, int(body[2]), ve.Version)
		require.ErrorContains(t, err, fmt.Sprintf("protocol version %d, this program %d", body[2], Version))
	}
}

func TestRoleArg(t *testing.T) {
	require.Equal(t, fmt.Sprintf("--procpool-worker=%d", Version), RoleArg())
}

// TestResultReuse: a Decoder reuses its Result, yet each decode stands
// alone (no failure leaks from an earlier one), what the caller kept of a
// Result stays valid after Release and the next Decode, and Release lets
// go of the frame.
func TestResultReuse(t *testing.T) {
	enc := NewEncoder()
	d := NewDecoder()
	decode := func(m *Result) *Result {
		body, err := enc.Message(m)
		require.NoError(t, err)
		got, err := d.Decode(append([]byte(nil), body...))
		require.NoError(t, err)
		return got.(*Result)
	}
	first := decode(&Result{ID: 1, Items: []Item{{Status: StatusPanic, Message: "boom", Stack: "s"}, {Value: []byte{1}}}})
	require.Equal(t, []Fail{{Index: 0, Item: Item{Status: StatusPanic, Message: "boom", Stack: "s"}}}, first.Fails)
	kept := first.Values
	d.Release()
	second := decode(&Result{ID: 2, Items: []Item{{Value: []byte{2}}}})
	require.Empty(t, second.Fails)
	require.Equal(t, []Item{{Value: []byte{2}}}, second.Outcomes())
	require.Equal(t, []byte{1}, kept.At(1), "a kept value outlives the next decode")
	require.Empty(t, kept.At(0), "a failed call has no value")
	d.Release()
	require.Zero(t, d.result, "released values do not pin the frame")
}

// A read cut short by a deadline keeps what it read: the next ReadFrame
// goes on with the same frame, in the header or in the body.
func TestReadFrameResumesAfterADeadline(t *testing.T) {
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	defer pr.Close()
	defer pw.Close()
	r := NewReader(pr, DefaultMaxFrame)
	body := bytes.Repeat([]byte("0123456789"), 10)
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	frame = append(frame, body...)
	for _, cut := range []int{2, headerLen, 40} { // in the header, after it, in the body
		_, err := pw.Write(frame[:cut])
		require.NoError(t, err)
		require.NoError(t, pr.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
		_, err = r.ReadFrame()
		require.ErrorIs(t, err, os.ErrDeadlineExceeded, "cut at %d", cut)
		require.NoError(t, pr.SetReadDeadline(time.Time{}))
		_, err = pw.Write(frame[cut:])
		require.NoError(t, err)
		got, err := r.ReadFrame()
		require.NoError(t, err, "cut at %d", cut)
		assert.Equal(t, body, got, "cut at %d", cut)
	}
}

// Release forgets the Result, so that no frame stays alive through the
// Decoder, after large and small Results alike.
func TestReleaseForgetsEveryValue(t *testing.T) {
	d := NewDecoder()
	for _, n := range []int{1000, 2, 0, 500, 1} {
		res := &Result{ID: 1, Items: make([]Item, n)}
		for i := range res.Items {
			res.Items[i] = Item{Value: []byte{0xc3}}
		}
		body, err := NewEncoder().Message(res)
		require.NoError(t, err)
		m, err := d.Decode(body)
		require.NoError(t, err)
		require.Equal(t, n, m.(*Result).Len())
		d.Release()
		require.Zero(t, d.result, "after a Result of %d", n)
	}
}

// TestRunFromBegunValues: a Run whose arguments were built with Begin and
// End, which leave room for their headers, is the same frame as one whose
// arguments were not, whether it is written whole (values of up to 255
// bytes) or value by value (a longer one among them), and a dropped value
// leaves no trace.
func TestRunFromBegunValues(t *testing.T) {
	for name, vals := range map[string][][]byte{
		"small":           {{0x01}, {0xa3, 'a', 'b', 'c'}, bytes.Repeat([]byte{0xcc}, 255)},
		"one long":        {{0x01}, bytes.Repeat([]byte{0xcc}, 256), {0x02}},
		"long, then more": {bytes.Repeat([]byte{0xcc}, 70000), {0x02}},
		"large segment":   {bytes.Repeat([]byte{0x07}, 200), bytes.Repeat([]byte{0x08}, 3*splitMin)},
		"small, many":     slices.Repeat([][]byte{bytes.Repeat([]byte{0x07}, 200)}, 100), // written whole from Buf, a segment
	} {
		t.Run(name, func(t *testing.T) {
			var begun Values
			for i, v := range vals {
				if i == 1 { // a value that failed to encode
					start := begun.Begin()
					begun.Buf = append(begun.Buf, 0xff, 0xff)
					begun.Drop(start)
				}
				start := begun.Begin()
				begun.Buf = append(begun.Buf, v...)
				begun.End(start)
			}
			_, whole := begun.framed()
			require.Equal(t, strings.HasPrefix(name, "small"), whole)
			want := writeFrames(t, &Run{ID: 3, Task: "t", Args: ValuesOf(vals...)})
			got := writeFrames(t, &Run{ID: 3, Task: "t", Args: begun})
			require.Equal(t, want, got)
		})
	}
}

// writeFrames returns the frames a Writer writes for ms.
func writeFrames(t *testing.T, ms ...Message) []byte {
	var buf bytes.Buffer
	w := NewWriter(&buf, DefaultMaxFrame)
	for _, m := range ms {
		require.NoError(t, w.Write(m))
	}
	require.NoError(t, w.Flush())
	return buf.Bytes()
}

// TestItemTailIsItsValue: an Item whose value is split into Value and Tail
// goes on the wire as the Item of the whole value does, byte for byte,
// whether the Writer leaves the tail where it is (large) or copies it;
// and Pack gives the whole value.
func TestItemTailIsItsValue(t *testing.T) {
	for _, n := range []int{3, splitMin - 3, splitMin, 1 << 20} {
		value := bytes.Repeat([]byte{0xab}, n)
		head, tail := value[:2], value[2:]
		whole := &Result{ID: 9, Items: []Item{{Value: []byte{1}}, {Value: value}, {Status: StatusError, Message: "m"}}}
		split := &Result{ID: 9, Items: []Item{{Value: []byte{1}}, {Value: head, Tail: tail}, {Status: StatusError, Message: "m"}}}
		frame := func(m Message) []byte {
			var buf bytes.Buffer
			w := NewWriter(&buf, DefaultMaxFrame)
			require.NoError(t, w.Write(m))
			require.NoError(t, w.Flush())
			return buf.Bytes()
		}
		require.Equal(t, frame(whole), frame(split), "n=%d", n)
		body, err := NewEncoder().Message(split)
		require.NoError(t, err)
		require.Equal(t, frame(whole)[headerLen:], body, "n=%d, unsplit encoding", n)
		require.Equal(t, Canonical(whole), Canonical(split), "n=%d", n)

		vals, fails := Pack(split.Items)
		require.Equal(t, 3, vals.Len())
		require.Equal(t, value, vals.At(1), "n=%d", n)
		require.Len(t, fails, 1)
	}
}

// TestWhole: Whole reports a frame only once all of it is in the Reader's
// buffer, so that ReadFrame will not read the stream for it; never a frame
// cut short, nor one larger than the buffer.
func TestWhole(t *testing.T) {
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	defer pr.Close()
	defer pw.Close()
	r := NewReader(pr, DefaultMaxFrame)
	mk := func(n int) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(n)), bytes.Repeat([]byte{byte(n)}, n)...)
	}
	small, next, large := mk(10), mk(20), mk(bufSize+10)
	assert.False(t, r.Whole(), "nothing read yet")

	cut := append(slices.Clone(small), next[:headerLen+5]...) // the second frame cut in its body
	_, err = pw.Write(cut)
	require.NoError(t, err)
	got, err := r.ReadFrame()
	require.NoError(t, err)
	assert.Equal(t, small[headerLen:], got)
	assert.False(t, r.Whole(), "a frame cut in its body")

	_, err = pw.Write(append(slices.Clone(next[headerLen+5:]), mk(30)[:2]...)) // and the third cut in its header
	require.NoError(t, err)
	got, err = r.ReadFrame()
	require.NoError(t, err)
	assert.Equal(t, next[headerLen:], got)
	assert.False(t, r.Whole(), "a frame cut in its header")

	_, err = pw.Write(append(mk(30)[2:], small...))
	require.NoError(t, err)
	got, err = r.ReadFrame()
	require.NoError(t, err)
	assert.Len(t, got, 30)
	assert.True(t, r.Whole(), "a frame all in the buffer")
	got, err = r.ReadFrame()
	require.NoError(t, err)
	assert.Equal(t, small[headerLen:], got)

	go pw.Write(append(slices.Clone(small), large...))
	_, err = r.ReadFrame()
	require.NoError(t, err)
	assert.False(t, r.Whole(), "a frame larger than the buffer")
	got, err = r.ReadFrame()
	require.NoError(t, err)
	assert.Equal(t, large[headerLen:], got)
}
