// Package journal is a worker's record, in memory it shares with its
// parent, of the call it is running and of the outcomes it has not yet
// written to its stdout. Whatever kills the worker, the parent then knows
// which call was running, which completed, and their results: a death costs
// exactly the call that caused it.
//
// The worker writes (Writer); the parent reads once the worker is dead
// (Read), so no read races a write, and plain stores do: the compiler keeps
// stores to memory in program order, and a dead process's stores have all
// reached memory by the time its parent has reaped it. An entry is
// published by storing the log's length after it, so a worker killed in
// the middle of a write leaves it unpublished: Read never sees a torn
// outcome. While the worker lives, the parent may only Peek at the call it
// runs, whose two words Start stores whole (atomically, or as a plain
// store of an aligned word where that is whole).
//
// Layout, little-endian:
//
//	0   magic
//	8   running run id (0: none), stored last by Start
//	16  running call's index in its run
//	24  published length of the log
//	32  log: records, each a kind byte, then
//	    segment (0xff): run u64, index u32: the outcomes that follow are
//	        those of run's calls from index on, in order
//	    outcome (its wire.Status): uvarint len(value), value; unless
//	        StatusOK, uvarint len(message), message, uvarint len(stack),
//	        stack, a count byte, then each code as len u8 and bytes
//
// A small result costs a few bytes: the log stays small in the caches.
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

	kindSegment = 0xff
	segmentLen  = 1 + 8 + 4
)

// Writer is the worker's side. Its methods are not safe for concurrent
// use; a nil *Writer records nothing.
type Writer struct {
	mem  []byte
	n    int    // bytes of log written, published or not
	run  uint64 // the run Start last recorded
	next struct {
		run   uint64 // the run of the log's last segment; 0 after Reset
		index int    // the index of the outcome that continues it
	}
}

// NewWriter returns a Writer on mem, which must be at least headerLen bytes,
// 8-byte aligned (mmap'd memory is).
func NewWriter(mem []byte) *Writer {
	w := &Writer{mem: mem}
	binary.LittleEndian.PutUint64(mem, magic)
	w.put(offRun, 0)
	w.put(offLen, 0)
	return w
}

func (w *Writer) put(off int, v uint64) { binary.LittleEndian.PutUint64(w.mem[off:], v) }

// word is one of the words of mem that Start stores and Peek loads while
// the worker runs.
func word(mem []byte, off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&mem[off]))
}

// Start records that the call index of run is starting. A death before
// Start returns leaves no call running, or the one before it, which ended:
// the call had not begun. Within a run it costs one store.
func (w *Writer) Start(run uint64, index int) {
	if w == nil {
		return
	}
	if run == w.run {
		if wideStores {
			// An aligned word's plain store is whole, and the index is
			// the only word that changes: no barrier is needed, and an
			// atomic one costs a tiny call a good part of its time.
			*(*uint64)(unsafe.Pointer(&w.mem[offIndex])) = uint64(index)
		} else {
			word(w.mem, offIndex).Store(uint64(index))
		}
		return
	}
	word(w.mem, offRun).Store(0)
	word(w.mem, offIndex).Store(uint64(index))
	word(w.mem, offRun).Store(run)
	w.run = run
}

// wideStores is whether the platform stores an aligned 64-bit word in one
// piece, as every 64-bit one does.
const wideStores = unsafe.Sizeof(uintptr(0)) == 8

