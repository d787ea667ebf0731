package procpool

import (
	"github.com/procpool/procpool/internal/journal"
	"github.com/procpool/procpool/internal/wire"
)

// This file reads what a dead worker's journal says (package journal): the
// outcomes of the calls that completed but had not reached the pipe, and
// the call that was running. A death then costs that call alone. Every
// function here runs under p.mu.

// culprit is the call a worker was running when it died.
type culprit struct {
	known bool   // the journal says; else any call without an outcome may have run
	b     *batch // nil if it was running none
	i     int    // the call's index in b
}

// elem is the culprit's index in the input of the Map or Imap that made
// its batch, or -1 for a Submit.
func (c culprit) elem() int {
	if c.b.elem == nil {
		return -1
	}
	return c.b.elem(c.b, c.i)
}

// recoverLast records the outcomes that m's journal, last, holds for the
// batches m holds, and returns the call that was running. Without a
// journal, or with one that does not follow on from the results received,
// the culprit is not known.
func (p *Pool) recoverLast(m *member, last *journal.Record) culprit {
	if last == nil {
		return culprit{}
	}
	held := func(id uint64) *batch {
		for _, b := range m.held {
			if b.id == id {
				return b
			}
		}
		return nil
	}
	for _, en := range last.Entries {
		b := held(en.Run)
		switch {
		case b == nil || en.Index < b.got:
			continue // its outcome arrived through the pipe
		case en.Index > b.got:
			m.log.Warn("worker's journal does not follow on from its results; its death is charged to every call it held", "run", en.Run, "index", en.Index, "got", b.got)
			return culprit{}
		}
		vals, fails := wire.Pack([]wire.Item{en.Item})
		p.received(m, b, vals, fails)
		if b.got == b.calls() && b.state != finished {
			p.finish(b)
		}
	}
	c := culprit{known: true}
	if b := held(last.Run); last.Run != 0 && b != nil && last.Index >= b.got && b.got < b.calls() {
		if last.Index > b.got {
			m.log.Warn("worker's journal names a call after the next one; its death is charged to every call it held", "run", last.Run, "index", last.Index, "got", b.got)
			return culprit{}
		}
		c.b, c.i = b, last.Index
	}
	return c
}
