package procpool

import (
	"slices"
	"time"
)

// This file decides which worker takes the next batch, at a cost that does
// not grow with the number of workers: idle workers wait on a stack, busy
// workers with room in a FIFO, and the choice between waking an idle worker
// and feeding a running one is made from what calls have been measured to
// cost. Every function here runs under p.mu.

// placement is the scheduler's index of its members by what they can take.
// Its lists may hold members that no longer qualify; they are dropped when
// they reach the top. Guarded by pool.mu, like the members.
type placement struct {
	idle     []*member // ready and holding nothing; the last to go idle on top
	room     []*member // holding work, with room for more; oldest first
	roomHead int
	ready    int // members that take work (accepting), for the fair share
	busy     int // members that hold work

	costs map[string]*taskCost // per task
	// wake is what giving a run to an idle worker costs beyond the run
	// itself: the least measured time from posting it to its result, less
	// the worker's own time on it; drifting up slowly, so that it follows
	// a machine that got slower.
	wake time.Duration

	ncpu, ncpuAge int // GOMAXPROCS, and the reads of it left before it is read again (see cpus)
}

// cpus returns the CPUs the parent runs on, read afresh every 64th time:
// runtime.GOMAXPROCS takes the Go scheduler's own lock, which on a Map of
// tiny calls was 7 % of the parent's time, and it seldom changes.
func (pl *placement) cpus() int {
	if pl.ncpuAge--; pl.ncpuAge < 0 {
		pl.ncpu, pl.ncpuAge = cpus(), 63
	}
	return pl.ncpu
}

// taskCost is what one call of a task has been measured to take in the
// worker (which reports it with each result): a running average, and the
// least, which a worker waiting for a CPU does not inflate.
type taskCost struct {
	warm, least time.Duration
}

// cost returns the measurements of task.
func (pl *placement) cost(task string) *taskCost {
	c := pl.costs[task]
	if c == nil {
		if pl.costs == nil {
			pl.costs = map[string]*taskCost{}
		}
		c = &taskCost{}
		pl.costs[task] = c
	}
	return c
}

// pushIdle records that m may take work now that it holds none.
func (pl *placement) pushIdle(m *member) {
	if !m.inIdle && m.idle() {
		m.inIdle = true
		pl.idle = append(pl.idle, m)
	}
}

// pushRoom records that m, which holds work, may take more.
func (pl *placement) pushRoom(m *member) {
	if !m.inRoom && m.accepting() && len(m.held) > 0 {
		m.inRoom = true
		pl.room = append(pl.room, m)
	}
}

// popIdle returns the idle member that went idle last, or nil. Its caches
// and its goroutines are the warmest.
func (pl *placement) popIdle() *member {
	for len(pl.idle) > 0 {
		m := pl.idle[len(pl.idle)-1]
		pl.idle[len(pl.idle)-1] = nil
		pl.idle = pl.idle[:len(pl.idle)-1]
		m.inIdle = false
		if m.idle() {
			return m
		}
	}
	return nil
}

// popRoom returns the busy member that has waited longest with room for b
// (see hasRoom), or nil.
func (p *Pool) popRoom(b *batch, share int, now time.Time) *member {
	pl := &p.place
	for pl.roomHead < len(pl.room) {
		m := pl.room[pl.roomHead]
		pl.room[pl.roomHead] = nil
		pl.roomHead++
		if pl.roomHead == len(pl.room) {
			pl.room, pl.roomHead = pl.room[:0], 0
		}
		m.inRoom = false
		if m.accepting() && len(m.held) > 0 && p.hasRoom(m, b, share, now) {
			return m
		}
	}
	return nil
}

// hasRoom reports whether m, which holds work, should take b as well:
// while it holds fewer than Config.Prefetch batches, whatever they cost;
// beyond that, up to maxPrefetch, while what it holds and b are measured to
// keep it busy for less than queueTarget, so that a round trip through the
// parent would leave it waiting. By default it also holds a second batch,
// unless it holds a call not measured, or one that has run far longer than
// measured: b would wait behind it while another worker may soon be free.
// Never more than share.
func (p *Pool) hasRoom(m *member, b *batch, share int, now time.Time) bool {
	n := len(m.held)
	switch {
	case n >= share || n >= maxPrefetch:
		return false
	case n < p.cfg.Prefetch:
		return true
	case m.unmeasured > 0 || now.Sub(m.callAt) > m.backlog+queueTarget:
		return false
	case n < defaultPrefetch && p.cfg.Prefetch == 0:
		return true
	}
	return b.cost.warm > 0 && m.backlog+b.cost.warm*time.Duration(b.calls()) <= queueTarget
}