// Done records the outcome of the call index of run, which ended. It
// reports false, recording nothing, if the outcome does not fit in what is
// left of the log: the caller writes what it holds to the parent, calls
// Reset, and needs no record of this outcome either.
func (w *Writer) Done(run uint64, index int, it *wire.Item) bool {
	if w == nil {
		return true
	}
	if it.Tail != nil { // large, and not the task's to reuse until it is sent
		return false
	}
	if it.Status == wire.StatusOK && w.short(run, index, it.Value) {
		return true
	}
	need := 1 + binary.MaxVarintLen32 + len(it.Value)
	if it.Status != wire.StatusOK {
		need += 2*binary.MaxVarintLen32 + len(it.Message) + len(it.Stack) + 1
		for _, c := range it.Codes {
			need += 1 + min(len(c), 255)
		}
	}
	segment := run != w.next.run || index != w.next.index
	if segment {
		need += segmentLen
	}
	// A large outcome is cheaper written to the parent at once than copied.
	if len(it.Codes) > 255 || need > len(w.mem)/16 || headerLen+w.n+need > len(w.mem) {
		return false
	}
	b := w.mem[headerLen+w.n : headerLen+w.n+need]
	p := 0
	if segment {
		b[0] = kindSegment
		binary.LittleEndian.PutUint64(b[1:], run)
		binary.LittleEndian.PutUint32(b[9:], uint32(index))
		p = segmentLen
	}
	b[p] = byte(it.Status)
	p++
	p += binary.PutUvarint(b[p:], uint64(len(it.Value)))
	p += copy(b[p:], it.Value)
	if it.Status != wire.StatusOK {
		p += binary.PutUvarint(b[p:], uint64(len(it.Message)))
		p += copy(b[p:], it.Message)
		p += binary.PutUvarint(b[p:], uint64(len(it.Stack)))
		p += copy(b[p:], it.Stack)
		b[p] = byte(len(it.Codes))
		p++
		for _, c := range it.Codes {
			c = c[:min(len(c), 255)]
			b[p] = byte(len(c))
			p++
			p += copy(b[p:], c)
		}
	}
	w.n += p
	w.next.run, w.next.index = run, index+1
	w.put(offLen, uint64(w.n)) // publish: the entry is whole
	return true
}

// DoneOK is Done of a call that returned value.
func (w *Writer) DoneOK(run uint64, index int, value []byte) bool {
	if w == nil || w.short(run, index, value) {
		return true
	}
	return w.Done(run, index, &wire.Item{Value: value})
}

// short records the usual outcome, a short value of the call after the one
// before, and reports whether it was one.
func (w *Writer) short(run uint64, index int, value []byte) bool {
	if len(value) >= 0x80 || run != w.next.run || index != w.next.index {
		return false
	}
	at := headerLen + w.n
	end := at + 2 + len(value)
	if end > len(w.mem) {
		return false
	}
	w.mem[at], w.mem[at+1] = byte(wire.StatusOK), byte(len(value)) // a uvarint of one byte
	copy(w.mem[at+2:end], value)
	w.n = end - headerLen
	w.next.index++
	w.put(offLen, uint64(w.n)) // publish
	return true
}

// Reset forgets the outcomes recorded: they have reached the parent.
func (w *Writer) Reset() {
	if w == nil || w.n == 0 {
		return
	}
	w.put(offLen, 0)
	w.n = 0
	w.next.run = 0
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
	for range 3 { // a Start in between: look again
		run = word(mem, offRun).Load()
		index = int(word(mem, offIndex).Load())
		if run != 0 && word(mem, offRun).Load() == run {
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
	d := decoder{b: mem[headerLen : headerLen+int(n)]}
	var run uint64
	index := 0
	for len(d.b) > 0 && d.err == nil {
		kind := d.byte()
		if kind == kindSegment {
			run, index = d.u64(), int(d.u32())
			continue
		}
		if run == 0 {
			return nil, fmt.Errorf("%w: an outcome before any segment", ErrCorrupt)
		}
		e := Entry{Run: run, Index: index, Item: wire.Item{Status: wire.Status(kind)}}
		e.Item.Value = d.bytes()
		if e.Item.Status != wire.StatusOK {
			e.Item.Message, e.Item.Stack = string(d.bytes()), string(d.bytes())
			for range d.byte() {
				e.Item.Codes = append(e.Item.Codes, string(d.next(int(d.byte()))))
			}
		}
		r.Entries = append(r.Entries, e)
		index++
	}
	if d.err != nil {
		return nil, d.err
	}
	return r, nil
}

// decoder reads a log; past its end it records ErrCorrupt and returns
// zeros.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) next(n int) []byte {
	if d.err != nil || n < 0 || n > len(d.b) {
		d.err = fmt.Errorf("%w: a record overruns the log", ErrCorrupt)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if v := d.next(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.next(8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.next(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

// bytes reads a uvarint length and that many bytes, copied.
func (d *decoder) bytes() []byte {
	if d.err != nil {
		return nil
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 || n > uint64(len(d.b)-k) {
		d.err = fmt.Errorf("%w: a length overruns the log", ErrCorrupt)
		return nil
	}
	d.b = d.b[k:]
	if n == 0 {
		return nil
	}
	return append([]byte{}, d.next(int(n))...)
}
