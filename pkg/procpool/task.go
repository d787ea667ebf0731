package procpool

import (
	"context"
	"fmt"
	"sync"

	"github.com/procpool/procpool/internal/codec"
	"github.com/procpool/procpool/internal/registry"
	"github.com/procpool/procpool/worker"
)

// Main is the role check. It must be the first statement of main (and of
// TestMain). In a worker process it serves tasks and exits, never returning;
// in any other process it returns at once.
//
// It is Go's form of Python's `if __name__ == "__main__":` guard: a worker
// re-executes this program, and must not run the parent's code.
func Main() {
	if worker.IsWorker() {
		worker.Serve()
	}
}

// Task is a function registered to run in worker processes. I is its
// argument type and O its result type; both travel msgpack-encoded.
type Task[I, O any] struct {
	name string
}

// Register registers fn under name and returns the Task that runs it. Call it
// at package level (in a var declaration or init), so that the parent and its
// workers, which are the same program, register the same tasks. A second
// registration of a name panics.
//
// fn's context ends when the call is cancelled ([Future.Cancel], the end of
// the context given to [Task.Map] or [Task.Imap]) or timed out
// ([Config.TaskTimeout]), and carries the earlier of those deadlines, so a
// task can budget its work. An error fn returns reaches the caller as a
// [RemoteError] that matches the well-known errors fn's error matched (see
// [RegisterError]).
//
// Register also panics if I or O holds, in a field msgpack encodes, what can
// never cross between processes: a channel, a func, an unsafe.Pointer, a
// uintptr or a complex number, or a struct that embeds itself, over which
// msgpack would recurse forever. The message names the field; a field tagged
// `msgpack:"-"` is left out, and a type with msgpack methods of its own
// ([msgpack.CustomEncoder] and [msgpack.CustomDecoder], say) is taken on
// trust. What else crosses, and how, is in the README's "What crosses between
// processes".
//
// [msgpack.CustomEncoder]: https://pkg.go.dev/github.com/vmihailenco/msgpack/v5#CustomEncoder
// [msgpack.CustomDecoder]: https://pkg.go.dev/github.com/vmihailenco/msgpack/v5#CustomDecoder
func Register[I, O any](name string, fn func(context.Context, I) (O, error)) *Task[I, O] {
	if err := registry.CheckTypes[I, O](); err != nil {
		panic(fmt.Sprintf("procpool: task %q registered at %s cannot run in a worker: %v", name, registry.Where(1), err))
	}
	registry.Register(name, registry.Func(fn), registry.Signature[I, O](name), 1)
	return &Task[I, O]{name: name}
}

// Name returns the name the task was registered under.
func (t *Task[I, O]) Name() string { return t.name }

// Call is a task bound to an argument, for [Config.Initializer].
type Call struct {
	task string
	arg  []byte
	err  error
}

// Bind returns a Call of the task with argument in.
func (t *Task[I, O]) Bind(in I) Call {
	c := codec.Get()
	defer codec.Put(c)
	e := argEncoder{task: t.name, c: c}
	if err := e.add(in); err != nil {
		return Call{task: t.name, err: err}
	}
	return Call{task: t.name, arg: e.take(1)[0]}
}

// Submit starts one call of the task with argument in and returns its future.
// It does not wait for the call to run. An argument that cannot be encoded,
// or a pool that takes no more work, fails the future at once.
func (t *Task[I, O]) Submit(p *Pool, in I) *Future[O] {
	f := &Future[O]{pool: p, task: t.name, ch: make(chan struct{})}
	if err := p.usable(); err != nil {
		f.pool = nil
		f.b = newBatch(t.name, [][]byte{nil}, nil)
		f.b.out[0].err = err
		f.b.state = finished
		close(f.ch)
		return f
	}
	c := codec.Get()
	e := argEncoder{task: t.name, maxFrame: p.cfg.MaxFrameSize, c: c}
	err := e.add(in)
	args := [][]byte{nil}
	if err == nil {
		args = e.take(1)
	}
	codec.Put(c)
	f.b = newBatch(t.name, args, func() { close(f.ch) })
	if err == nil {
		err = p.enqueue(f.b)
	}
	if err != nil {
		f.b.out[0].err = err
		f.b.state = finished
		close(f.ch)
	}
	return f
}

// Future is the pending result of one call.
type Future[O any] struct {
	pool *Pool
	task string
	b    *batch
	ch   chan struct{}

	once sync.Once
	val  O
	err  error
}

// Done returns a channel that is closed when the call has ended, with a
// result or an error.
func (f *Future[O]) Done() <-chan struct{} { return f.ch }

// Get waits for the call to end and returns its result. If ctx ends first it
// returns ctx.Err(); the call itself goes on.
func (f *Future[O]) Get(ctx context.Context) (O, error) {
	select {
	case <-f.ch:
	case <-ctx.Done():
		var zero O
		return zero, ctx.Err()
	}
	f.once.Do(func() {
		c := codec.Get()
		f.err = decodeOutcome(c, f.task, &f.b.out[0], &f.val)
		codec.Put(c)
	})
	return f.val, f.err
}

// Cancel cancels the call: the future fails at once with context.Canceled.
// A call no worker has taken is dropped. A running call has its context
// cancelled in the worker; if it has not returned [Config.KillGrace] later, the
// worker is killed and replaced. Cancel reports whether the future ended
// cancelled: false if it had already ended otherwise.
func (f *Future[O]) Cancel() bool {
	if f.pool == nil {
		return false
	}
	return f.pool.cancelCall(f.b)
}

