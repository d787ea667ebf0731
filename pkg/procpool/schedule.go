package procpool

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procpool/procpool/internal/wire"
)

// This file is the scheduler: batches move from the queue to a worker
// (assign), come back with results (deliver), or are salvaged when their
// worker ends (onExit). Every function here runs under p.mu unless it says
// otherwise.

// enqueue queues batches for the workers, or fails if the pool takes no work.
func (p *Pool) enqueue(bs ...*batch) error {
	p.mu.Lock()
	if err := p.refusal(); err != nil {
		p.mu.Unlock()
		return err
	}
	for _, b := range bs {
		p.nextID++
		b.id = p.nextID
		b.state = queued
		p.queue.pushBack(b)
	}
	p.pending += len(bs)
	var idle *proc
	if small(bs) {
		idle = p.idleProcess()
	}
	p.wakeIdle()
	p.mu.Unlock()
	if idle != nil {
		idle.trySend() // its sender, woken too, finds the work gone or waits for the lock
	}
	return nil
}

// small reports whether batches fit in a pipe's buffer, so that writing
// them cannot block the caller on a slow reader.
func small(bs []*batch) bool {
	n := 0
	for _, b := range bs {
		for _, a := range b.args {
			if n += len(a) + 5; n > 32<<10 {
				return false
			}
		}
	}
	return true
}

// idleProcess returns a worker process that holds nothing, if there is one.
func (p *Pool) idleProcess() *proc {
	for w := range p.procs {
		if w.idle() && w.local == nil {
			return w
		}
	}
	return nil
}

// idle reports whether w is ready for work and holds none.
func (w *proc) idle() bool { return len(w.held) == 0 && w.isReady && !w.retiring && !w.stopping }

// wakeIdle wakes the senders of workers with room for more.
func (p *Pool) wakeIdle() {
	for w := range p.procs {
		if len(w.held) < p.prefetch(w) {
			w.signal()
		}
	}
}

// wakeAnIdle wakes a worker other than w that holds nothing, and reports
// whether there was one.
func (p *Pool) wakeAnIdle(w *proc) bool {
	for other := range p.procs {
		if other != w && other.idle() {
			other.signal()
			return true
		}
	}
	return false
}

// refusal is why the pool takes no new work, or nil if it does.
func (p *Pool) refusal() error {
	switch p.state {
	case starting, open:
		return nil
	case broken:
		return p.brokenErr()
	}
	return ErrClosed
}

// assign moves queued batches to w, up to its prefetch limit, appending them
// to runs in the order they must be sent, and hands over the cancellations
// w must send. It runs in w's sender goroutine.
func (p *Pool) assign(w *proc, runs []*batch) ([]*batch, []uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	wasIdle := len(w.held) == 0
	limit := min(p.prefetch(w), max(p.cfg.Prefetch, p.fairShare()))
	now := time.Now()
	for len(w.held) < limit && w.isReady && !w.gone && !w.stopping && !w.retiring {
		if len(w.held) > 0 && p.wakeAnIdle(w) {
			break // an idle worker takes it: spread first, prefetch second
		}
		b := p.queue.popFront()
		if b == nil {
			break
		}
		b.state, b.holder, b.sent = running, w, now
		w.held = append(w.held, b)
		w.assigned += len(b.args)
		runs = append(runs, b)
		if max := p.cfg.MaxTasksPerWorker; max > 0 && w.assigned >= max {
			w.retiring = true
			w.log.Debug("retiring worker", "reason", "MaxTasksPerWorker", "tasks", w.assigned)
		}
	}
	if wasIdle && len(runs) > 0 {
		p.callStarted(w)
	}
	cancels := w.cancels
	w.cancels = nil
	return runs, cancels
}

// deliver records a result from w, and rss, its resident memory (or -1 if
// not measured). A result that does not match what w holds is a protocol
// error, and the worker is treated as dead. It runs in w's reader goroutine.
func (p *Pool) deliver(w *proc, res *wire.Result, rss int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.gone {
		return errGone
	}
	if len(w.held) == 0 || w.held[0].id != res.ID {
		return fmt.Errorf("protocol error: result for run %d, which is not the next one the worker holds", res.ID)
	}
	b := w.held[0]
	if b.got+len(res.Items) > len(b.args) || !res.More && b.got+len(res.Items) != len(b.args) {
		return fmt.Errorf("protocol error: %d results for a run of %d calls", b.got+len(res.Items), len(b.args))
	}
	for i := range res.Items {
		o := &b.out[b.got+i]
		if o.err != nil {
			continue // timed out or cancelled: the late result does not count
		}
		if it := &res.Items[i]; it.Status == wire.StatusOK {
			o.value = it.Value
			p.counts.completed++
		} else {
			o.err = itemError(b.task, it)
			p.counts.failed++
		}
	}
	b.got += len(res.Items)
	w.done += len(res.Items)
	p.deaths = 0
	if !res.More {
		w.observe(b)
		w.held = slices.Delete(w.held, 0, 1)
		if b.state != finished {
			p.finish(b)
		}
		w.signal()
	}
	p.callStarted(w)
	if rss > p.cfg.MaxMemoryPerWorker && p.cfg.MaxMemoryPerWorker > 0 && !w.memExempt && !w.retiring {
		w.log.Info("retiring worker: resident memory over MaxMemoryPerWorker", "rss", rss, "limit", p.cfg.MaxMemoryPerWorker)
		w.retiring = true
	}
	if len(w.held) == 0 && w.retiring {
		w.stopping = true
		w.closeStdin()
	}
	return nil
}

