package journal

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/internal/wire"
)

func newMem() []byte { return make([]byte, Size) }

func TestRecordsWhatRanAndWhatCompleted(t *testing.T) {
	mem := newMem()
	w := NewWriter(mem)
	ok := wire.Item{Status: wire.StatusOK, Value: []byte{0x2a}}
	failed := wire.Item{Status: wire.StatusError, Message: "step: quota", Codes: []string{"fs.ErrNotExist", "io.EOF"}}
	panicked := wire.Item{Status: wire.StatusPanic, Message: "boom", Stack: "goroutine 1\nmain.go:3"}
	w.Start(7, 0)
	require.True(t, w.Done(7, 0, &ok))
	w.Start(7, 1)
	require.True(t, w.Done(7, 1, &failed))
	w.Start(8, 0)
	require.True(t, w.Done(8, 0, &panicked))
	w.Start(8, 1)

	r, err := Read(mem)
	require.NoError(t, err)
	assert.Equal(t, uint64(8), r.Run)
	assert.Equal(t, 1, r.Index)
	assert.Equal(t, []Entry{{7, 0, ok}, {7, 1, failed}, {8, 0, panicked}}, r.Entries)

	w.Reset()
	r, err = Read(mem)
	require.NoError(t, err)
	assert.Empty(t, r.Entries, "Reset forgets what reached the parent")
	assert.Equal(t, uint64(8), r.Run, "the running call stays recorded")
}

func TestNothingRunningBeforeTheFirstCall(t *testing.T) {
	mem := newMem()
	NewWriter(mem)
	r, err := Read(mem)
	require.NoError(t, err)
	assert.Zero(t, r.Run)
	assert.Empty(t, r.Entries)
}

// A death while Start writes leaves no call running: the call had not
// begun.
func TestDeathInStartLeavesNoCallRunning(t *testing.T) {
	mem := newMem()
	w := NewWriter(mem)
	w.Start(3, 4)
	w.put(offRun, 0) // Start's first store, then death
	w.put(offIndex, 5)
	r, err := Read(mem)
	require.NoError(t, err)
	assert.Zero(t, r.Run)
}

// A death in the middle of Done's copy: the entry was never published, and
// Read sees only whole entries, whatever the bytes written past them.
func TestTornEntryIsNeverRead(t *testing.T) {
	mem := newMem()
	w := NewWriter(mem)
	whole := wire.Item{Value: []byte("whole")}
	require.True(t, w.Done(1, 0, &whole))
	published := binary.LittleEndian.Uint64(mem[offLen:])
	require.True(t, w.Done(1, 1, &wire.Item{Value: make([]byte, 1000)}))
	w.put(offLen, published) // as if the worker died before publishing
	for i := headerLen + int(published); i < headerLen+int(published)+200; i++ {
		mem[i] = 0xff
	}
	r, err := Read(mem)
	require.NoError(t, err)
	assert.Equal(t, []Entry{{1, 0, whole}}, r.Entries)
}

func TestFullLogRefusesAndRecordsNothing(t *testing.T) {
	mem := newMem()
	w := NewWriter(mem)
	big := wire.Item{Value: make([]byte, Size/16)}
	assert.False(t, w.Done(1, 0, &big), "a large outcome is written to the parent instead")
	small := wire.Item{Value: make([]byte, Size/20)}
	n := 0
	for w.Done(1, n, &small) {
		n++
	}
	assert.Positive(t, n)
	r, err := Read(mem)
	require.NoError(t, err)
	assert.Len(t, r.Entries, n, "the refused outcome left no trace")
	w.Reset()
	assert.True(t, w.Done(1, n, &small), "after Reset there is room again")
}

func TestNilWriterRecordsNothing(t *testing.T) {
	var w *Writer
	w.Start(1, 0)
	assert.True(t, w.Done(1, 0, &wire.Item{}))
	w.Reset()
}

func TestCorruptMemoryIsAnError(t *testing.T) {
	_, err := Read(make([]byte, 64))
	require.ErrorIs(t, err, ErrCorrupt)
	mem := newMem()
	w := NewWriter(mem)
	require.True(t, w.Done(1, 0, &wire.Item{Value: []byte("x")}))
	w.put(offLen, Size) // past the end
	_, err = Read(mem)
	require.ErrorIs(t, err, ErrCorrupt)
}

// FuzzRead: no content of the shared memory, which a dying or hostile worker
// writes, makes Read panic or return entries past the published log.
func FuzzRead(f *testing.F) {
	mem := newMem()
	w := NewWriter(mem)
	w.Done(1, 0, &wire.Item{Value: []byte("abc"), Codes: []string{"io.EOF"}})
	w.Done(1, 1, &wire.Item{Status: wire.StatusPanic, Message: "boom", Stack: "main.go:1"})
	f.Add(mem[:headerLen+w.n])
	f.Fuzz(func(t *testing.T, b []byte) {
		mem := make([]byte, len(b)+8)
		copy(mem, b)
		if r, err := Read(mem); err == nil {
			n := 0
			for _, e := range r.Entries {
				n += 2 + len(e.Item.Value) + len(e.Item.Message) + len(e.Item.Stack)
			}
			assert.LessOrEqual(t, n, len(mem))
		}
	})
}

// BenchmarkCall is what the journal costs a worker per call of a trivial
// task: Start, then Done with a small result.
func BenchmarkCall(b *testing.B) {
	w := NewWriter(newMem())
	it := wire.Item{Value: []byte{0xcd, 0x12, 0x34}}
	for i := range b.N {
		w.Start(1, i)
		if !w.Done(1, i, &it) {
			w.Reset()
		}
	}
}

// TestTailIsNotJournaled: an outcome whose value is in part the task's own
// bytes (Item.Tail) is never copied into the log: the caller sends it at
// once.
func TestTailIsNotJournaled(t *testing.T) {
	mem := newMem()
	w := NewWriter(mem)
	w.Start(1, 0)
	require.False(t, w.Done(1, 0, &wire.Item{Value: []byte{0xc4, 3}, Tail: []byte{1, 2, 3}}))
	r, err := Read(mem)
	require.NoError(t, err)
	assert.Empty(t, r.Entries)
}
