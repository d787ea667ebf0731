package procpool

import (
	"slices"

	"github.com/procpool/procpool/internal/wire"
)

// outcomes is how the calls of a batch ended. Values come in bulk, a
// Result's at a time, and are kept as they came (parts): a call that
// succeeded costs no record of its own, which a chunk of many tiny calls
// would pay for in allocation and in the collector's time. Failures are
// recorded call by call, in a slice made when the first call fails.
//
// A call's failure overrides its value: a result that arrives after the
// pool failed the call (timed out, cancelled) does not count.
type outcomes struct {
	parts  []part
	failed []failure // nil, or one per call of the batch
	one    [1]part   // parts' first array: most batches get their values in one part
}

// part is the values of calls first, first+1, ...: one per call, empty for
// a call that failed.
type part struct {
	first int
	vals  wire.Values
}

// failure is how a call failed.
type failure struct {
	err     error
	culprit bool // err is the death of the worker while it ran this call
}

// add records the values of calls first on.
func (o *outcomes) add(first int, vals wire.Values) {
	if o.parts == nil {
		o.parts = o.one[:0]
	}
	o.parts = append(o.parts, part{first: first, vals: vals})
}

// fail records that call j of n failed with err.
func (o *outcomes) fail(n, j int, err error, culprit bool) {
	if o.failed == nil {
		o.failed = make([]failure, n)
	}
	o.failed[j] = failure{err: err, culprit: culprit}
}

// err is call j's error, or nil if it has not failed.
func (o *outcomes) err(j int) error {
	if o.failed == nil {
		return nil
	}
	return o.failed[j].err
}

// merge records the outcomes of a piece split from the batch (see
// requeuePieces) as those of its calls from at on.
func (o *outcomes) merge(n, at int, piece *outcomes) {
	for _, pt := range piece.parts {
		o.add(at+pt.first, pt.vals)
	}
	for j, f := range piece.failed {
		if f.err != nil {
			o.fail(n, at+j, f.err, f.culprit)
		}
	}
}

// cursor reads the outcomes of a batch's calls in order.
type cursor struct {
	o *outcomes
	k int // the part that holds the call read last, or one before it
}

// cursor returns a cursor at the first call.
func (o *outcomes) cursor() cursor {
	// Parts come in order but for pieces of a lost chunk, which finish as
	// they may.
	if !slices.IsSortedFunc(o.parts, byFirst) {
		slices.SortStableFunc(o.parts, byFirst)
	}
	return cursor{o: o}
}

// at returns how call j ended: its failure, or else its value. Each call
// of at must ask for a later call than the one before.
func (c *cursor) at(j int) (value []byte, f failure) {
	if c.o.failed != nil {
		f = c.o.failed[j]
	}
	parts := c.o.parts
	for c.k < len(parts) && j >= parts[c.k].first+parts[c.k].vals.Len() {
		c.k++
	}
	if c.k < len(parts) && j >= parts[c.k].first {
		value = parts[c.k].vals.At(j - parts[c.k].first)
	}
	return value, f
}

func byFirst(a, b part) int { return a.first - b.first }