// feedRunning reports whether b should go to a worker that is running
// rather than wake an idle one: when b's calls are tiny (they take less than
// queueTarget) and waking a worker costs more than twice what they take,
// the running workers already keep every CPU busy, and the workers
// outnumber the CPUs more than twice over. Then more workers only add
// context switches. With fewer, spreading costs little and keeps every
// worker warm, which matters when workers die and must be replaced. Longer
// calls always spread: they may wait rather than compute (a sleep, I/O), and
// a worker's wake-up measured on an overloaded machine must not pile them on
// a few workers.
func (pl *placement) feedRunning(b *batch) bool {
	took := b.cost.least * time.Duration(b.calls())
	if b.cost.least == 0 || took >= queueTarget || pl.wake <= 2*took {
		return false
	}
	n := pl.cpus()
	return pl.busy >= n && pl.ready > 2*n
}

// learn folds what the worker reported for a part of b's calls, n calls
// that took it took, into the task's costs; and, if b went to an idle
// worker and this is its first part, the latency from posting it, less
// took, into the cost of waking a worker.
func (pl *placement) learn(b *batch, n int, took, latency time.Duration) {
	if n == 0 || took < 0 {
		return
	}
	c, per := b.cost, took/time.Duration(n)
	least(&c.least, per)
	if c.warm == 0 {
		c.warm = per
	} else {
		c.warm += (per - c.warm) / 8
	}
	if b.cold && b.got == 0 {
		least(&pl.wake, max(latency-took, 0))
	}
}

// least lowers *d to took, or lets it drift up towards took, by at most
// 1/32 of itself: the least of recent measurements, which forgets a machine
// that was faster, but not at one outlier's word (a worker that waited
// 300 ms for a CPU must not make every wake-up look 10 ms dear).
func least(d *time.Duration, took time.Duration) {
	if *d == 0 || took < *d {
		*d = took
	} else {
		*d += min(took-*d, *d) / 32
	}
}

// pick returns the member that should take b, the next batch, or nil if
// none should. share is the most batches one member should hold. Spread
// first: an idle member, then a busy one with room; but while b's task is
// measured to be tiny and the CPUs are busy, only running members.
func (p *Pool) pick(b *batch, share int, now time.Time) *member {
	if p.place.feedRunning(b) {
		return p.popRoom(b, share, now)
	}
	if m := p.place.popIdle(); m != nil {
		return m
	}
	return p.popRoom(b, share, now)
}

// holdChanged updates the index after m's held batches changed, by b, or
// by nil if all went.
func (p *Pool) holdChanged(m *member, b *batch) {
	pl := &p.place
	switch {
	case len(m.held) > 0 && !m.busy && !m.gone:
		m.busy = true
		pl.busy++
	case len(m.held) == 0 && m.busy:
		m.busy = false
		pl.busy--
	}
	if len(m.held) == 0 {
		pl.pushIdle(m)
		return
	}
	// A running worker whose calls are tiny, while more workers than CPUs
	// hold work, takes no more: it drains and goes idle, until only as
	// many workers run as there are CPUs to run them.
	if b != nil && pl.feedRunning(b) && pl.busy > pl.cpus() {
		return
	}
	pl.pushRoom(m)
}

// join counts m, which completed its handshake, as taking work.
func (p *Pool) join(m *member) {
	m.counted = true
	p.place.ready++
	p.place.pushIdle(m)
}

// withdraw stops counting m as taking work: it is retiring, stopping or
// gone. The lists drop it when they reach it, or, once it is gone, now: a
// dead worker at the bottom of the idle stack must not stay there for ever.
func (p *Pool) withdraw(m *member) {
	pl := &p.place
	if m.counted {
		m.counted = false
		pl.ready--
	}
	if m.gone {
		if m.busy { // it may end holding batches already finished
			m.busy = false
			pl.busy--
		}
		if m.inIdle {
			m.inIdle = false
			pl.idle = slices.DeleteFunc(pl.idle, func(o *member) bool { return o == m })
		}
		if m.inRoom {
			m.inRoom = false
			pl.room = slices.DeleteFunc(pl.room, func(o *member) bool { return o == m }) // those before roomHead are nil
		}
	}
}

// fairShare is the most runs one worker should hold so that the pending
// runs could still be spread evenly over the ready workers. It stops a
// worker whose runs used to be quick from taking a whole Map of slow ones
// before its estimate catches up.
func (p *Pool) fairShare() int {
	ready := max(p.place.ready, 1)
	return (p.pending + ready - 1) / ready
}
