package procpool

import (
	"context"
	"iter"
	"time"

	"github.com/procpool/procpool/internal/codec"
)

// Window sets how many chunks Imap and ImapUnordered keep in flight: queued
// or held by a worker, or finished and not yet yielded. The default is two
// per worker. It bounds the memory of an endless input, and how far ahead of
// the loop's body the input is read.
//
// Map ignores Window: its input is in memory already, and it queues every
// chunk at once, so that no worker waits for the caller.
func Window(n int) MapOption { return func(o *mapOptions) { o.window = n } }

// Imap calls the task once per element of in, reading in lazily, and yields
// each result with its error in input order. At most a window of chunks is
// in flight (see Window), so an endless input runs in constant memory. A
// failed call yields its error and iteration goes on. Breaking out of the
// loop, or the end of ctx, cancels the chunks still in flight as the end of
// Map's context does (see [Task.Map]). The error of an element is an
// *[ElementError], which holds its index in the input. If ctx ends, Imap
// yields ctx.Err() once and stops. The tasks' contexts carry ctx's deadline,
// if it has one. If the pool stops taking work (it broke, or was closed),
// Imap yields what is in flight, then that error for the elements it had
// read, and stops.
//
// Without Chunksize, the chunk size adapts: it starts at 1 and doubles while
// chunks finish within a few milliseconds, halving when they take long, so
// that cheap calls are batched and costly ones spread.
func (t *Task[I, O]) Imap(ctx context.Context, p *Pool, in iter.Seq[I], opts ...MapOption) iter.Seq2[O, error] {
	return t.imap(ctx, p, in, true, opts)
}

// ImapUnordered is Imap yielding results in the order they complete. An
// element's error, an *[ElementError], says which input it came from.
func (t *Task[I, O]) ImapUnordered(ctx context.Context, p *Pool, in iter.Seq[I], opts ...MapOption) iter.Seq2[O, error] {
	return t.imap(ctx, p, in, false, opts)
}

// flight is one chunk of an Imap in flight.
type flight struct {
	b    *batch  // the calls sent; nil if no element could be encoded
	errs []error // per element: its encoding error, or nil for a call in b
	done chan struct{}
	sent time.Time

	first int // the index in the input of its first element
}

func (t *Task[I, O]) imap(ctx context.Context, p *Pool, in iter.Seq[I], ordered bool, opts []MapOption) iter.Seq2[O, error] {
	var o mapOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := p.usable(); err != nil {
		return func(yield func(O, error) bool) {
			var zero O
			yield(zero, err)
		}
	}
	window := o.window
	if window <= 0 {
		window = 2 * p.cfg.Workers
	}
	return func(yield func(O, error) bool) {
		next, stop := iter.Pull(in)
		defer stop()
		size := chunkSizer{fixed: o.chunksize, size: max(1, o.chunksize)}
		completed := make(chan *flight, window) // for ImapUnordered
		var inflight []*flight
		defer func() {
			for _, f := range inflight {
				if f.b != nil {
					p.cancel(f.b)
				}
			}
		}()
		exhausted, read := false, 0
		for {
			for len(inflight) < window && !exhausted {
				f, refused := t.launch(ctx, p, next, read, size.size, completed, ordered)
				if f == nil || refused {
					// The input is done, or the pool takes no more work:
					// what is in flight is still yielded, then iteration ends.
					exhausted = true
				}
				if f != nil {
					inflight = append(inflight, f)
					read += len(f.errs)
				}
			}
			if len(inflight) == 0 {
				return
			}
			f := inflight[0]
			if ordered {
				select {
				case <-f.done:
				case <-ctx.Done():
				}
			} else {
				select {
				case f = <-completed:
				case <-ctx.Done():
				}
			}
			if err := ended(ctx); err != nil {
				var zero O
				yield(zero, err)
				return
			}
			for i, g := range inflight {
				if g == f {
					inflight = append(inflight[:i], inflight[i+1:]...)
					break
				}
			}
			size.observe(time.Since(f.sent))
			if !t.yieldFlight(f, yield) {
				return
			}
		}
	}
}

// launch reads up to n elements, from element first of the input on,
// encodes them and queues them as one chunk. It returns nil when the input
// is exhausted. If the pool refuses the chunk (it is broken or closed),
// every element read fails with the refusal.
func (t *Task[I, O]) launch(ctx context.Context, p *Pool, next func() (I, bool), first, n int, completed chan *flight, ordered bool) (f *flight, refused bool) {
	c := codec.Get()
	defer codec.Put(c)
	e := t.encoder(p.cfg.MaxFrameSize, c)
	var errs []error
	for range n {
		v, ok := next()
		if !ok {
			break
		}
		errs = append(errs, e.add(&v))
		if e.size() >= p.cfg.MaxChunkBytes {
			break
		}
	}
	if len(errs) == 0 {
		return nil, false
	}
	f = &flight{first: first, errs: errs, done: make(chan struct{}), sent: time.Now()}
	finish := func() {
		close(f.done)
		if !ordered {
			completed <- f // never blocks: the channel holds a window
		}
	}
	if e.count() == 0 {
		finish()
		return f, false
	}
	b := newBatch(t.name, e.take(), func(*batch) { finish() })
	b.deadline = deadlineOf(ctx)
	b.elem = func(_ *batch, k int) int { return f.elem(k) }
	if err := p.enqueue(b); err != nil {
		for i := range f.errs {
			if f.errs[i] == nil {
				f.errs[i] = err
			}
		}
		finish()
		return f, true
	}
	f.b = b
	return f, false
}

// elem is the index in the Imap's input of call k of f's batch, which holds
// the elements that were encoded.
func (f *flight) elem(k int) int {
	for i, err := range f.errs {
		if err == nil {
			if k == 0 {
				return f.first + i
			}
			k--
		}
	}
	return -1
}

// yieldFlight yields the outcomes of a finished chunk in input order.
func (t *Task[I, O]) yieldFlight(f *flight, yield func(O, error) bool) bool {
	c := codec.Get()
	defer codec.Put(c)
	var cur cursor
	if f.b != nil {
		cur = f.b.outs.cursor()
	}
	k := 0
	for i, err := range f.errs {
		var v O
		if err == nil {
			value, fl := cur.at(k)
			if err = fl.err; err == nil {
				err = decodeValue(c, t.fastOut, t.name, value, &v)
			}
			k++
		}
		if err != nil {
			err = &ElementError{Index: f.first + i, Err: err}
		}
		if !yield(v, err) {
			return false
		}
	}
	return true
}

// chunkSizer adapts the chunk size of an Imap to how long chunks take:
// long enough to amortise a round trip, short enough to spread the work.
type chunkSizer struct {
	fixed int // a size set with Chunksize; no adapting
	size  int
}

const (
	chunkFast    = 5 * time.Millisecond  // a chunk quicker than this doubles
	chunkSlow    = 50 * time.Millisecond // a chunk slower than this halves
	maxChunkSize = 1 << 14
)

func (s *chunkSizer) observe(took time.Duration) {
	switch {
	case s.fixed > 0:
	case took < chunkFast:
		s.size = min(2*s.size, maxChunkSize)
	case took > chunkSlow:
		s.size = max(1, s.size/2)
	}
}
