package procpool

import (
	"context"
	"fmt"
	"time"
)

// This file enforces deadlines: [Config.TaskTimeout], cancellation, and the
// kill escalation for a call that does not stop when asked. Every function
// here runs under p.mu unless it says otherwise.

// cancel ends batches whose caller stopped caring (a Future.Cancel, the end
// of a Map's or Imap's context, a broken-off Imap loop): every call without
// an outcome fails at once with context.Canceled, and none of them starts
// any more. A batch no worker has taken stays in the queue, finished, and
// popFront skips it. A worker holding one is told to cancel the call it runs
// and skip the rest; if the call does not return within [Config.KillGrace],
// the worker is killed and replaced. It runs without p.mu.
func (p *Pool) cancel(bs ...*batch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range bs {
		switch b.state {
		case queued:
			p.fail(b, func() error { return context.Canceled })
		case running:
			p.abandonRun(b, context.Canceled)
		}
	}
}

// cancelCall is cancel of a Future's one call. It reports whether the call
// ended cancelled. It runs without p.mu.
func (p *Pool) cancelCall(b *batch) bool {
	p.cancel(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	return b.state == finished && b.outs.err(0) == context.Canceled
}

// abandonRun fails every call of b, held by a worker, that has no outcome
// yet with err, without waiting for the worker: the caller learns at once.
// The worker is told to skip them and to cancel the one it runs; if it runs
// one and does not stop in time, it is killed.
func (p *Pool) abandonRun(b *batch, err error) {
	p.fail(b, func() error { return err }) // its holder still holds it; deliver and ended skip it
	m := b.holder
	m.conn.cancel(b.id, true)
	if m.held[0] == b {
		p.escalate(m)
	}
}

// abandon fails call i of b, which b's holder runs, with err, without
// waiting for the worker: the caller learns at once. The worker is asked to
// cancel the call, and is killed if it does not stop in time; the calls
// after it run.
func (p *Pool) abandon(b *batch, i int, err error) {
	m := b.holder
	b.failCall(i, err, false)
	if b.got == i && i == b.calls()-1 {
		p.finish(b) // m still holds it; deliver and ended skip it
	}
	m.conn.cancel(b.id, false)
	if m.held[0] == b && b.got == i {
		p.escalate(m)
	}
}

// callStarted notes that m began its next call: it arms the timer of
// Config.TaskTimeout, or, if the call was already abandoned, the grace
// after which the worker is killed.
func (p *Pool) callStarted(m *member, now time.Time) {
	m.callSeq++
	m.callAt = now
	if m.timer != nil {
		m.timer.Stop()
		m.timer = nil
	}
	if len(m.held) == 0 {
		return
	}
	b := m.held[0]
	if b.outs.err(b.got) != nil {
		p.escalate(m)
		return
	}
	if p.cfg.TaskTimeout > 0 {
		seq := m.callSeq
		m.timer = time.AfterFunc(p.cfg.TaskTimeout, func() { p.timedOut(m, seq) })
	}
}

// timedOut fails the call m has been running since callSeq seq. It runs
// without p.mu, in a timer.
func (p *Pool) timedOut(m *member, seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m.gone || m.callSeq != seq || len(m.held) == 0 {
		return
	}
	b := m.held[0]
	p.counts.timedOut++
	m.log.Warn("task timed out", "task", b.task, "timeout", p.cfg.TaskTimeout)
	p.abandon(b, b.got, fmt.Errorf("%w: task %q ran for more than %s", ErrTaskTimeout, b.task, p.cfg.TaskTimeout))
}

// escalate gives the call m is running KillGrace to stop after its context
// was cancelled, then sends SIGTERM, then after another KillGrace SIGKILL.
// The worker is then replaced, under either policy, since the pool killed it
// on purpose.
func (p *Pool) escalate(m *member) {
	if m.timer != nil {
		m.timer.Stop()
	}
	seq, grace := m.callSeq, p.cfg.KillGrace
	m.timer = time.AfterFunc(grace, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if m.gone || m.callSeq != seq {
			return // the call stopped in time
		}
		m.onPurpose = true
		m.log.Warn("worker did not stop an abandoned task; sending SIGTERM", "grace", grace)
		m.conn.terminate("it did not stop an abandoned task in time")
		m.timer = time.AfterFunc(grace, func() { m.conn.kill("it ignored SIGTERM") })
	})
}

// ended is ctx.Err(), or context.DeadlineExceeded once ctx's deadline has
// passed though its timer has not fired yet. A worker may report calls cut
// short by the deadline before the parent's timer runs; the caller must
// then see the end of its context, not those calls' errors.
func ended(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}
