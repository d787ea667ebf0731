package procpool

import (
	"cmp"
	"slices"
	"time"

	"github.com/procpool/procpool/internal/procfs"
)

// Stats is a snapshot of a pool's workers and of what became of its calls.
type Stats struct {
	// Workers has one entry per worker slot, in slot order: the worker
	// that fills it, or, between the end of a worker and the start of its
	// replacement, the slot itself, respawning.
	Workers []WorkerStats

	// Queued is the number of calls submitted that no worker has started:
	// those waiting in the pool's queue, and those sent ahead to a busy
	// worker ([Config.Prefetch]). A Map counts each of its elements.
	Queued int
	// Running is the number of calls a worker is running now: at most one
	// per worker. A call that failed on its deadline or was cancelled no
	// longer counts, even while its worker has yet to stop it.
	Running int

	Completed int // calls that returned a result
	Failed    int // calls whose task failed or panicked, or whose argument or result the worker could not decode or encode
	Lost      int // calls that failed with ErrWorkerLost
	Retried   int // calls run again after their worker died
	TimedOut  int // calls that ran past Config.TaskTimeout
	// MemoryKills counts the calls that failed with [ErrMemoryLimit]: the
	// pool killed their worker, which they had taken over
	// [Config.MaxMemoryPerWorker], and replaced it. Like a timed-out call's,
	// that kill is the pool's own: it is not in Deaths, and the call is not
	// in Failed or Lost.
	MemoryKills int
	Deaths      int // workers that died abruptly (not retired, not killed on purpose, such as for their memory)
}

// WorkerState is where a worker slot is in its life.
type WorkerState string

const (
	// WorkerStarting: the worker's process (or goroutine) exists; its
	// handshake and [Config.Initializer] have not completed.
	WorkerStarting WorkerState = "starting"
	// WorkerReady: the worker takes work, and may be running some.
	WorkerReady WorkerState = "ready"
	// WorkerStopping: the worker takes no more work and exits once it
	// holds none: it was retired ([Config.MaxTasksPerWorker],
	// [Config.MaxMemoryPerWorker]) or the pool is closing.
	WorkerStopping WorkerState = "stopping"
	// WorkerRespawning: the slot's worker ended and its replacement has no
	// process yet: it is waiting out a back-off, or being launched. PID is
	// 0.
	WorkerRespawning WorkerState = "respawning"
)

// WorkerStats describes one worker slot and the worker that fills it.
type WorkerStats struct {
	PID      int         // on its own machine; 0 while the slot is respawning
	Host     string      // where it runs, when not started by the default launcher
	Slot     int         // its place in the pool, kept by its replacements
	State    WorkerState // starting, ready, stopping or respawning
	Tasks    int         // calls it completed
	Restarts int         // workers its slot has had before it
	ReadyAt  time.Time   // when it completed its handshake and took work; zero while it starts
	RSS      int64       // resident memory in bytes, or -1 if unknown (always on another machine, and on a platform where it cannot be read)
}

// Stats returns a snapshot of the pool.
func (p *Pool) Stats() Stats {
	p.mustBeUsable("Stats")
	p.mu.Lock()
	s := Stats{
		Completed:   p.counts.completed,
		Failed:      p.counts.failed,
		Lost:        p.counts.lost,
		Retried:     p.counts.retried,
		TimedOut:    p.counts.timedOut,
		MemoryKills: p.counts.memoryKills,
		Deaths:      p.counts.deaths,
	}
	for _, b := range p.queue.items[p.queue.head:] {
		if b != nil && b.state == queued {
			s.Queued += b.calls()
		}
	}
	for _, m := range p.members {
		running, queued := m.calls()
		s.Running += running
		s.Queued += queued
		s.Workers = append(s.Workers, WorkerStats{PID: m.workerPID, Host: m.host(), Slot: m.slot, State: m.state(), Tasks: m.done, Restarts: p.restarts[m.slot], ReadyAt: m.readyAt, RSS: -1})
	}
	if p.state == open || p.state == closing {
		for slot, vacant := range p.vacant {
			if vacant {
				s.Workers = append(s.Workers, WorkerStats{Host: p.groupOf(slot).host(), Slot: slot, State: WorkerRespawning, Restarts: p.restarts[slot], RSS: -1})
			}
		}
	}
	p.mu.Unlock()
	slices.SortStableFunc(s.Workers, func(a, b WorkerStats) int { return cmp.Compare(a.Slot, b.Slot) })
	for i, ws := range s.Workers {
		if ws.Host == "" && ws.PID != 0 { // a process of this machine, or this very one
			s.Workers[i].RSS = procfs.ResidentMemory(ws.PID)
		}
	}
	return s
}

// state says where m is in its life. It runs under p.mu.
func (m *member) state() WorkerState {
	switch {
	case m.stopping || m.retiring:
		return WorkerStopping
	case !m.isReady:
		return WorkerStarting
	}
	return WorkerReady
}

// calls counts the calls m holds that have no outcome yet: the one it is
// running, if any, and those it holds after it. It runs under p.mu.
func (m *member) calls() (running, queued int) {
	for i, b := range m.held {
		if b.state == finished {
			continue
		}
		for j := b.got; j < b.calls(); j++ {
			switch {
			case b.outs.err(j) != nil: // abandoned: over for its caller
			case i == 0 && j == b.got:
				running = 1
			default:
				queued++
			}
		}
	}
	return running, queued
}

type counts struct {
	completed, failed, lost, retried, timedOut, memoryKills, deaths int
}
