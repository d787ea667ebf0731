package worker

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/procpool/procpool/internal/codec"
	"github.com/procpool/procpool/internal/errcode"
	"github.com/procpool/procpool/internal/journal"
	"github.com/procpool/procpool/internal/registry"
	"github.com/procpool/procpool/internal/wire"
)

// Executor runs the calls of Run messages, one run at a time: it decodes each
// argument, calls the task, encodes the result and frames the outcomes into
// Results. It also keeps the cancel bookkeeping, so that a Cancel reaches the
// call in progress, or a run that has not started yet. A worker process and
// the pool's goroutine backend share it; only how the Results travel differs.
//
// Execute must not be called concurrently; Queue and Cancel may be called
// from any goroutine.
type Executor struct {
	progress bool          // one Result per call, as each ends
	timeout  time.Duration // each call's deadline after it starts; 0: none
	offset   time.Duration // this clock less the parent's
	budget   int           // the most bytes of outcomes in one Result
	c        *codec.Codec
	res      wire.Result
	used     int             // the most items res held in the run: those release clears
	items    []wire.Item     // res's items while it holds Values instead (runBulk)
	vals     wire.Values     // the values of the part runBulk builds
	since    time.Time       // when the calls of the part being built began
	j        *journal.Writer // records the call running and the outcomes not yet emitted; nil: none
	// next reports, as a run ends, whether another is waiting to start;
	// nil: never. See Execute.
	next func() bool

	mu         sync.Mutex         // guards the fields below
	queued     map[uint64]bool    // runs received and not started: true once cancelled
	currentID  uint64             // the run in progress
	cancelRun  context.CancelFunc // cancels the run in progress, and its call
	cancelCall context.CancelFunc // cancels the call in progress alone (progress mode)
}

// NewExecutor returns an Executor that runs calls as setup says: Results
// that fit in frames of setup.MaxFrame bytes; with setup.Progress, each
// call's outcome emitted as soon as it ends, which is what lets the pool time
// calls one by one; with setup.TaskTimeout, each call's context ends that
// long after the call starts.
func NewExecutor(setup *wire.Setup) *Executor {
	maxFrame := setup.MaxFrame
	if maxFrame <= 0 {
		maxFrame = wire.DefaultMaxFrame
	}
	var offset time.Duration
	if setup.Clock != 0 {
		offset = time.Duration(time.Now().UnixNano() - setup.Clock)
	}
	return &Executor{
		progress: setup.Progress,
		timeout:  setup.TaskTimeout,
		offset:   offset,
		budget:   maxFrame - 64, // room for the Result envelope
		c:        codec.New(),
		queued:   map[uint64]bool{},
	}
}

// Init runs the initializer task once with arg and returns its outcome, with
// no value: only whether it failed matters.
func (x *Executor) Init(task string, arg []byte) wire.Item {
	h, _ := registry.Get(task)
	it := h.Call(context.Background(), x.c, arg)
	x.c.Reset()
	it.Value = nil
	return it
}

// Queue records that run id has arrived and will be executed, so that a
// Cancel before it starts is kept for it.
func (x *Executor) Queue(id uint64) {
	x.mu.Lock()
	x.queued[id] = false
	x.mu.Unlock()
}

// Cancel cancels run id: if it is running, the context of its call in
// progress, and with whole its calls not started too, which then do not run;
// if it has not started, the whole run. A run that is neither is done already
// and the Cancel is dropped.
func (x *Executor) Cancel(id uint64, whole bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	switch _, queued := x.queued[id]; {
	case id == x.currentID && (whole || x.cancelCall == nil):
		x.cancelRun()
	case id == x.currentID:
		x.cancelCall()
	case queued:
		x.queued[id] = true
	}
}

// Emit receives the Results of a run, in order: every part but the last has
// More set. The Result and the values in it are valid only until Emit
// returns. flush says that the part must reach the parent now rather than
// with the next one: the parent is timing calls one by one. An error from
// Emit stops the run and is Execute's error.
type Emit func(res *wire.Result, flush bool) error

