package procpool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/procpool/procpool/internal/wire"
)

// The read role: one goroutine at a time reads a worker's stream and hands
// what it reads to the scheduler. The conn's own reader (readLoop) does,
// except for a run whose caller may read its result itself: a Submit posted
// at once to a worker leases the role to its caller, and the caller's Get
// reads the stream until its result is in. The result then wakes the caller
// straight from the poller, rather than waking the conn's reader, which
// wakes the caller: on few cores, that second wake-up of a thread was most
// of a round trip's cost beyond the pipe's own.
//
// A lease lasts until its run's result is read, by whoever reads it, or
// until it is given up, and the conn's reader reads in the caller's place:
// when the caller waits any other way (Done, Cancel), when its Get's
// context ends (a read deadline cuts its read short; the frame reader keeps
// what it read for the next reader), when another goroutine holds the role
// as the caller comes to read, when the pool has work it cannot place (the
// leased run may be holding a worker a queued call waits for), and at Close
// and Terminate. A result nobody waits for is therefore read all the same
// once it matters. The conn's reader reads whenever a run without a lease is
// in flight, and, once the process is gone, to the end of the stream, so a
// worker's death is seen at once, as before. (An idle worker last given a
// leased run that closes its stdout but lives on is seen when next given
// work.)

// readLoop reads the stream whenever it is the conn's own reader's turn,
// until the stream ends or breaks.
func (c *processConn) readLoop() error {
	for {
		if err := c.awaitTurn(); err != nil {
			return err
		}
		err := c.readOne()
		c.rdMu.Lock()
		c.rdBusy = false
		if err != nil {
			c.rdErr = err // no leaseholder may read on
		}
		c.rdMu.Unlock()
		if err != nil {
			return err
		}
	}
}

// awaitTurn waits until the conn's reader should read, and takes the role:
// a run without a lease is in flight, or the process is gone, or nothing is
// and the last run posted was not leased. An idle worker fed by Maps is
// read ahead, so that its next result needs no wake-up of the reader; one
// fed by Submits is not, so that their callers can read. It returns the
// error a leaseholder met instead, which ends the conn.
func (c *processConn) awaitTurn() error {
	reaped := c.reaped
	for {
		c.rdMu.Lock()
		if err := c.rdErr; err != nil {
			c.rdMu.Unlock()
			return err
		}
		ahead := len(c.inflight) == 0 && !c.lastLeased
		if !c.rdBusy && (len(c.inflight) > c.leased || reaped == nil || ahead) {
			c.rdBusy = true
			c.rdMu.Unlock()
			return nil
		}
		c.rdMu.Unlock()
		select {
		case <-c.rdWake:
		case <-reaped:
			reaped = nil // read what it wrote, to the end of the stream
			c.rdMu.Lock()
			c.rdGone = true
			c.rdMu.Unlock()
		}
	}
}

// readOne reads a message, and those that have arrived whole behind it, up
// to maxDelivery, and hands them to the scheduler at once. The caller holds
// the role.
func (c *processConn) readOne() error {
	rs := c.got[:0]
	var err error
	for len(rs) == 0 || len(rs) < maxDelivery && c.stream.Whole() {
		var m wire.Message
		if m, err = c.stream.Read(); err != nil {
			break
		}
		res, ok := m.(*wire.Result)
		if !ok {
			err = fmt.Errorf("protocol error: unexpected %s message", kindOf(m))
			break
		}
		rs = append(rs, *res)
		c.stream.Release()
	}
	if len(rs) > 0 {
		if e := c.ev.results(rs); e != nil {
			err = e
		}
		c.rdMu.Lock()
		for i := range rs {
			if !rs[i].More && len(c.inflight) > 0 {
				c.endLease(c.inflight[0])
				c.inflight[0] = nil
				c.inflight = c.inflight[1:]
			}
		}
		c.rdMu.Unlock()
	}
	clear(rs) // the values are the scheduler's
	c.got = rs[:0]
	return err
}

// maxDelivery is the most results readOne hands over at once.
const maxDelivery = 64

// track records b, posted, as in flight, leased to its caller if it is a
// Submit's, posted during the Submit (batch.direct). It reports whether b
// has a lease on c. It runs under the pool's lock.
func (c *processConn) track(b *batch) (leased bool) {
	c.rdMu.Lock()
	defer c.rdMu.Unlock()
	c.inflight = append(c.inflight, b)
	c.lastLeased = b.direct
	if b.direct && c.rdErr == nil {
		b.lessee, b.leased = c, true
		c.leased++
		if b.polls {
			c.spec.pool.polling.Add(1)
		}
	}
	// A batch moved here from a dead worker may still hold its lease
	// there, which is none here.
	return b.lessee == c && b.leased
}

