package procpool

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/procpool/procpool/internal/wire"
)

// This file is the scheduler: batches move from the queue to a member
// (dispatch), and come back with results (deliver). Deadlines are in
// deadline.go, what follows a worker's end in death.go. Every function here
// runs under p.mu unless it says otherwise.

// enqueue queues batches for the workers, or fails if the pool takes no
// work. It runs without p.mu.
func (p *Pool) enqueue(bs ...*batch) error {
	p.mu.Lock()
	if err := p.refusal(); err != nil {
		p.mu.Unlock()
		return err
	}
	// Small batches posted now are written from here rather than by the
	// conn's writer, whose wake-up would cost more than the write.
	quiet := small(bs)
	for _, b := range bs {
		p.nextID++
		b.id = p.nextID
		b.state = queued
		b.cost = p.place.cost(b.task)
		b.quiet = quiet
		p.queue.pushBack(b)
	}
	p.pending += len(bs)
	p.dispatch()
	writers := make([]*member, 0, 8)
	for _, b := range bs {
		if m := b.holder; b.quiet && b.state == running && !m.writer {
			m.writer = true // a conn twice costs a sendNow that finds nothing left
			writers = append(writers, m)
		}
		b.quiet, b.direct = false, false // posted later, from another goroutine, they are neither
	}
	for _, m := range writers {
		m.writer = false
	}
	p.mu.Unlock()
	for _, m := range writers {
		m.conn.sendNow() // conn never changes
	}
	return nil
}