// Execute runs every call of r in order and emits the outcomes, split into
// Results that fit in a frame, or one per call in progress mode. The last
// Result is emitted before Execute returns, so the parent knows which run was
// in progress if the worker dies: the first one it has no complete result
// for, unless the journal says a later one. It is flushed, but for a run
// that another follows at once (next) and whose outcomes the journal holds:
// its Result may wait to share a write with the next one's.
//
// The calls' context ends with the run's deadline (r.Deadline), or when the
// run is cancelled; then the calls not started are not run, and fail with
// the context's error.
func (x *Executor) Execute(r *wire.Run, emit Emit) error {
	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	var deadline time.Time
	if r.Deadline != 0 {
		deadline = time.Unix(0, r.Deadline).Add(x.offset)
		var cancel context.CancelFunc
		runCtx, cancel = context.WithDeadline(runCtx, deadline)
		defer cancel()
	}
	x.mu.Lock()
	if x.queued[r.ID] {
		cancelRun()
	}
	delete(x.queued, r.ID)
	x.currentID, x.cancelRun = r.ID, cancelRun
	x.mu.Unlock()
	defer func() {
		x.mu.Lock()
		x.currentID, x.cancelRun, x.cancelCall = 0, nil, nil
		x.mu.Unlock()
	}()
	defer x.c.Reset()

	res := &x.res
	res.ID, res.More, res.Items, res.Values = r.ID, false, slices.Grow(res.Items[:0], min(r.Args.Len(), partItems)), wire.Values{}
	x.since = time.Now()
	defer x.release()
	size := 0
	h, bulk := registry.Get(r.Task)
	calls := r.Args.Len()
	journaled := true
	i, pre := 0, (*wire.Item)(nil)
	if bulk != nil && !x.progress {
		var err error
		if i, pre, size, journaled, err = x.runBulk(runCtx, deadline, r, bulk, emit); err != nil {
			return err
		}
	}
	for ; i < calls; i++ {
		x.j.Start(r.ID, i)
		// The call's outcome goes straight into the next item.
		k := len(res.Items)
		res.Items = append(res.Items, wire.Item{})
		it := &res.Items[k]
		if pre != nil {
			*it, pre = *pre, nil // runBulk ran it
		} else {
			x.call(runCtx, deadline, h, r.Args.At(i), it)
		}
		n := itemSize(it)
		if n > x.budget {
			*it = wire.Item{Status: wire.StatusTooLarge, Message: fmt.Sprintf("encoded result of %d bytes is over the %d-byte frame limit", len(it.Value)+len(it.Tail), x.budget)}
			n = itemSize(it)
		}
		if size+n > x.budget {
			// The items before it fill a frame: they go as a part.
			next := *it
			res.Items = res.Items[:k]
			if err := x.emitPart(res, emit, false, &next); err != nil {
				return err
			}
			res.Items = append(res.Items, next)
			it = &res.Items[0]
			size = 0
		}
		size += n
		// An outcome the journal cannot hold goes to the parent now, with
		// those before it: a death must not lose a completed call. So does
		// a result sent from the task's own bytes (Tail), before the next
		// call, which may reuse them, runs.
		if journaled = x.j.Done(r.ID, i, it) && it.Tail == nil; !journaled && !x.progress && i < calls-1 {
			if err := x.emitPart(res, emit, true, nil); err != nil {
				return err
			}
			size = 0
		}
		if (x.progress || len(res.Items) == partItems) && i < calls-1 {
			if err := x.emitPart(res, emit, true, nil); err != nil {
				return err
			}
			size = 0
		}
	}
	// The last Result may wait for those of the run that follows at once,
	// to share a write and a wake-up of the parent with them, if the
	// journal holds its outcomes meanwhile: a death then loses none. Only
	// a quick run's: after a long one the next is likely long too, and the
	// wait would cost a wake-up of its own (see holdLimit).
	hold := !x.progress && x.j != nil && journaled && x.next != nil && time.Since(x.since) < holdLimit && x.next()
	return x.emit(res, emit, !hold)
}

