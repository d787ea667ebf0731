package procpool

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

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
	name    string
	fastIn  *codec.Fast[I] // nil: I goes through msgpack's reflection
	fastOut *codec.Fast[O]
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
	h := registry.Func(fn)
	registry.Register(name, h, registry.BulkFunc(fn, h), registry.Signature[I, O](name), 1)
	return &Task[I, O]{name: name, fastIn: codec.FastFor[I](), fastOut: codec.FastFor[O]()}
}

// Name returns the name the task was registered under.
func (t *Task[I, O]) Name() string { return t.name }

// encoder returns an encoder of the task's arguments that fit in frames of
// maxFrame bytes (0: no limit).
func (t *Task[I, O]) encoder(maxFrame int, c *codec.Codec) argEncoder[I] {
	return argEncoder[I]{task: t.name, maxFrame: maxFrame, fast: t.fastIn, c: c}
}

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
	e := t.encoder(0, c)
	if err := e.add(&in); err != nil {
		return Call{task: t.name, err: err}
	}
	return Call{task: t.name, arg: e.take().At(0)}
}

// Submit starts one call of the task with argument in and returns its future.
// It does not wait for the call to run. An argument that cannot be encoded,
// or a pool that takes no more work, fails the future at once.
func (t *Task[I, O]) Submit(p *Pool, in I) *Future[O] {
	f := &Future[O]{pool: p, task: t.name, fast: t.fastOut, ch: make(chan struct{})}
	if err := p.usable(); err != nil {
		f.pool = nil
		f.b = failedBatch(t.name, err)
		f.b.state = finished
		close(f.ch)
		return f
	}
	c := codec.Get()
	e := t.encoder(p.cfg.MaxFrameSize, c)
	err := e.add(&in)
	args := e.take()
	codec.Put(c)
	if err != nil {
		f.b = failedBatch(t.name, err)
		close(f.ch)
		return f
	}
	f.b = newBatch(t.name, args, func(*batch) { close(f.ch) })
	// Its caller may read the result itself (readrole.go), unless the pool
	// times calls out: a result left unread would look late.
	f.b.direct = p.cfg.TaskTimeout == 0
	if err := p.enqueue(f.b); err != nil {
		f.b.failCall(0, err, false)
		f.b.state = finished
		close(f.ch)
	}
	return f
}

// Future is the pending result of one call.
type Future[O any] struct {
	pool *Pool
	task string
	fast *codec.Fast[O]
	b    *batch
	ch   chan struct{}

	unleased atomic.Bool // the lease is given up: Done, which AsCompleted calls often, takes no lock again

	once sync.Once
	val  O
	err  error
}

// Done returns a channel that is closed when the call has ended, with a
// result or an error.
func (f *Future[O]) Done() <-chan struct{} {
	f.unlease()
	return f.ch
}

// Get waits for the call to end and returns its result. If ctx ends first it
// returns ctx.Err(); the call itself goes on. The caller of a Submit that a
// worker took at once reads the result from the worker itself, which spares
// the round trip a thread wake-up; where the result is expected within 50 µs
// and a CPU is free, it polls for it that long before it sleeps.
func (f *Future[O]) Get(ctx context.Context) (O, error) {
	if c := f.b.lessee; c != nil {
		c.readFor(ctx, f.b)
	}
	select {
	case <-f.ch:
	case <-ctx.Done():
		var zero O
		return zero, ctx.Err()
	}
	f.once.Do(func() {
		c := codec.Get()
		cur := f.b.outs.cursor()
		value, fl := cur.at(0)
		if f.err = fl.err; f.err == nil {
			f.err = decodeValue(c, f.fast, f.task, value, &f.val)
		}
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
	f.unlease()
	return f.pool.cancelCall(f.b)
}

// unlease gives up the caller's lease on reading the result (readrole.go):
// a caller that waits any other way than in Get leaves it to the conn.
func (f *Future[O]) unlease() {
	if c := f.b.lessee; c != nil && !f.unleased.Load() {
		c.unlease(f.b)
		f.unleased.Store(true)
	}
}

// decodeValue decodes a call's encoded result into *v.
func decodeValue[O any](c *codec.Codec, fast *codec.Fast[O], task string, value []byte, v *O) error {
	if bs, ok := any(v).(*[]byte); ok && len(value) >= codec.MinShared {
		if b, ok := codec.Bin(value); ok {
			*bs = b // the frame it came in is the caller's alone, never reused
			return nil
		}
	}
	if fast != nil && fast.Decode(value, v) {
		return nil
	}
	if err := c.Decode(value, v); err != nil {
		return &CodecError{Task: task, Stage: DecodeResult, Message: fmt.Sprintf("decode result as %T: %v", *v, err), Err: err}
	}
	return nil
}