const (
	maxPrefetch = 64
	// queueTarget is how long the runs a worker holds should keep it busy:
	// long enough to hide a round trip through the parent, short enough
	// not to hoard work another worker could take.
	queueTarget = 500 * time.Microsecond
)

// prefetch is how many runs w may hold: Config.Prefetch, or more when its
// runs are quick.
func (p *Pool) prefetch(w *proc) int {
	if w.service <= 0 {
		return p.cfg.Prefetch
	}
	return max(p.cfg.Prefetch, min(maxPrefetch, int(queueTarget/w.service)))
}

// fairShare is the most runs one worker should hold so that the pending
// runs could still be spread evenly over the ready workers. It stops a
// worker whose runs used to be quick from taking a whole Map of slow ones
// before its estimate catches up.
func (p *Pool) fairShare() int {
	ready := 0
	for w := range p.procs {
		if w.isReady && !w.retiring && !w.stopping {
			ready++
		}
	}
	return (p.pending + max(ready, 1) - 1) / max(ready, 1)
}

// observe updates w's running average of how long a run takes it: from
// when it could start b (sent, or the previous run done) to b's result.
func (w *proc) observe(b *batch) {
	now := time.Now()
	took := now.Sub(b.sent)
	if w.lastDone.After(b.sent) {
		took = now.Sub(w.lastDone)
	}
	w.lastDone = now
	if w.service == 0 {
		w.service = took
	} else {
		w.service += (took - w.service) / 8
	}
}

// markReady records that w completed its handshake and lets it take work.
func (p *Pool) markReady(w *proc) {
	p.mu.Lock()
	w.isReady = true
	w.group.failures = 0
	w.signal()
	p.mu.Unlock()
	close(w.ready)
}

// finish takes b out of the pending count and completes it.
func (p *Pool) finish(b *batch) {
	b.state = finished
	p.pending--
	if p.pending == 0 {
		p.settled.Broadcast()
	}
	p.complete(b)
}

// complete reports that every outcome of b is set: to its owner, or, for a
// piece split from a lost chunk, to the chunk it came from.
func (p *Pool) complete(b *batch) {
	if b.parent == nil {
		b.done()
		return
	}
	if b.parent.left--; b.parent.left == 0 {
		b.parent.state = finished
		p.complete(b.parent)
	}
}

// fail ends b with err for every call that has no outcome yet.
func (p *Pool) fail(b *batch, err func() error) {
	for i := b.got; i < len(b.out); i++ {
		if b.out[i].err == nil {
			b.out[i].err = err()
		}
	}
	p.finish(b)
}

// failAll fails every queued and held batch.
func (p *Pool) failAll(err func() error) {
	for b := p.queue.popFront(); b != nil; b = p.queue.popFront() {
		p.fail(b, err)
	}
	for w := range p.procs {
		p.failHeld(w, err)
	}
}

// failHeld fails the unfinished batches w holds.
func (p *Pool) failHeld(w *proc, err func() error) {
	for _, b := range w.held {
		if b.state != finished {
			p.fail(b, err)
		}
	}
	w.held = nil
}

// brokenErr is the error of a task failed because the pool is broken; every
// task gets its own value.
func (p *Pool) brokenErr() error { return fmt.Errorf("%w: %w", ErrBrokenPool, p.cause) }

// cancel fails the batches that no worker has taken yet with
// context.Canceled. They stay in the queue, finished, and popFront skips
// them. Batches already sent are asked to stop, cooperatively.
func (p *Pool) cancel(bs ...*batch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range bs {
		switch b.state {
		case queued:
			p.fail(b, func() error { return context.Canceled })
		case running:
			b.holder.requestCancel(b.id)
		}
	}
}