// pollFor is how long a caller reading its own result polls the stream for
// it before it waits in the poller (see [wire.Stream.SetPoll]): longer than
// a quick call's round trip, which polling brings to 15-25 µs on two
// virtual CPUs, against 30-40 µs for a reader that sleeps.
const pollFor = 50 * time.Microsecond

// mayPoll reports whether the caller of b, a Submit's that m is about to
// take, may poll for its result: where it is expected within pollFor, and a
// CPU is left for the caller when m and every caller polling already have
// theirs. It runs under p.mu.
func (p *Pool) mayPoll(m *member, b *batch) bool {
	pl := &p.place
	busy := pl.busy + int(p.polling.Load())
	if !m.busy {
		busy++
	}
	return busy < pl.cpus() && b.cost.warm+pl.wake <= pollFor
}

// readFor reads the stream for the caller of b, which it leased, until b's
// result is in, the lease ends or ctx does; then the caller waits for b as
// any other. The end of ctx cuts a read short with a read deadline; what it
// read of a frame waits for the next reader.
func (c *processConn) readFor(ctx context.Context, b *batch) {
	if ctx.Done() != nil {
		if !c.deadlines {
			c.unlease(b) // no read could be cut short when ctx ends
			return
		}
		stop := context.AfterFunc(ctx, func() { c.interrupt(b) })
		defer stop()
	}
	for {
		c.rdMu.Lock()
		if !b.leased {
			c.rdMu.Unlock()
			return
		}
		if c.rdBusy || c.rdErr != nil || ctx.Err() != nil {
			// Whoever reads will read b's result too, if the lease does
			// not keep the conn's reader from it.
			c.endLease(b)
			c.rdMu.Unlock()
			c.wantRead()
			return
		}
		c.rdBusy, c.rdFor = true, b
		c.rdMu.Unlock()

		if b.polls {
			c.stream.SetPoll(pollFor)
		}
		err := c.readOne()
		c.stream.SetPoll(0)

		c.rdMu.Lock()
		c.rdBusy, c.rdFor = false, nil
		if c.rdDeadline {
			c.stdout.SetReadDeadline(time.Time{})
			c.rdDeadline = false
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = nil // ctx ended, and the loop gives the lease up
		}
		if err != nil {
			c.rdErr = err // the conn's reader reports it, and the end of the worker
			c.endLease(b)
		}
		wake := err != nil || len(c.inflight) > c.leased || c.rdGone
		c.rdMu.Unlock()
		if wake {
			c.wantRead()
		}
	}
}

// interrupt cuts short the read of b's caller, whose context ended, if it
// is reading: its read deadline passes at once.
func (c *processConn) interrupt(b *batch) {
	c.rdMu.Lock()
	defer c.rdMu.Unlock()
	if c.rdFor == b {
		c.stdout.SetReadDeadline(time.Unix(1, 0))
		c.rdDeadline = true
	}
}

// unlease gives up b's lease, if it has one: the conn's reader reads for it.
func (c *processConn) unlease(b *batch) {
	c.rdMu.Lock()
	ended := c.endLease(b)
	c.rdMu.Unlock()
	if ended {
		c.wantRead()
	}
}

// voidLeases gives up every lease on the conn's runs.
func (c *processConn) voidLeases() {
	c.rdMu.Lock()
	n := c.leased
	for _, b := range c.inflight {
		c.endLease(b)
	}
	c.rdMu.Unlock()
	if n > 0 {
		c.wantRead()
	}
}

// endLease ends b's lease on c, if it has one, and reports whether it had.
// The caller holds rdMu, which guards b.leased only if c is b's lessee.
func (c *processConn) endLease(b *batch) bool {
	if b.lessee != c || !b.leased {
		return false
	}
	b.leased = false
	c.leased--
	if b.polls {
		c.spec.pool.polling.Add(-1)
	}
	return true
}

// wantRead wakes the conn's reader, which looks whether it should read.
func (c *processConn) wantRead() {
	select {
	case c.rdWake <- struct{}{}:
	default:
	}
}

// noteLease remembers that m's conn holds leases, for voidLeases. It runs
// under p.mu.
func (p *Pool) noteLease(m *member) {
	if !m.leasing {
		m.leasing = true
		p.leasing = append(p.leasing, m)
	}
}

// voidLeases gives up every lease in the pool: nothing may wait for a
// caller that has not come to read. It runs under p.mu.
func (p *Pool) voidLeases() {
	for i, m := range p.leasing {
		m.leasing = false
		if c, ok := m.conn.(*processConn); ok {
			c.voidLeases()
		}
		p.leasing[i] = nil
	}
	p.leasing = p.leasing[:0]
}