// decodeOutcome turns one call's outcome into a result or an error.
func decodeOutcome[O any](c *codec.Codec, task string, o *outcome, v *O) error {
	if o.err != nil {
		return o.err
	}
	if err := c.Decode(o.value, v); err != nil {
		return &CodecError{Task: task, Stage: DecodeResult, Message: fmt.Sprintf("decode result as %T: %v", *v, err), Err: err}
	}
	return nil
}

// MapOption configures one call of [Task.Map], [Task.Imap] or
// [Task.ImapUnordered]. Each option says what it does for each of them; a
// call that an option does not apply to ignores it.
//
//	option     Map              Imap, ImapUnordered
//	Chunksize  calls per chunk  calls per chunk, fixed rather than adapted
//	Window     ignored          chunks in flight at once
type MapOption func(*mapOptions)

type mapOptions struct {
	chunksize int
	window    int
}

// Chunksize sets the number of calls sent to a worker at once. For Map the
// default is len(in) / (4 × workers), rounded up, like
// multiprocessing.Pool.map. For Imap and ImapUnordered it fixes the size of
// every chunk, which otherwise adapts to how long chunks take. Either way a
// chunk is also cut short when its encoded arguments reach
// [Config.MaxChunkBytes].
func Chunksize(n int) MapOption { return func(o *mapOptions) { o.chunksize = n } }

// Map calls the task once per element of in, in chunks spread over the
// workers, and returns the results in input order. If any call fails, Map
// returns the error of the first failed element in input order, once every
// chunk has ended: an *[ElementError] that says which element it was. If a
// worker died, it is the element whose call was running, which caused the
// death, rather than one that failed with it. If
// ctx ends first, Map returns ctx.Err() at once, and no call of it starts
// afterwards: the chunks queued are dropped, the workers holding the others
// skip their calls not started and have the context of the one they run
// cancelled; a worker whose call has not returned [Config.KillGrace] later
// is killed and replaced, as for [Future.Cancel]. The tasks' contexts carry
// ctx's deadline, if it has one.
//
// Map encodes and queues chunk by chunk, so the workers start on the first
// while the rest are encoded, and decodes each chunk's results as it comes
// back, while the workers run the others.
func (t *Task[I, O]) Map(ctx context.Context, p *Pool, in []I, opts ...MapOption) ([]O, error) {
	var o mapOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := p.usable(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	size := o.chunksize
	if size <= 0 {
		size = max(1, (len(in)+4*p.cfg.Workers-1)/(4*p.cfg.Workers))
	}
	var back returns
	back.signal = make(chan struct{}, 1)
	c := codec.New()
	e := argEncoder{task: t.name, maxFrame: p.cfg.MaxFrameSize, c: c}
	var batches, group []*batch
	queue := func(start int, args [][]byte) error {
		b := newBatch(t.name, args, nil)
		b.first = start
		b.elem = func(i int) int { return start + i }
		b.deadline, _ = ctx.Deadline()
		b.done = func() { back.add(b) }
		batches = append(batches, b)
		// Queue in growing groups: the first chunk at once, later ones
		// many per lock.
		if group = append(group, b); len(group) >= min(max(1, len(batches)-len(group)), 256) || start+len(args) == len(in) {
			err := p.enqueue(group...)
			group = group[:0]
			return err
		}
		return nil
	}
	start, bytes := 0, 0
	for i := range in {
		if err := e.add(in[i]); err != nil {
			p.cancel(batches...)
			return nil, &ElementError{Index: i, Err: err}
		}
		n := e.size(e.count()-1) + 5
		if i > start && (i-start == size || bytes+n > p.cfg.MaxChunkBytes) {
			if err := queue(start, e.take(i-start)); err != nil {
				p.cancel(batches...)
				return nil, err
			}
			start, bytes = i, 0
		}
		bytes += n
	}
	if start < len(in) {
		if err := queue(start, e.take(e.count())); err != nil {
			p.cancel(batches...)
			return nil, err
		}
	}

	out := make([]O, len(in))
	// The first failed element, unless another's call killed its worker:
	// that one says what went wrong.
	firstErr, firstAt, firstCulprit := error(nil), len(in), false
	for left := len(batches); left > 0; {
		select {
		case <-back.signal:
		case <-ctx.Done():
			p.cancel(batches...)
			return nil, ctx.Err()
		}
		for _, b := range back.take() {
			left--
			for j := range b.out {
				at := b.first + j
				culprit := b.out[j].culprit
				if err := decodeOutcome(c, t.name, &b.out[j], &out[at]); err != nil && (culprit && !firstCulprit || culprit == firstCulprit && at < firstAt) {
					firstErr, firstAt, firstCulprit = err, at, culprit
				}
			}
		}
	}
	if firstErr != nil {
		return nil, &ElementError{Index: firstAt, Err: firstErr}
	}
	return out, nil
}

// returns collects the batches of a Map as they finish. add runs under the
// pool's lock, so it must not block: it appends and signals.
type returns struct {
	mu     sync.Mutex
	done   []*batch
	signal chan struct{}
}

func (r *returns) add(b *batch) {
	r.mu.Lock()
	r.done = append(r.done, b)
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

func (r *returns) take() []*batch {
	r.mu.Lock()
	defer r.mu.Unlock()
	done := r.done
	r.done = nil
	return done
}
