package procpool

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/procpool/procpool/internal/journal"
)

// This file is the death policy: what follows the end of a worker (ended),
// what becomes of the calls it held (salvage), breaking the pool
// (breakPool), and starting a replacement (respawn). The memory limit, which
// kills or retires a worker, is in memory.go. Every function here runs under
// p.mu unless it says otherwise.
//
// The records of a death here leave out the worker's stderr: its forwarder
// (internal/stderrlog) has logged it already, a crash report as one record,
// and it alone sees every worker's stderr however the worker ends. The
// death's error still ends with the crash headline, which ties the two.

// ended deals with the end of m, which its conn reports, and starts its
// replacement if the pool wants one. It runs in m's conn's goroutine,
// without p.mu.
func (p *Pool) ended(m *member, e *WorkerExitError, cause endCause, last *journal.Record) {
	if p.decide(m, e, cause, last) {
		p.respawn(m.slot)
	}
	close(m.endedCh)
}

// decide applies the pool's policy to the end of m, whose journal is last
// (or nil), and reports whether a replacement should be started.
func (p *Pool) decide(m *member, e *WorkerExitError, cause endCause, last *journal.Record) (respawn bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.settled.Broadcast()
	defer func() {
		// From here to the replacement's start, Stats shows the slot as
		// respawning, with the worker that ended counted.
		if respawn {
			p.vacant[m.slot] = true
			p.restarts[m.slot]++
		}
	}()
	p.members = slices.DeleteFunc(p.members, func(o *member) bool { return o == m })
	if m.leasing {
		m.leasing = false
		p.leasing = slices.DeleteFunc(p.leasing, func(o *member) bool { return o == m })
	}
	m.gone = true
	p.withdraw(m)
	m.exitErr = e
	if m.timer != nil {
		m.timer.Stop()
	}
	m.culprit = p.recoverLast(m, last)
	if c := m.culprit; c.b != nil {
		e.Running, e.Element = c.b.task, c.elem()
	}
	for _, b := range m.held {
		if b.state != finished {
			e.Held += b.calls() - b.got
		}
	}
	replace := p.state == open || p.state == closing

	switch {
	case p.state == terminated || p.state == stopped && e.Held == 0:
		m.log.Debug("worker stopped", "exit", e)
		return false
	case p.state == broken:
		m.log.Debug("worker stopped", "exit", e)
		p.failHeld(m, p.brokenErr)
		return false
	case p.state == starting && !m.isReady:
		m.log.Error("worker failed to start", "error", e)
		return false // New reports it
	case m.stopping && e.Held == 0:
		if m.retiring {
			m.log.Debug("worker retired", "tasks", m.assigned)
			return replace
		}
		if e.ExitCode != 0 {
			m.log.Warn("worker exited uncleanly after Close", "error", e)
		}
		return false
	case m.memKilled > 0:
		// The pool's own kill, not a crash: it neither breaks the pool
		// nor counts towards the crash-loop guard.
		m.log.Info("worker replaced after it was killed for its memory", "exit", e)
		p.salvage(m, e, chargeMemory)
		return replace
	case m.onPurpose:
		m.log.Info("worker replaced after it did not stop an abandoned task", "exit", e)
		p.salvage(m, e, chargeNone)
		return replace
	}

	if cause == endInitFailed {
		p.breakPool(e, "initializer failed in a replacement worker", m)
		return false
	}
	if !m.isReady && !m.group.local {
		m.group.failures++ // backs off a remote host; local deaths are the crash-loop guard's
	}
	p.counts.deaths++
	if p.cfg.OnCrash == Break {
		p.breakPool(e, "worker died; the pool is broken", m)
		return false
	}
	// A host that cannot start workers is backed off, not counted against
	// the pool, while workers elsewhere carry on.
	if m.isReady || m.group.local || !p.anyReady() {
		p.deaths++
	}
	m.log.Error("worker died; replacing it", "error", e, "held", describe(m.held))
	p.salvage(m, e, chargeLost)
	if p.deaths >= p.cfg.MaxConsecutiveDeaths {
		p.breakPool(e, fmt.Sprintf("crash loop: %d workers died in a row without any work completing", p.deaths), m)
		return false
	}
	return replace
}

// anyReady reports whether some worker has completed its handshake.
func (p *Pool) anyReady() bool {
	return slices.ContainsFunc(p.members, func(m *member) bool { return m.isReady })
}

