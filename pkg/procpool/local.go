package procpool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/procpool/procpool/internal/codec"
	"github.com/procpool/procpool/internal/registry"
	"github.com/procpool/procpool/internal/wire"
)

// Backend says where a pool runs its tasks.
type Backend int

const (
	// Processes runs tasks in worker processes: isolation at the price of
	// a pipe round trip.
	Processes Backend = iota
	// Goroutines runs the same tasks in goroutines of this process, with
	// the same API and errors. Arguments and results still pass through
	// the codec, so a task sees a copy, as it would in a worker, and a
	// value that could not cross a pipe fails here too. A panic in the task
	// is a *RemoteError; a crash (a panic in a goroutine the task started,
	// os.Exit, a fatal error) ends the whole program. A goroutine cannot be
	// killed: a call that times out or is cancelled fails on time, and a
	// task that ignores its context is left running, detached from the
	// pool, while a fresh goroutine takes its place.
	Goroutines
)

func (b Backend) String() string {
	switch b {
	case Processes:
		return "processes"
	case Goroutines:
		return "goroutines"
	}
	return fmt.Sprintf("Backend(%d)", int(b))
}

// local is the state of a goroutine worker, the Goroutines backend's
// counterpart of a process.
type local struct {
	stop     chan struct{} // closed to make it exit when idle
	stopOnce sync.Once
	release  sync.Once // its share of the pool's WaitGroup
	exitOnce sync.Once

	mu        sync.Mutex
	abandoned bool
	runID     uint64
	cancel    context.CancelFunc // the call or run in progress
	cancelled map[uint64]bool    // runs cancelled before they started
}

// startWorker starts a worker of the configured backend; it is one of the
// pool's workers before it can end.
func (p *Pool) startWorker(slot int) (*proc, error) {
	if p.cfg.Backend == Goroutines {
		return p.startLocal(slot), nil
	}
	return p.startProc(slot)
}

func (p *Pool) startLocal(slot int) *proc {
	w := &proc{
		pool:     p,
		group:    p.groupOf(slot),
		slot:     slot,
		pid:      os.Getpid(),
		wake:     make(chan struct{}, 1),
		ready:    make(chan struct{}),
		finished: make(chan struct{}),
		local:    &local{stop: make(chan struct{}), cancelled: map[uint64]bool{}},
	}
	w.log = p.log.Named("worker").With("goroutine", slot)
	p.adopt(w)
	p.wg.Add(1)
	go w.serveLocal()
	return w
}

// serveLocal is the goroutine worker's life: the initializer, then runs as
// the scheduler assigns them, until it is stopped or abandoned.
func (w *proc) serveLocal() {
	defer w.local.release.Do(w.pool.wg.Done)
	p, c := w.pool, codec.New()
	if init := p.cfg.Initializer; init.task != "" {
		it := registry.Get(init.task)(context.Background(), c, init.arg)
		if err := itemError(init.task, &it); err != nil {
			w.initErr = fmt.Errorf("%w: %w", ErrInitFailed, err)
			w.localExit(w.initErr.Error())
			return
		}
	}
	p.markReady(w)
	var runs []*batch
	for {
		select {
		case <-w.wake:
		case <-w.local.stop:
			w.localExit("")
			return
		}
		for {
			if runs, _ = p.assign(w, runs[:0]); len(runs) == 0 {
				break
			}
			for _, b := range runs {
				if !w.runLocal(c, b) {
					return // abandoned: the pool has moved on
				}
			}
		}
	}
}

// runLocal runs one batch and delivers its results, per call when the pool
// times calls. It reports false if the worker was abandoned meanwhile.
func (w *proc) runLocal(c *codec.Codec, b *batch) bool {
	l, p := w.local, w.pool
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l.mu.Lock()
	if l.cancelled[b.id] {
		cancel()
		delete(l.cancelled, b.id)
	}
	l.runID, l.cancel = b.id, cancel
	l.mu.Unlock()

	progress := p.cfg.TaskTimeout > 0
	h := registry.Get(b.task)
	items := make([]wire.Item, len(b.args))
	spans := make([][2]int, len(b.args))
	c.Reset()
	for i, arg := range b.args {
		callCtx, cancelCall := ctx, context.CancelFunc(nil)
		if progress {
			callCtx, cancelCall = context.WithCancel(ctx)
			l.mu.Lock()
			l.cancel = cancelCall
			l.mu.Unlock()
		}
		start := c.Len()
		items[i] = h(callCtx, c, arg)
		spans[i] = [2]int{start, c.Len()}
		if cancelCall != nil {
			cancelCall()
		}
		if progress {
			items[i].Value = bytes.Clone(items[i].Value)
			if p.deliver(w, &wire.Result{ID: b.id, More: i < len(b.args)-1, Items: items[i : i+1]}, -1) != nil {
				return false
			}
		}
	}
	if progress {
		return true
	}
	// One copy of the arena for the whole run: the caller owns the values.
	arena := bytes.Clone(c.Bytes())
	for i := range items {
		if items[i].Status == wire.StatusOK {
			items[i].Value = arena[spans[i][0]:spans[i][1]:spans[i][1]]
		}
	}
	return p.deliver(w, &wire.Result{ID: b.id, Items: items}, -1) == nil
}

// cancelRun cancels run id: the call in progress if it is running, or the
// run when it starts.
func (l *local) cancelRun(id uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.runID == id && l.cancel != nil {
		l.cancel()
	} else {
		l.cancelled[id] = true
	}
}

// abandon detaches a goroutine worker that will not stop: the pool deals
// with its end now and no longer waits for it. It may be called under p.mu.
func (w *proc) abandon(why string) {
	w.local.mu.Lock()
	first := !w.local.abandoned
	w.local.abandoned = true
	w.local.mu.Unlock()
	if first {
		w.closeStdin() // an idle loop exits; a busy one when its task returns
		w.pool.wg.Add(1)
		go func() {
			defer w.pool.wg.Done()
			w.localExit(why)
		}()
	}
}

// localExit reports the end of a goroutine worker to the pool, once.
func (w *proc) localExit(why string) {
	w.local.exitOnce.Do(func() {
		e := &WorkerExitError{PID: w.pid, Reason: why, Err: w.initErr}
		if why != "" && w.initErr == nil {
			e.ExitCode = -1
			e.Reason = "goroutine left running: " + why
		}
		w.report(e)
		w.local.release.Do(w.pool.wg.Done)
	})
}

// errGone is deliver's answer to a worker the pool has already dealt with.
var errGone = errors.New("worker gone")
