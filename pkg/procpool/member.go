package procpool

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procpool/procpool/internal/journal"
	"github.com/procpool/procpool/internal/wire"
)

// member is the scheduler's record of one worker: what it holds, what it
// has done, and what the pool has decided about it. The worker itself is
// behind conn.
//
// conn, slot, group and the channels are set before the member is shared and
// never change; every other field is guarded by the pool's mu.
type member struct {
	p     *Pool
	conn  conn
	slot  int          // its place in the pool; a replacement takes the same
	group *launchGroup // the launcher that started it

	readyCh chan struct{} // closed when the handshake completes
	endedCh chan struct{} // closed when the pool has dealt with its end

	// Guarded by p.mu.
	log        hclog.Logger
	workerPID  int           // its pid on its own machine
	held       []*batch      // batches posted to it, in the order posted
	backlog    time.Duration // what the measured batches it holds are expected to take
	unmeasured int           // batches it holds whose task has no measured cost
	callAt     time.Time     // when its current call started, about
	isReady    bool          // handshake complete
	readyAt    time.Time     // when it became ready
	stopping   bool          // the pool asked it to exit
	retiring   bool          // takes no more work, then stops
	memExempt  bool          // started above MaxMemoryPerWorker: never retired nor killed for memory
	memKilled  int64         // the resident memory it was killed at, for being over MaxMemoryPerWorker; 0 if not
	memCall    callRef       // the call the memory watcher last saw it run
	memBase    int64         // its resident memory when the watcher first saw it run memCall
	onPurpose  bool          // the pool is killing it: not a crash
	gone       bool          // the pool has dealt with its end
	assigned   int           // calls posted
	done       int           // calls completed
	callSeq    uint64        // counts calls started, to tell a stale timer
	lastDone   time.Time     // when its last run ended
	timer      *time.Timer   // TaskTimeout, or the kill escalation
	exitErr    *WorkerExitError
	culprit    culprit // the call it was running when it died, as its journal says
	inIdle     bool    // in p.place.idle
	inRoom     bool    // in p.place.room
	counted    bool    // counted in p.place.ready
	busy       bool    // counted in p.place.busy
	leasing    bool    // in p.leasing
	writer     bool    // in the writers of the enqueue at hand
}

func newMember(p *Pool, c conn, slot int, log hclog.Logger) *member {
	return &member{
		p:         p,
		conn:      c,
		slot:      slot,
		group:     p.groupOf(slot),
		readyCh:   make(chan struct{}),
		endedCh:   make(chan struct{}),
		log:       log,
		workerPID: c.pid(),
	}
}

// accepting reports whether m takes work. It runs under p.mu.
func (m *member) accepting() bool { return m.isReady && !m.gone && !m.stopping && !m.retiring }

// idle reports whether m takes work and holds none. It runs under p.mu.
func (m *member) idle() bool { return m.accepting() && len(m.held) == 0 }

// host says where the worker runs: "" for the default launcher's workers,
// else the launcher ("ssh build1"), or the node a scheduler gave it.
func (m *member) host() string { return m.group.hostOf(m.conn.pid()) }

// The events of m's conn go to the scheduler.

func (m *member) ready(workerPID int) { m.p.ready(m, workerPID) }

func (m *member) results(rs []wire.Result) error { return m.p.deliver(m, rs) }

func (m *member) ended(e *WorkerExitError, cause endCause, last *journal.Record) {
	m.p.ended(m, e, cause, last)
}

// name identifies a worker in messages: "pid 123", "pid 123 on ssh build1".
func name(pid int, host string) string {
	if host != "" {
		return fmt.Sprintf("pid %d on %s", pid, host)
	}
	return fmt.Sprintf("pid %d", pid)
}

// hold counts b, which m takes (by 1) or gave back (by -1), in m's backlog.
func (m *member) hold(b *batch, by int) {
	if by > 0 {
		b.expect = b.cost.warm * time.Duration(b.calls())
	}
	if b.expect == 0 {
		m.unmeasured += by
	}
	m.backlog += b.expect * time.Duration(by)
}