// holdLimit is the longest a Result waits to share a write with the next
// run's (see Execute): if that run is not done by then, the Result goes on
// its own. It is also the longest a run may have taken for its Result to
// wait at all.
const holdLimit = 100 * time.Microsecond

// emit emits res, stamped with the time its calls took. Once a flush has
// put the outcomes in the parent's reach, the journal forgets them.
func (x *Executor) emit(res *wire.Result, emit Emit, flush bool) error {
	x.used = max(x.used, len(res.Items))
	now := time.Now()
	res.Took, x.since = now.Sub(x.since), now
	if err := emit(res, flush); err != nil {
		return err
	}
	if flush {
		x.j.Reset()
	}
	return nil
}

// A Result holds at most partItems outcomes: a long run streams its results
// in parts, which the parent decodes while the worker goes on, and the items
// buffer stays small enough to keep between runs.
const partItems = 4096

// release forgets the values of the last run, so that they do not stay
// alive: the items it used, not the whole buffer, which a long run grew
// and which every later tiny run would clear again.
func (x *Executor) release() {
	if x.res.Items == nil { // a Result of Values: its items wait aside
		x.res.Items = x.items
	}
	x.res.Values, x.items = wire.Values{}, nil
	clear(x.res.Items[:x.used])
	x.used = 0
	if cap(x.vals.Buf) > maxKeptValues {
		x.vals = wire.Values{} // a long run's buffer, which tiny ones would keep alive
	}
}

// maxKeptValues bounds the values buffer kept between runs.
const maxKeptValues = 1 << 20

// call runs one call; in progress mode under a context of its own, so that
// cancelling it spares the rest of the run. A call whose run's context has
// ended, or whose run's deadline has passed (its timer may not have fired
// yet), is not run.
func (x *Executor) call(runCtx context.Context, deadline time.Time, h registry.Handler, arg []byte, it *wire.Item) {
	err := runCtx.Err()
	if err == nil && !deadline.IsZero() && !time.Now().Before(deadline) {
		err = context.DeadlineExceeded
	}
	if err != nil {
		*it = wire.Item{Status: wire.StatusError, Message: "not run: " + err.Error(), Codes: errcode.Codes(err)}
		return
	}
	if !x.progress {
		h(runCtx, x.c, arg, it)
		return
	}
	ctx, cancel := context.WithCancel(runCtx)
	if x.timeout > 0 {
		// The deadline the task sees; the parent, which times the call,
		// cancels it when it passes, and decides what follows.
		ctx = withDeadline(ctx, time.Now().Add(x.timeout))
	}
	defer cancel()
	x.mu.Lock()
	x.cancelCall = cancel
	x.mu.Unlock()
	h(ctx, x.c, arg, it)
}

// deadlineCtx reports a deadline that it does not enforce itself.
type deadlineCtx struct {
	context.Context
	d time.Time
}

// withDeadline returns ctx reporting deadline d, or its own if earlier.
func withDeadline(ctx context.Context, d time.Time) context.Context {
	if own, ok := ctx.Deadline(); ok && own.Before(d) {
		return ctx
	}
	return deadlineCtx{ctx, d}
}

func (c deadlineCtx) Deadline() (time.Time, bool) { return c.d, true }

// emitPart emits the outcomes so far as a part (More set) and empties res.
// The arena is reset, so next, the item not yet in res, gets its own copy.
func (x *Executor) emitPart(res *wire.Result, emit Emit, flush bool, next *wire.Item) error {
	res.More = true
	if err := x.emit(res, emit, flush); err != nil {
		return err
	}
	if next != nil {
		next.Value = bytes.Clone(next.Value)
	}
	x.c.Reset()
	res.Items, res.More = res.Items[:0], false
	return nil
}

// itemSize bounds the encoded size of an item.
func itemSize(it *wire.Item) int {
	return len(it.Value) + len(it.Tail) + len(it.Message) + len(it.Stack) + 16
}