// small reports whether batches fit in a pipe's buffer, so that writing
// them cannot block the caller on a slow reader.
func small(bs []*batch) bool {
	n := 0
	for _, b := range bs {
		if n += len(b.args.Buf) + 5*b.calls(); n > 32<<10 {
			return false
		}
	}
	return true
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

// dispatch posts queued batches to the members that should take them (see
// pick).
func (p *Pool) dispatch() {
	share := max(p.cfg.Prefetch, defaultPrefetch, p.fairShare())
	now := time.Now()
	for b := p.queue.peek(); b != nil; b = p.queue.peek() {
		m := p.pick(b, share, now)
		if m == nil {
			// A leased run may hold the worker b waits for, its caller
			// not yet come to read its result.
			p.voidLeases()
			return
		}
		p.post(m, p.queue.popFront(), now)
	}
}

// post gives b to m.
func (p *Pool) post(m *member, b *batch, now time.Time) {
	b.state, b.holder, b.sent = running, m, now
	b.cold = len(m.held) == 0
	m.held = append(m.held, b)
	m.hold(b, 1)
	m.assigned += b.calls()
	if max := p.cfg.MaxTasksPerWorker; max > 0 && m.assigned >= max {
		p.retire(m)
		m.log.Debug("retiring worker", "reason", "MaxTasksPerWorker", "tasks", m.assigned)
	}
	if b.direct {
		b.polls = p.mayPoll(m, b)
	}
	m.conn.post(b)
	if b.direct && b.lessee != nil {
		p.noteLease(m)
	}
	p.holdChanged(m, b)
	if len(m.held) == 1 {
		p.callStarted(m, now)
	}
}

// retire makes m take no more work; it stops once it holds none.
func (p *Pool) retire(m *member) {
	m.retiring = true
	p.withdraw(m)
}

// deliver records results from m, in the order m sent them, under one hold
// of p.mu: a worker of quick calls sends many per write. A result that does
// not match what m holds is a protocol error, and the worker is treated as
// dead. It runs in m's conn's goroutine, without p.mu.
func (p *Pool) deliver(m *member, rs []wire.Result) error {
	ends := 0 // results that end their run
	for i := range rs {
		if !rs[i].More {
			ends++
		}
	}
	rss := int64(-1)
	if ends > 0 && p.cfg.MaxMemoryPerWorker > 0 {
		rss = m.conn.rss() // before the caller learns of the result, so its next call sees the verdict
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if m.gone {
		return errGone
	}
	now := time.Now()
	for i := range rs {
		if err := p.result(m, &rs[i], now); err != nil {
			return err
		}
	}
	p.checkMemory(m, rss)
	if len(m.held) == 0 && m.retiring {
		m.stopping = true
		m.conn.stop()
	}
	if ends > 0 {
		p.dispatch()
	}
	return nil
}

// result records res, the next result from m, which came at now.
func (p *Pool) result(m *member, res *wire.Result, now time.Time) error {
	if len(m.held) == 0 || m.held[0].id != res.ID {
		return fmt.Errorf("protocol error: result for run %d, which is not the next one the worker holds", res.ID)
	}
	b := m.held[0]
	n := res.Values.Len()
	if b.got+n > b.calls() || !res.More && b.got+n != b.calls() {
		return fmt.Errorf("protocol error: %d results for a run of %d calls", b.got+n, b.calls())
	}
	p.place.learn(b, n, res.Took, now.Sub(b.sent))
	p.received(m, b, res.Values, res.Fails)
	if !res.More {
		m.held = slices.Delete(m.held, 0, 1)
		m.hold(b, -1)
		p.holdChanged(m, b)
		if b.state != finished {
			b.clean = !b.moved
			p.finish(b)
		}
	}
	p.callStarted(m, now)
	return nil
}

// received records the outcomes of b's next calls, which m ran: their
// values, and the failures among them, unless the pool has already failed
// a call (timed out, cancelled: a late result does not count). A completed
// call resets the crash-loop count.
func (p *Pool) received(m *member, b *batch, vals wire.Values, fails []wire.Fail) {
	n, first := vals.Len(), b.got
	if n == 0 {
		return
	}
	b.got += n
	m.done += n
	p.deaths = 0
	if b.state == finished {
		return // its calls left had failed, and its caller may be reading them
	}
	late := 0
	if b.outs.failed != nil {
		for j := first; j < first+n; j++ {
			if b.outs.failed[j].err != nil {
				late++
			}
		}
	}
	b.outs.add(first, vals)
	failed := 0
	for i := range fails {
		if j := first + fails[i].Index; b.outs.err(j) == nil {
			b.outs.fail(b.calls(), j, itemError(b.task, &fails[i].Item), false)
			failed++
		}
	}
	p.counts.completed += n - late - failed
	p.counts.failed += failed
}

// errGone is deliver's answer to a worker the pool has already dealt with.
var errGone = errors.New("worker gone")

// ready records that m completed its handshake and lets it take work. It
// runs in m's conn's goroutine, without p.mu.
func (p *Pool) ready(m *member, workerPID int) {
	rss := int64(-1)
	if p.cfg.MaxMemoryPerWorker > 0 {
		rss = m.conn.rss()
	}
	p.mu.Lock()
	if workerPID != m.workerPID {
		m.workerPID = workerPID
		m.log = m.log.With("worker_pid", workerPID)
	}
	p.exemptIfBloated(m, rss)
	m.isReady, m.readyAt = true, time.Now()
	m.group.failures = 0
	p.join(m)
	p.dispatch()
	p.mu.Unlock()
	close(m.readyCh)
}

const (
	maxPrefetch = 64
	// defaultPrefetch is the batches a worker holds when Config.Prefetch
	// is not set, its calls quick enough (see hasRoom).
	defaultPrefetch = 2
	// queueTarget is how long the runs a worker holds should keep it busy:
	// long enough to hide a round trip through the parent, short enough
	// not to hoard work another worker could take.
	queueTarget = 500 * time.Microsecond
)

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
		b.done(b)
		return
	}
	b.parent.outs.merge(b.parent.calls(), b.at, &b.outs)
	if b.parent.left--; b.parent.left == 0 {
		b.parent.state = finished
		p.complete(b.parent)
	}
}

// fail ends b with err for every call that has no outcome yet.
func (p *Pool) fail(b *batch, err func() error) {
	for i := b.got; i < b.calls(); i++ {
		if b.outs.err(i) == nil {
			b.outs.fail(b.calls(), i, err(), false)
		}
	}
	p.finish(b)
}

// failAll fails every queued and held batch.
func (p *Pool) failAll(err func() error) {
	for b := p.queue.popFront(); b != nil; b = p.queue.popFront() {
		p.fail(b, err)
	}
	for _, m := range p.members {
		p.failHeld(m, err)
	}
}

// failHeld fails the unfinished batches m holds.
func (p *Pool) failHeld(m *member, err func() error) {
	for _, b := range p.takeHeld(m) {
		if b.state != finished {
			p.fail(b, err)
		}
	}
}

// takeHeld empties m's held batches and returns them.
func (p *Pool) takeHeld(m *member) []*batch {
	held := m.held
	m.held, m.backlog, m.unmeasured = nil, 0, 0
	p.holdChanged(m, nil)
	return held
}
