package procpool

import (
	"github.com/procpool/procpool/internal/procfs"
)

// Stats is a snapshot of a pool's workers and of what became of its calls.
type Stats struct {
	Workers   []WorkerStats
	Completed int // calls that returned a result
	Failed    int // calls whose task failed or panicked, or whose argument or result the worker could not decode or encode
	Lost      int // calls that failed with ErrWorkerLost
	Retried   int // calls run again after their worker died
	TimedOut  int // calls that ran past Config.TaskTimeout
	Deaths    int // workers that died abruptly (not retired, not killed on purpose)
}

// WorkerStats describes one live worker.
type WorkerStats struct {
	PID      int    // on its own machine
	Host     string // where it runs, when not started by the default launcher
	Slot     int    // its place in the pool, kept by its replacements
	Tasks    int    // calls it completed
	Restarts int    // workers its slot has had before it
	RSS      int64  // resident memory in bytes, or -1 if unknown (always on another machine, and on a platform where it cannot be read)
}

// Stats returns a snapshot of the pool.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	s := Stats{
		Completed: p.counts.completed,
		Failed:    p.counts.failed,
		Lost:      p.counts.lost,
		Retried:   p.counts.retried,
		TimedOut:  p.counts.timedOut,
		Deaths:    p.counts.deaths,
	}
	for _, m := range p.members {
		s.Workers = append(s.Workers, WorkerStats{PID: m.workerPID, Host: m.host(), Slot: m.slot, Tasks: m.done, Restarts: p.restarts[m.slot], RSS: -1})
	}
	p.mu.Unlock()
	for i, ws := range s.Workers {
		if ws.Host == "" { // a process of this machine, or this very one
			s.Workers[i].RSS = procfs.ResidentMemory(ws.PID)
		}
	}
	return s
}

type counts struct {
	completed, failed, lost, retried, timedOut, deaths int
}
