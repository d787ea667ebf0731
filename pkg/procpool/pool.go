package procpool

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procpool/procpool/internal/wire"
	"github.com/procpool/procpool/worker"
)

// Pool runs registered tasks in worker processes. Its methods are safe for
// concurrent use.
type Pool struct {
	cfg     Config
	log     hclog.Logger
	command []string
	env     []string
	spawner *spawner
	wg      sync.WaitGroup // every goroutine the pool started

	mu      sync.Mutex
	state   poolState
	cause   *WorkerExitError // the death that broke the pool
	queue   queue            // batches waiting for a worker
	procs   map[*proc]struct{}
	pending int        // batches not yet finished
	settled *sync.Cond // signalled when pending drops to 0 or the state changes
	nextID  uint64

	shutdownOnce sync.Once
	shutdownErr  error
}

type poolState int

const (
	starting   poolState = iota // New is starting the workers
	open                        // accepting work
	closing                     // Close is waiting for the work to finish
	stopped                     // Close told the workers to exit
	broken                      // a worker died under Break
	terminated                  // Terminate killed the workers
)

// New starts a pool of worker processes and returns once every worker has
// completed its handshake. If any fails to, New stops the others and returns
// an error matching ErrStartup that says which worker failed and why.
//
// In a worker process New returns ErrInWorker.
func New(cfg Config) (*Pool, error) {
	if worker.IsWorker() {
		return nil, ErrInWorker
	}
	cfg = cfg.withDefaults()
	p := &Pool{
		cfg:   cfg,
		log:   cfg.Logger,
		procs: map[*proc]struct{}{},
	}
	p.settled = sync.NewCond(&p.mu)
	p.command = cfg.Command
	if len(p.command) == 0 {
		exe, err := selfExecutable()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrStartup, err)
		}
		p.command = []string{exe}
	}
	p.env = workerEnv(cfg)
	p.spawner = newSpawner(&p.wg)

	procs := make([]*proc, 0, cfg.Workers)
	for range cfg.Workers {
		w, err := p.startProc()
		if err != nil {
			p.Terminate()
			return nil, fmt.Errorf("%w: %w", ErrStartup, err)
		}
		p.mu.Lock()
		p.procs[w] = struct{}{}
		p.mu.Unlock()
		procs = append(procs, w)
	}
	for _, w := range procs {
		select {
		case <-w.ready:
		case <-w.finished:
			p.Terminate()
			return nil, fmt.Errorf("%w: %w", ErrStartup, w.exitErr)
		}
	}
	p.mu.Lock()
	ok := p.state == starting
	if ok {
		p.state = open
	}
	cause := p.cause
	p.mu.Unlock()
	if !ok {
		p.Terminate()
		return nil, fmt.Errorf("%w: a worker died as the pool started: %w", ErrStartup, cause)
	}
	p.log.Debug("pool started", "workers", cfg.Workers, "command", p.command)
	return p, nil
}

// selfExecutable names the running program. On Linux it is /proc/self/exe,
// which stays this very program even if the file is replaced on disk.
func selfExecutable() (string, error) {
	if runtime.GOOS == "linux" {
		return "/proc/self/exe", nil
	}
	return os.Executable()
}

// workerEnv is the environment of a worker: ours, with the role marker,
// GOMAXPROCS and the configured additions.
func workerEnv(cfg Config) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, wire.EnvRole+"=") || strings.HasPrefix(kv, "GOMAXPROCS=")
	})
	env = append(env,
		wire.EnvRole+"="+strconv.Itoa(wire.Version),
		"GOMAXPROCS="+strconv.Itoa(cfg.WorkerGOMAXPROCS))
	return append(env, cfg.Env...)
}

// Workers returns the process ids of the live workers.
func (p *Pool) Workers() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	pids := make([]int, 0, len(p.procs))
	for w := range p.procs {
		pids = append(pids, w.pid)
	}
	slices.Sort(pids)
	return pids
}

// Close stops accepting work (a later Submit fails with ErrClosed), waits for
// every submitted task to finish, then stops the workers and waits for them to
// exit. It is safe to call more than once and together with Terminate.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.state == open || p.state == starting {
		p.state = closing
	}
	for p.pending > 0 && p.state == closing {
		p.settled.Wait()
	}
	if p.state == closing {
		p.state = stopped
	}
	for w := range p.procs {
		w.stopping = true
		w.closeStdin()
	}
	p.mu.Unlock()
	return p.shutdown()
}

// Terminate kills the workers at once. Every unfinished task fails with
// ErrClosed. It is safe to call more than once and together with Close.
func (p *Pool) Terminate() error {
	p.mu.Lock()
	if p.state != terminated {
		p.state = terminated
		err := fmt.Errorf("%w: terminated", ErrClosed)
		p.failAll(func() error { return err })
		for w := range p.procs {
			w.kill("the pool was terminated")
		}
		p.settled.Broadcast()
	}
	p.mu.Unlock()
	return p.shutdown()
}

