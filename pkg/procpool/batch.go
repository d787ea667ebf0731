package procpool

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/procpool/procpool/internal/wire"
)

// batch is the unit of scheduling: one Run message, a chunk of calls of one
// task. A Submit is a batch of one call; Map makes a batch per chunk.
type batch struct {
	id   uint64
	task string
	args wire.Values  // encoded arguments
	outs outcomes     // how its calls ended
	got  int          // outcomes received so far; a large run's results come in parts
	done func(*batch) // called once, under the pool's lock, when every outcome is set

	first    int                       // index of its first call in the caller's input (Map)
	elem     func(b *batch, i int) int // the index of its call i in the caller's input (Map, Imap); nil for a Submit
	deadline int64                     // the deadline of the caller's context in Unix nanoseconds, or 0
	holder   *member                   // the worker holding it, while running
	sent     time.Time                 // when it was given to holder
	cost     *taskCost                 // what runs of its task have been measured to take
	expect   time.Duration             // what it was expected to take when posted; 0 if not measured
	tries    int                       // times its calls were lost with a worker
	parent   *batch                    // for a call split from a lost chunk: the chunk
	at       int                       // for a call split from a lost chunk: its index in parent
	left     int                       // for a lost chunk: calls split from it not yet finished
	lessee   *processConn              // the conn that leased reading b's result to its caller; set before Submit returns
	state    batchState
	cold     bool // holder was idle when given it: its time includes a wake-up
	quiet    bool // being posted by enqueue, whose caller writes it (conn.sendNow): the conn's writer is not woken
	direct   bool // a Submit's, being posted during the Submit: its caller may read its result (readrole.go)
	leased   bool // the lease on lessee holds; guarded by lessee.rdMu
	polls    bool // its caller's read of its result polls for pollFor before it waits (readrole.go); set before it is posted

	// A Map reuses the buffer that holds a chunk's arguments (args.Buf,
	// the chunk's own) for a later chunk once it is sure nothing reads
	// them any more: the batch was written whole to its holder (written,
	// set by the writer once done with the arguments, so that this happens
	// before the reuse) and finished by that holder's results (clean),
	// never moved to another worker or failed while the writer might still
	// hold it.
	clean   bool        // finished by its holder's results, and never moved
	moved   bool        // given back to the queue by a dead holder, whose writer may still be reading its arguments
	written atomic.Bool // its arguments went to its holder's stream, which reads them no more
}

type batchState uint8

const (
	queued   batchState = iota + 1 // waiting for a worker
	running                        // held by a worker
	finished                       // every outcome set
)

func newBatch(task string, args wire.Values, done func(*batch)) *batch {
	return &batch{task: task, args: args, done: done}
}

// failedBatch returns a batch of one call that failed with err before it
// was queued.
func failedBatch(task string, err error) *batch {
	b := &batch{task: task, args: wire.ValuesOf(nil), state: finished}
	b.failCall(0, err, false)
	return b
}

// calls is the number of calls b holds.
func (b *batch) calls() int { return b.args.Len() }

// failCall records that call j failed with err, unless it already has.
func (b *batch) failCall(j int, err error, culprit bool) {
	if b.outs.err(j) == nil {
		b.outs.fail(b.calls(), j, err, culprit)
	}
}

// deadlineOf is ctx's deadline in Unix nanoseconds, or 0 for none.
func deadlineOf(ctx context.Context) int64 {
	if d, ok := ctx.Deadline(); ok {
		return d.UnixNano()
	}
	return 0
}

// queue is a FIFO of batches. Finished batches (cancelled while queued) are
// left in place and skipped when they reach the front.
type queue struct {
	items []*batch
	head  int
}

func (q *queue) pushBack(b *batch) { q.items = append(q.items, b) }

// pushFront puts b first: a batch given back by a dead worker goes before
// work that was submitted after it.
func (q *queue) pushFront(b *batch) {
	if q.head > 0 {
		q.head--
		q.items[q.head] = b
		return
	}
	q.items = append([]*batch{b}, q.items...)
}

// peek returns the first queued batch without removing it, or nil.
func (q *queue) peek() *batch {
	for q.head < len(q.items) {
		if b := q.items[q.head]; b.state == queued {
			return b
		}
		q.items[q.head] = nil
		q.head++
	}
	return nil
}

// popFront removes and returns the first queued batch, or nil.
func (q *queue) popFront() *batch {
	for q.head < len(q.items) {
		b := q.items[q.head]
		q.items[q.head] = nil
		q.head++
		if q.head == len(q.items) || q.head > 1024 && q.head*2 > len(q.items) {
			q.items = append(q.items[:0], q.items[q.head:]...)
			q.head = 0
		}
		if b.state == queued {
			return b
		}
	}
	return nil
}