// breakPool fails everything with cause and kills every worker; the pool
// takes no more work. Every way the pool breaks comes here: dead is the
// worker whose end broke it, or nil.
func (p *Pool) breakPool(cause error, why string, dead *member) {
	p.state = broken
	p.cause = cause
	kill := "the pool broke: " + why
	if dead != nil {
		dead.log.Error(why, "error", cause, "held", describe(dead.held))
		if c := dead.culprit; c.b != nil {
			c.b.failCall(c.i, p.brokenErr(), true)
		}
		p.failHeld(dead, p.brokenErr)
		kill = fmt.Sprintf("the pool broke when worker pid %d died", dead.conn.pid())
	} else {
		p.log.Error(why, "error", cause)
	}
	p.failAll(p.brokenErr)
	for _, m := range p.members {
		m.conn.kill(kill)
	}
}

// brokenErr is the error of a task failed because the pool is broken; every
// task gets its own value.
func (p *Pool) brokenErr() error { return fmt.Errorf("%w: %w", ErrBrokenPool, p.cause) }

// charge is what becomes of the call a dead worker was running.
type charge int

const (
	// chargeLost: the worker crashed. The call runs again while
	// Config.Retries allows, and then fails with ErrWorkerLost.
	chargeLost charge = iota
	// chargeNone: the pool killed the worker over a call that had failed
	// already (timed out, cancelled).
	chargeNone
	// chargeMemory: the pool killed the worker for its memory. The call
	// fails with a *MemoryLimitError, and never runs again: it would only
	// grow another worker as far.
	chargeMemory
)

// salvage deals with the batches a dead worker held, when the pool lives
// on: under Respawn, or after a kill of the pool's own. The call it was
// running is charged as how says. Calls that never started go back to the
// queue without using a retry, in their order, ahead of newer work. Its
// journal tells which call was running (m.culprit); without one, with
// progress (Config.TaskTimeout) or a call already failed it is the first
// call without a result, and otherwise any call of the first batch without a
// result may have run.
func (p *Pool) salvage(m *member, e *WorkerExitError, how charge) {
	c := m.culprit
	held := p.takeHeld(m)
	for i := len(held) - 1; i >= 0; i-- {
		b := held[i]
		if b.state == finished {
			continue
		}
		if b.got == 0 && (c.known && b != c.b || !c.known && i > 0) {
			b.state, b.holder = queued, nil // none of its calls ran
			b.moved = true                  // the dead worker's writer may still read its arguments
			p.queue.pushFront(b)
			continue
		}
		ran := func(j int) bool { // whether call j may have run
			switch {
			case c.known:
				return b == c.b && j == c.i
			case i > 0:
				return false
			case how == chargeNone || p.cfg.TaskTimeout > 0:
				return j == b.got
			}
			return true
		}
		var retry, again []int
		for j := b.got; j < b.calls(); j++ {
			switch {
			case b.outs.err(j) != nil:
			case !ran(j):
				again = append(again, j)
			case how == chargeMemory:
				b.outs.fail(b.calls(), j, p.memoryError(m, e), c.known)
				p.counts.memoryKills++
			case b.tries < p.cfg.Retries:
				retry = append(retry, j)
			default:
				b.outs.fail(b.calls(), j, fmt.Errorf("%w: %w", ErrWorkerLost, e), c.known)
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
	p.dispatch()
}

// requeuePieces queues calls idx of b as batches of one call each, at the
// front of the queue. Their outcomes land in b.
func (p *Pool) requeuePieces(b *batch, idx []int, tries int) {
	for _, j := range slices.Backward(idx) {
		p.nextID++
		piece := &batch{id: p.nextID, task: b.task, args: b.args.Slice(j, j+1), tries: tries, state: queued, parent: b, at: j, cost: b.cost, deadline: b.deadline}
		if b.elem != nil {
			piece.elem = func(*batch, int) int { return b.elem(b, j) }
		}
		p.queue.pushFront(piece)
		p.pending++
	}
}

// respawn starts a replacement for a worker slot, after a back-off if its
// launcher keeps failing. It runs without p.mu.
func (p *Pool) respawn(slot int) {
	p.mu.Lock()
	if p.state != open && p.state != closing {
		p.vacant[slot] = false
		p.mu.Unlock()
		return
	}
	p.spawning++
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
	var m *member
	err := error(nil)
	if ok {
		m, err = p.startWorker(slot)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	p.spawning--
	p.settled.Broadcast()
	if m == nil {
		p.vacant[slot] = false // none was started; one that was cleared it
	}
	switch {
	case !ok:
	case err != nil:
		if p.state == open || p.state == closing {
			p.breakPool(fmt.Errorf("%w: %w", ErrStartup, err), "could not start a replacement worker", nil)
		}
	case p.state != open && p.state != closing:
		m.conn.kill("the pool stopped while it started")
	}
}

// describe lists what unfinished calls bs hold, for the log: "square×3".
func describe(bs []*batch) string {
	parts := make([]string, 0, len(bs))
	for _, b := range bs {
		if b.state != finished {
			parts = append(parts, fmt.Sprintf("%s×%d", b.task, b.calls()-b.got))
		}
	}
	return strings.Join(parts, ", ")
}