// shutdown waits for every worker to be gone and every goroutine to end.
func (p *Pool) shutdown() error {
	p.shutdownOnce.Do(func() {
		stuck := time.AfterFunc(p.cfg.StopTimeout, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			for w := range p.procs {
				p.shutdownErr = fmt.Errorf("procpool: worker pid %d did not exit within %s of Close; killed", w.pid, p.cfg.StopTimeout)
				w.kill("it did not exit after its stdin was closed")
			}
		})
		p.mu.Lock()
		for len(p.procs) > 0 {
			p.settled.Wait()
		}
		p.mu.Unlock()
		stuck.Stop()
		p.spawner.stop()
		p.wg.Wait()
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.shutdownErr
}

// enqueue queues batches for the workers, or fails if the pool takes no work.
func (p *Pool) enqueue(bs ...*batch) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.refusal(); err != nil {
		return err
	}
	for _, b := range bs {
		p.nextID++
		b.id = p.nextID
		b.state = queued
		p.queue.pushBack(b)
	}
	p.pending += len(bs)
	for w := range p.procs {
		if len(w.held) < p.cfg.Prefetch {
			w.signal()
		}
	}
	return nil
}

// refusal is why the pool takes no new work, or nil if it does.
func (p *Pool) refusal() error {
	switch p.state {
	case starting, open:
		return nil
	case broken:
		return fmt.Errorf("%w: %w", ErrBrokenPool, p.cause)
	}
	return ErrClosed
}

// assign moves queued batches to w, up to its prefetch limit, appending them
// to runs in the order they must be sent.
func (p *Pool) assign(w *proc, runs []*batch) []*batch {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(w.held) < p.cfg.Prefetch && !w.gone && !w.stopping {
		b := p.queue.popFront()
		if b == nil {
			break
		}
		b.state = running
		w.held = append(w.held, b)
		runs = append(runs, b)
	}
	return runs
}

// deliver records a result from w. A result that does not match what w
// holds is a protocol error, and the worker is treated as dead.
func (p *Pool) deliver(w *proc, res *wire.Result) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(w.held) == 0 || w.held[0].id != res.ID {
		return fmt.Errorf("protocol error: result for run %d, which is not the next one the worker holds", res.ID)
	}
	b := w.held[0]
	if b.got+len(res.Items) > len(b.args) {
		return fmt.Errorf("protocol error: %d results for a run of %d calls", b.got+len(res.Items), len(b.args))
	}
	for i := range res.Items {
		b.out[b.got+i].item = res.Items[i]
	}
	b.got += len(res.Items)
	if res.More {
		return nil
	}
	if b.got != len(b.args) {
		return fmt.Errorf("protocol error: %d results for a run of %d calls", b.got, len(b.args))
	}
	w.held = slices.Delete(w.held, 0, 1)
	w.done += len(b.args)
	p.finish(b)
	w.signal()
	return nil
}

// markReady records that w completed its handshake.
func (p *Pool) markReady(w *proc) {
	p.mu.Lock()
	w.isReady = true
	p.mu.Unlock()
	close(w.ready)
}

// onExit applies the pool's policy to the end of w.
func (p *Pool) onExit(w *proc, e *WorkerExitError) {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.settled.Broadcast()
	delete(p.procs, w)
	w.gone = true
	held := w.held
	w.held = nil
	for _, b := range held {
		e.Held += len(b.args) - b.got
	}

	switch {
	case p.state == terminated:
		w.log.Debug("worker stopped", "exit_code", e.ExitCode, "signal", e.Signal)
	case !w.isReady:
		// A start-up failure: New, which is waiting for this worker, reports it.
		w.log.Error("worker failed to start", "error", e)
	case p.state == broken:
		w.log.Debug("worker stopped", "error", e)
		p.failBatches(held, p.brokenErr)
	case w.stopping && len(held) == 0:
		if e.ExitCode != 0 {
			w.log.Warn("worker exited uncleanly after Close", "error", e)
		}
	default:
		p.state = broken
		p.cause = e
		w.log.Error("worker died; the pool is broken", "error", e, "held", describe(held), "stderr", e.Stderr)
		p.failBatches(held, p.brokenErr)
		p.failAll(p.brokenErr)
		for other := range p.procs {
			other.kill(fmt.Sprintf("the pool broke when worker pid %d died", w.pid))
		}
	}
}

// brokenErr is the error of a task failed by the death that broke the pool;
// every task gets its own value.
func (p *Pool) brokenErr() error { return fmt.Errorf("%w: %w", ErrBrokenPool, p.cause) }

// failAll fails every queued and held batch.
func (p *Pool) failAll(err func() error) {
	for b := p.queue.popFront(); b != nil; b = p.queue.popFront() {
		p.fail(b, err)
	}
	for w := range p.procs {
		p.failBatches(w.held, err)
		w.held = nil
	}
}

func (p *Pool) failBatches(bs []*batch, err func() error) {
	for _, b := range bs {
		p.fail(b, err)
	}
}

// fail ends b with err for every call that has no outcome yet.
func (p *Pool) fail(b *batch, err func() error) {
	for i := b.got; i < len(b.out); i++ {
		b.out[i].err = err()
	}
	p.finish(b)
}

// finish marks b done and wakes whoever waits for it.
func (p *Pool) finish(b *batch) {
	b.state = finished
	p.pending--
	if p.pending == 0 {
		p.settled.Broadcast()
	}
	b.done()
}

// cancel fails the batches that no worker has taken yet with
// context.Canceled. They stay in the queue, finished, and popFront skips them.
func (p *Pool) cancel(bs ...*batch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range bs {
		if b.state == queued {
			p.fail(b, func() error { return context.Canceled })
		}
	}
}

func describe(bs []*batch) string {
	parts := make([]string, 0, len(bs))
	for _, b := range bs {
		parts = append(parts, fmt.Sprintf("%s×%d", b.task, len(b.args)-b.got))
	}
	return strings.Join(parts, ", ")
}