// cancelCall ends a call that may be running: it fails at once with
// context.Canceled and its worker is asked to stop it, and is replaced if it
// does not within Config.KillGrace. It reports whether the call ended
// cancelled.
func (p *Pool) cancelCall(b *batch) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch b.state {
	case queued:
		p.fail(b, func() error { return context.Canceled })
	case running:
		p.abandon(b, b.got, context.Canceled)
	}
	return b.state == finished && b.out[0].err == context.Canceled
}

// abandon fails call i of b, held by a worker, with err, without waiting for
// the worker: the caller learns at once. The worker is asked to stop the
// call; if it is running and does not stop in time, the worker is killed.
func (p *Pool) abandon(b *batch, i int, err error) {
	w := b.holder
	b.out[i].err = err
	if b.got == i && i == len(b.out)-1 {
		p.finish(b) // w still holds it; deliver and onExit skip it
	}
	w.requestCancel(b.id)
	if w.held[0] == b && b.got == i {
		p.escalate(w)
	}
}

// callStarted notes that w began its next call: it arms the timer of
// Config.TaskTimeout, or, if the call was already abandoned, the grace
// after which the worker is killed.
func (p *Pool) callStarted(w *proc) {
	w.callSeq++
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	if len(w.held) == 0 {
		return
	}
	b := w.held[0]
	if b.out[b.got].err != nil {
		p.escalate(w)
		return
	}
	if p.cfg.TaskTimeout > 0 {
		seq := w.callSeq
		w.timer = time.AfterFunc(p.cfg.TaskTimeout, func() { p.timedOut(w, seq) })
	}
}

// timedOut fails the call w has been running since callSeq seq.
func (p *Pool) timedOut(w *proc, seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.gone || w.callSeq != seq || len(w.held) == 0 {
		return
	}
	b := w.held[0]
	p.counts.timedOut++
	w.log.Warn("task timed out", "task", b.task, "timeout", p.cfg.TaskTimeout)
	p.abandon(b, b.got, fmt.Errorf("%w: task %q ran for more than %s", ErrTaskTimeout, b.task, p.cfg.TaskTimeout))
}

// escalate gives the call w is running KillGrace to stop after its context
// was cancelled, then sends SIGTERM, then after another KillGrace SIGKILL.
// The worker is then replaced, under either policy, since the pool killed it
// on purpose.
func (p *Pool) escalate(w *proc) {
	if w.timer != nil {
		w.timer.Stop()
	}
	seq, grace := w.callSeq, p.cfg.KillGrace
	w.timer = time.AfterFunc(grace, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if w.gone || w.callSeq != seq {
			return // the call stopped in time
		}
		w.onPurpose = true
		w.log.Warn("worker did not stop an abandoned task; sending SIGTERM", "grace", grace)
		w.signalGroup(unix.SIGTERM, "it did not stop an abandoned task in time")
		w.timer = time.AfterFunc(grace, func() { w.kill("it ignored SIGTERM") })
	})
}

// onExit applies the pool's policy to the end of w, and reports whether a
// replacement should be started. It runs in w's reader goroutine.
func (p *Pool) onExit(w *proc, e *WorkerExitError) (respawn bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.settled.Broadcast()
	delete(p.procs, w)
	w.gone = true
	if w.timer != nil {
		w.timer.Stop()
	}
	for _, b := range w.held {
		if b.state != finished {
			e.Held += len(b.args) - b.got
		}
	}
	replace := p.state == open || p.state == closing

	switch {
	case p.state == terminated || p.state == stopped && e.Held == 0:
		w.log.Debug("worker stopped", "exit", e)
		return false
	case p.state == broken:
		w.log.Debug("worker stopped", "exit", e)
		p.failHeld(w, p.brokenErr)
		return false
	case p.state == starting && !w.isReady:
		w.log.Error("worker failed to start", "error", e)
		return false // New reports it
	case w.stopping && e.Held == 0:
		if w.retiring {
			w.log.Debug("worker retired", "tasks", w.assigned)
			return replace
		}
		if e.ExitCode != 0 {
			w.log.Warn("worker exited uncleanly after Close", "error", e)
		}
		return false
	case w.onPurpose:
		w.log.Info("worker replaced after it did not stop an abandoned task", "exit", e)
		p.salvage(w, e, true)
		return replace
	}

	if w.initErr != nil {
		p.breakPool(w, e, "initializer failed in a replacement worker")
		return false
	}
	if !w.isReady && !w.group.local {
		w.group.failures++ // backs off a remote host; local deaths are the crash-loop guard's
	}
	p.counts.deaths++
	if p.cfg.OnCrash == Break {
		p.breakPool(w, e, "worker died; the pool is broken")
		return false
	}
	// A host that cannot start workers is backed off, not counted against
	// the pool, while workers elsewhere carry on.
	if w.isReady || w.group.local || !p.anyReady() {
		p.deaths++
	}
	w.log.Error("worker died; replacing it", "error", e, "held", describe(w.held), "stderr", e.Stderr)
	p.salvage(w, e, false)
	if p.deaths >= p.cfg.MaxConsecutiveDeaths {
		p.breakPool(w, e, fmt.Sprintf("crash loop: %d workers died in a row without any work completing", p.deaths))
		return false
	}
	return replace
}

