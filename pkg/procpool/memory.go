package procpool

import (
	"fmt"
	"time"
)

// This file is the memory limit, [Config.MaxMemoryPerWorker]: a watcher that
// kills a worker whose call takes it over the limit, and, after each run,
// the retirement of a worker left over it. Reading a worker's memory is the
// conn's (rss): only the workers of this machine are watched. Every function
// here runs under p.mu unless it says otherwise.

// memoryWatchPeriod is how often the watcher reads the memory of the busy
// workers: often enough that a call growing by a gigabyte a second is
// killed within a few hundred megabytes of the limit, seldom enough to cost
// nothing to speak of (a read of /proc per busy worker).
const memoryWatchPeriod = 100 * time.Millisecond

// callRef names one call: its run's (batch's) id and its index in the run.
type callRef struct {
	run   uint64
	index int
}

// watchMemory kills, a few times a second, every worker whose call has taken
// its resident memory over the limit, until the pool shuts down. It runs in
// a goroutine of its own, counted in p.wg, without p.mu.
func (p *Pool) watchMemory() {
	defer p.wg.Done()
	t := time.NewTicker(memoryWatchPeriod)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
			p.checkBusy()
		}
	}
}

// memorySample is what the watcher read of one worker.
type memorySample struct {
	m      *member
	rss    int64
	call   callRef
	byName bool // call is what the worker's journal names
}

// checkBusy reads the memory of every local worker that holds work, and
// kills those a call took over the limit. It runs without p.mu: reading
// /proc under it would hold up the scheduler.
func (p *Pool) checkBusy() {
	p.mu.Lock()
	var busy []*member
	for _, m := range p.members {
		if m.isReady && !m.gone && m.group.local && !m.memExempt && m.memKilled == 0 && len(m.held) > 0 {
			busy = append(busy, m)
		}
	}
	p.mu.Unlock()
	samples := make([]memorySample, 0, len(busy))
	for _, m := range busy {
		// The call read before and after the memory: a sample taken as
		// one call ended and the next began would belong to neither.
		run, index, byName := m.conn.running()
		s := memorySample{m: m, rss: m.conn.rss(), call: callRef{run, index}, byName: byName}
		if run, index, _ := m.conn.running(); s.rss >= 0 && (callRef{run, index}) == s.call {
			samples = append(samples, s)
		}
	}
	if len(samples) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range samples {
		p.judgeMemory(s)
	}
}

// judgeMemory kills s's worker if the call it runs took it over the limit.
// The memory of a process is all its calls', and Go returns freed memory to
// the system only slowly: a call that finds its worker over the limit
// already, left so by the calls before it (which the pool retires it for
// after its run, see checkMemory), is charged only if it adds a further
// quarter of the limit. What the call found is the memory the watcher first
// saw it run with, up to memoryWatchPeriod after it began.
func (p *Pool) judgeMemory(s memorySample) {
	m, limit := s.m, p.cfg.MaxMemoryPerWorker
	if m.gone || m.memKilled > 0 || len(m.held) == 0 {
		return
	}
	call := s.call
	if !s.byName { // no journal: the first call without a result, as the parent sees it
		b := m.held[0]
		call = callRef{b.id, b.got}
	}
	if call != m.memCall {
		m.memCall, m.memBase = call, s.rss
		return
	}
	if s.rss > limit && (m.memBase <= limit || s.rss-m.memBase > limit/4) {
		p.killForMemory(m, s.rss)
	}
}

// killForMemory kills m, whose resident memory is rss bytes, over the
// limit. What becomes of the calls it holds is decided once it is gone (see
// decide): the one it was running fails with a *MemoryLimitError.
func (p *Pool) killForMemory(m *member, rss int64) {
	limit := p.cfg.MaxMemoryPerWorker
	m.memKilled = rss
	p.retire(m) // no more work for it while it dies
	m.log.Warn("killing worker: its resident memory is over MaxMemoryPerWorker", "rss", rss, "limit", limit, "task", m.held[0].task)
	m.conn.kill(fmt.Sprintf("resident memory %s, over MaxMemoryPerWorker %s", mib(rss), mib(limit)))
}

// memoryError is the error of the call m was running when the pool killed
// it for its memory; e is m's end.
func (p *Pool) memoryError(m *member, e *WorkerExitError) error {
	return &MemoryLimitError{RSS: m.memKilled, Limit: p.cfg.MaxMemoryPerWorker, Exit: e}
}

// exemptIfBloated exempts m from the memory limit if it starts above it, at
// rss bytes: retiring or killing it would only start another like it,
// forever.
func (p *Pool) exemptIfBloated(m *member, rss int64) {
	if limit := p.cfg.MaxMemoryPerWorker; limit > 0 && rss > limit {
		m.memExempt = true
		m.log.Warn("a fresh worker is already over MaxMemoryPerWorker; it will not be retired nor killed for memory", "rss", rss, "limit", limit)
	}
}

// checkMemory retires m if its resident memory, rss bytes (-1 if unknown),
// read after a run, is over [Config.MaxMemoryPerWorker]: the calls it ran
// left it so, and a fresh worker gives the next calls the whole limit.
func (p *Pool) checkMemory(m *member, rss int64) {
	if limit := p.cfg.MaxMemoryPerWorker; limit > 0 && rss > limit && !m.memExempt && !m.retiring {
		m.log.Info("retiring worker: resident memory over MaxMemoryPerWorker", "rss", rss, "limit", limit)
		p.retire(m)
	}
}
