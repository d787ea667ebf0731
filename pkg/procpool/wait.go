package procpool

import (
	"context"
	"fmt"
	"iter"
	"reflect"
	"slices"
	"sync"
)

// How AsCompleted waits: a Future offers only its Done channel, and Go's
// select statement takes a fixed number of cases, so a dynamic set is watched
// with reflect.Select. One reflect.Select over every pending future would cost
// O(n) per completion, O(n²) in all; a goroutine per future costs a stack per
// future. AsCompleted splits the pending futures into groups of at most
// watchGroup instead, and one goroutine per group selects over its group and
// hands each completion to the consumer through a channel. A completion then
// costs O(watchGroup), so n futures cost O(n) in all, with n/watchGroup
// goroutines. When one group suffices the consumer selects on it itself and
// starts no goroutine.
//
// The pool's own completion hook (batch.done, run under the pool's lock)
// could notify one shared channel instead, but only by reaching into the
// internals of every future's pool; the Done channel is the public contract.

// watchGroup bounds the futures one reflect.Select watches. A smaller group
// selects faster but takes more goroutines. With 32, AsCompleted over 10,000
// futures in flight keeps pace with a goroutine per future while starting at
// most 313 goroutines, not 10,000 (BenchmarkAsCompleted).
const watchGroup = 32

// AsCompleted yields each future with its error (what Get returns) as it
// completes, so that results can be used as soon as each is ready rather than
// in submission order. Futures already done are yielded first, in argument
// order; a future given twice is yielded once.
//
// ctx bounds only the waiting: if it ends before every future is yielded,
// AsCompleted yields (nil, ctx.Err()) once and stops. The futures' calls go on
// either way. Breaking out of the loop early is safe: AsCompleted stops every
// goroutine it started before the loop ends.
//
// A nil future panics.
func AsCompleted[O any](ctx context.Context, fs ...*Future[O]) iter.Seq2[*Future[O], error] {
	return func(yield func(*Future[O], error) bool) {
		var rest []*Future[O]
		for _, f := range unique(fs) {
			if isDone(f) {
				if !yield(f, doneErr(f)) {
					return
				}
			} else {
				rest = append(rest, f)
			}
		}
		if len(rest) == 0 {
			return
		}
		if len(rest) <= watchGroup {
			g := newGroup(ctx.Done(), rest)
			for len(g.fs) > 0 {
				f, ok := g.next()
				if !ok {
					yield(nil, ctx.Err())
					return
				}
				if !yield(f, doneErr(f)) {
					return
				}
			}
			return
		}

		// out holds every future, so a watcher never blocks on a send and
		// needs no select to notice stop.
		out := make(chan *Future[O], len(rest))
		stop := make(chan struct{})
		var wg sync.WaitGroup
		defer func() {
			close(stop)
			wg.Wait()
		}()
		for part := range slices.Chunk(rest, watchGroup) {
			g := newGroup(stop, part)
			wg.Go(func() {
				for len(g.fs) > 0 {
					f, ok := g.next()
					if !ok {
						return
					}
					out <- f
				}
			})
		}
		for range len(rest) {
			select {
			case f := <-out:
				if !yield(f, doneErr(f)) {
					return
				}
			case <-ctx.Done():
				yield(nil, ctx.Err())
				return
			}
		}
	}
}

// WaitCondition says when Wait returns.
type WaitCondition int

// The conditions mirror Python's FIRST_COMPLETED, FIRST_EXCEPTION and
// ALL_COMPLETED.
const (
	// FirstCompleted returns as soon as any future is done: to act on the
	// first result, or keep a bounded number of calls in flight.
	FirstCompleted WaitCondition = iota
	// FirstError returns as soon as any future fails, or when all are done:
	// to give up on a group of calls at its first failure.
	FirstError
	// AllCompleted returns when every future is done, failed or not.
	AllCompleted
)

// Wait blocks until the condition holds or ctx ends, and splits fs into the
// futures that are done and those still pending, both in the order of fs and
// without duplicates. Unlike Get it never returns ctx's error: whether ctx
// ended is for the caller to check, and pending says what is left to do. A
// failed future counts as done; for FirstError, a future fails when its Get
// would return an error, such as a *[RemoteError].
//
// A nil future, or an until that is none of the conditions, panics.
func Wait[O any](ctx context.Context, fs []*Future[O], until WaitCondition) (done, pending []*Future[O]) {
	if until != FirstCompleted && until != FirstError && until != AllCompleted {
		panic(fmt.Sprintf("procpool: Wait with unknown WaitCondition %d", int(until)))
	}
	fs = unique(fs)
	for f, err := range AsCompleted(ctx, fs...) {
		if f == nil || until == FirstCompleted || until == FirstError && err != nil {
			break
		}
	}
	for _, f := range fs {
		if isDone(f) {
			done = append(done, f)
		} else {
			pending = append(pending, f)
		}
	}
	return done, pending
}

// unique returns fs without repeats and in a slice of its own, which the
// caller may reorder.
func unique[O any](fs []*Future[O]) []*Future[O] {
	seen := make(map[*Future[O]]struct{}, len(fs))
	out := make([]*Future[O], 0, len(fs))
	for _, f := range fs {
		if f == nil {
			panic("procpool: nil *Future")
		}
		if _, ok := seen[f]; !ok {
			seen[f] = struct{}{}
			out = append(out, f)
		}
	}
	return out
}

func isDone[O any](f *Future[O]) bool {
	select {
	case <-f.Done():
		return true
	default:
		return false
	}
}

// doneErr is the error of a future that is done. Its Get must not see the
// caller's context: with both ready, select would pick either at random.
func doneErr[O any](f *Future[O]) error {
	_, err := f.Get(context.Background())
	return err
}

// group watches the Done channels of some futures with one reflect.Select.
type group[O any] struct {
	cases []reflect.SelectCase // cases[0] is stop; cases[i+1] watches fs[i]
	fs    []*Future[O]
}

func newGroup[O any](stop <-chan struct{}, fs []*Future[O]) *group[O] {
	g := &group[O]{cases: make([]reflect.SelectCase, 0, len(fs)+1), fs: slices.Clone(fs)}
	g.cases = append(g.cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(stop)})
	for _, f := range fs {
		g.cases = append(g.cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(f.Done())})
	}
	return g
}

// next removes from the group a future that has completed, waiting for one
// if none has; ok is false if stop was closed first. It looks for a completed
// future before it selects: results come in bursts, and a scan of the group
// costs far less than a reflect.Select, which allocates and locks a case per
// channel.
func (g *group[O]) next() (f *Future[O], ok bool) {
	for i, f := range g.fs {
		if isDone(f) {
			g.remove(i)
			return f, true
		}
	}
	i, _, _ := reflect.Select(g.cases)
	if i == 0 {
		return nil, false
	}
	f = g.fs[i-1]
	g.remove(i - 1)
	return f, true
}

// remove drops fs[i] and its case, moving the last in its place.
func (g *group[O]) remove(i int) {
	last := len(g.fs) - 1
	g.fs[i], g.fs[last] = g.fs[last], nil
	g.fs = g.fs[:last]
	g.cases[i+1], g.cases[last+1] = g.cases[last+1], reflect.SelectCase{}
	g.cases = g.cases[:last+1]
}