// breakPool fails everything with the death of w as the cause.
// anyReady reports whether some worker has completed its handshake.
func (p *Pool) anyReady() bool {
	for w := range p.procs {
		if w.isReady {
			return true
		}
	}
	return false
}

func (p *Pool) breakPool(w *proc, e *WorkerExitError, why string) {
	p.state = broken
	p.cause = e
	w.log.Error(why, "error", e, "held", describe(w.held), "stderr", e.Stderr)
	p.failHeld(w, p.brokenErr)
	p.failAll(p.brokenErr)
	for other := range p.procs {
		other.kill(fmt.Sprintf("the pool broke when worker pid %d died", w.pid))
	}
}

// salvage deals with the batches a dead worker held under Respawn. The
// first was running: its call in progress is lost (retried while
// Config.Retries allows, item by item), or, if the pool killed the worker
// on purpose, already failed. Calls that never started go back to the queue
// without using a retry, in their order, ahead of newer work.
func (p *Pool) salvage(w *proc, e *WorkerExitError, onPurpose bool) {
	held := w.held
	w.held = nil
	for i := len(held) - 1; i >= 0; i-- {
		b := held[i]
		if b.state == finished {
			continue
		}
		if i > 0 {
			b.state, b.holder = queued, nil
			p.queue.pushFront(b)
			continue
		}
		// Which calls of the running batch ran? With progress, only the
		// first without a result; otherwise any of those without one.
		last := len(b.args)
		if onPurpose || p.cfg.TaskTimeout > 0 {
			last = b.got + 1
		}
		var retry, again []int
		for j := b.got; j < len(b.args); j++ {
			switch {
			case b.out[j].err != nil:
			case j >= last:
				again = append(again, j)
			case b.tries < p.cfg.Retries:
				retry = append(retry, j)
			default:
				b.out[j].err = fmt.Errorf("%w: %w", ErrWorkerLost, e)
				p.counts.lost++
			}
		}
		p.counts.retried += len(retry)
		p.pending--
		b.state = finished
		b.left = len(retry) + len(again)
		p.requeuePieces(b, again, b.tries)
		p.requeuePieces(b, retry, b.tries+1)
		if b.left == 0 {
			p.complete(b)
		}
	}
	p.wakeIdle()
}

// requeuePieces queues calls idx of b as batches of one call each, at the
// front of the queue. Their outcomes land in b.
func (p *Pool) requeuePieces(b *batch, idx []int, tries int) {
	for _, j := range slices.Backward(idx) {
		p.nextID++
		piece := &batch{id: p.nextID, task: b.task, args: b.args[j : j+1], out: b.out[j : j+1], tries: tries, state: queued, parent: b}
		p.queue.pushFront(piece)
		p.pending++
	}
}

// respawn starts a replacement for a worker slot. It runs without p.mu.
func (p *Pool) respawn(slot int) {
	p.mu.Lock()
	if p.state != open && p.state != closing {
		p.mu.Unlock()
		return
	}
	p.spawning++
	p.restarts[slot]++
	g := p.groupOf(slot)
	failures := g.failures
	p.mu.Unlock()

	if wait := backoff(failures); wait > 0 {
		p.log.Warn("workers keep failing to start; backing off", "on", g.launcher.String(), "failures", failures, "next_attempt_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-p.ctx.Done():
			t.Stop()
		}
	}
	p.mu.Lock()
	ok := p.state == open || p.state == closing
	p.mu.Unlock()
	var w *proc
	err := error(nil)
	if ok {
		w, err = p.startWorker(slot)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	p.spawning--
	p.settled.Broadcast()
	if !ok {
		return
	}
	if err != nil {
		p.log.Error("could not start a replacement worker", "error", err)
		if p.state == open || p.state == closing {
			p.state = broken
			p.cause = fmt.Errorf("%w: %w", ErrStartup, err)
			p.failAll(p.brokenErr)
		}
		return
	}
	if p.state != open && p.state != closing {
		w.kill("the pool stopped while it started")
	}
}

func describe(bs []*batch) string {
	parts := make([]string, 0, len(bs))
	for _, b := range bs {
		if b.state != finished {
			parts = append(parts, fmt.Sprintf("%s×%d", b.task, len(b.args)-b.got))
		}
	}
	return strings.Join(parts, ", ")
}
