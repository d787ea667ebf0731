// Package journal is a worker's record, in memory it shares with its
// parent, of the call it is running and of the outcomes it has not yet
// written to its stdout. Whatever kills the worker, the parent then knows
// which call was running, which completed, and their results: a death costs
// exactly the call that caused it.
//
// The worker writes (Writer); the parent reads once the worker is dead
// (Read), so no read races a write. A worker killed in the middle of a
// write leaves the entry unpublished: Read never sees a torn outcome. While
// the worker lives, the parent may only Peek at the call it runs.
//
// Layout, little-endian:
//
//	0   magic
//	8   running run id (0: none), stored last by Start
//	16  running call's index in its run
//	24  published length of the log
//	32  log: entries, each
//	    run u64, index u32, status u8, codes u8, len(value) u32,
//	    len(message) u32, len(stack) u32, value, message, stack,
//	    then each code as len u8 and bytes
package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/procpool/procpool/internal/wire"
)

// Size is the size of a journal's shared memory. Outcomes that do not fit
// make the worker write what it holds to its stdout first.
const Size = 1 << 20

const (
	magic     = 0x316c6e726a707070 // "ppjrnl1"
	offRun    = 8
	offIndex  = 16
	offLen    = 24
	headerLen = 32
	entryHead = 8 + 4 + 1 + 1 + 4 + 4 + 4
)

// Writer is the worker's side. Its methods are not safe for concurrent
// use; a nil *Writer records nothing.
type Writer struct {
	mem []byte
	n   int // bytes of log written, published or not
}

// NewWriter returns a Writer on mem, which must be at least headerLen bytes,
// 8-byte aligned (mmap'd memory is).
func NewWriter(mem []byte) *Writer {
	w := &Writer{mem: mem}
	binary.LittleEndian.PutUint64(mem, magic)
	w.word(offRun).Store(0)
	w.word(offLen).Store(0)
	return w
}

func (w *Writer) word(off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&w.mem[off]))
}

// Start records that the call index of run is starting. A death before
// Start returns leaves no call running: the call had not begun.
func (w *Writer) Start(run uint64, index int) {
	if w == nil {
		return
	}
	w.word(offRun).Store(0)
	w.word(offIndex).Store(uint64(index))
	w.word(offRun).Store(run)
}

// Done records the outcome of the call index of run, which ended. It
// reports false, recording nothing, if the outcome does not fit in what is
// left of the log: the caller writes what it holds to the parent, calls
// Reset, and needs no record of this outcome either.
func (w *Writer) Done(run uint64, index int, it *wire.Item) bool {
	if w == nil {
		return true
	}
	need := entryHead + len(it.Value) + len(it.Message) + len(it.Stack)
	for _, c := range it.Codes {
		need += 1 + min(len(c), 255)
	}
	// A large outcome is cheaper written to the parent at once than copied.
	if len(it.Codes) > 255 || need > len(w.mem)/16 || headerLen+w.n+need > len(w.mem) {
		return false
	}
	b := w.mem[headerLen+w.n : headerLen+w.n+need]
	le := binary.LittleEndian
	le.PutUint64(b, run)
	le.PutUint32(b[8:], uint32(index))
	b[12], b[13] = byte(it.Status), byte(len(it.Codes))
	le.PutUint32(b[14:], uint32(len(it.Value)))
	le.PutUint32(b[18:], uint32(len(it.Message)))
	le.PutUint32(b[22:], uint32(len(it.Stack)))
	p := entryHead
	p += copy(b[p:], it.Value)
	p += copy(b[p:], it.Message)
	p += copy(b[p:], it.Stack)
	for _, c := range it.Codes {
		c = c[:min(len(c), 255)]
		b[p] = byte(len(c))
		p++
		p += copy(b[p:], c)
	}
	w.n += need
	w.word(offLen).Store(uint64(w.n)) // publish: the entry is whole
	return true
}

// Reset forgets the outcomes recorded: they have reached the parent.
func (w *Writer) Reset() {
	if w == nil || w.n == 0 {
		return
	}
	w.word(offLen).Store(0)
	w.n = 0
}

// Peek returns the call a live worker's journal names: the one it runs, or,
// between calls, the one it ran last; ok is false if it names none yet. Unlike
// Read it may race the worker's writes, so it loads only the words Start
// stores, atomically: a run id loaded the same before and after the index
// vouches that the index is that run's, since a run, once left, never runs
// again.
func Peek(mem []byte) (run uint64, index int, ok bool) {
	if len(mem) < headerLen {
		return 0, 0, false
	}
	w := &Writer{mem: mem}
	for range 3 { // a Start in between: look again
		run = w.word(offRun).Load()
		index = int(w.word(offIndex).Load())
		if run != 0 && w.word(offRun).Load() == run {
			return run, index, true
		}
	}
	return 0, 0, false
}

// Entry is one recorded outcome.
type Entry struct {
	Run   uint64
	Index int
	Item  wire.Item
}

// Record is what a dead worker's journal says.
type Record struct {
	// Run and Index name the call that was running, unless Run is 0. If
	// Entries has an outcome for it, it had ended.
	Run   uint64
	Index int
	// Entries are the outcomes recorded since the worker last wrote to
	// its stdout, in the order the calls ended.
	Entries []Entry
}

// ErrCorrupt is Read's error for memory that is not a journal as Writer
// leaves it.
var ErrCorrupt = errors.New("journal: corrupt")

// Read decodes a journal. The entries are copies: mem may be unmapped
// afterwards.
func Read(mem []byte) (*Record, error) {
	le := binary.LittleEndian
	if len(mem) < headerLen || le.Uint64(mem) != magic {
		return nil, fmt.Errorf("%w: no header", ErrCorrupt)
	}
	r := &Record{Run: le.Uint64(mem[offRun:]), Index: int(le.Uint64(mem[offIndex:]))}
	n := le.Uint64(mem[offLen:])
	if n > uint64(len(mem)-headerLen) {
		return nil, fmt.Errorf("%w: log length %d", ErrCorrupt, n)
	}
	log := mem[headerLen : headerLen+int(n)]
	for len(log) > 0 {
		if len(log) < entryHead {
			return nil, fmt.Errorf("%w: short entry", ErrCorrupt)
		}
		e := Entry{Run: le.Uint64(log), Index: int(le.Uint32(log[8:]))}
		e.Item.Status = wire.Status(log[12])
		codes := int(log[13])
		lv, lm, ls := int(le.Uint32(log[14:])), int(le.Uint32(log[18:])), int(le.Uint32(log[22:]))
		rest := log[entryHead:]
		if lv+lm+ls > len(rest) || lv < 0 || lm < 0 || ls < 0 {
			return nil, fmt.Errorf("%w: entry overruns the log", ErrCorrupt)
		}
		if lv > 0 || e.Item.Status == wire.StatusOK {
			e.Item.Value = append([]byte{}, rest[:lv]...)
		}
		e.Item.Message = string(rest[lv : lv+lm])
		e.Item.Stack = string(rest[lv+lm : lv+lm+ls])
		rest = rest[lv+lm+ls:]
		for range codes {
			if len(rest) < 1 || int(rest[0]) > len(rest)-1 {
				return nil, fmt.Errorf("%w: code overruns the log", ErrCorrupt)
			}
			e.Item.Codes = append(e.Item.Codes, string(rest[1:1+int(rest[0])]))
			rest = rest[1+int(rest[0]):]
		}
		r.Entries = append(r.Entries, e)
		log = rest
	}
	return r, nil
}
