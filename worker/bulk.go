package worker

import (
	"context"
	"slices"
	"time"

	"github.com/procpool/procpool/internal/registry"
	"github.com/procpool/procpool/internal/wire"
)

// runBulk runs the calls of r in order, from the first, while they succeed
// through bulk: each result is encoded straight into x.vals, the buffer a
// Result of Values is written from, so that a chunk of tiny calls costs no
// Item per call and no copy of each value into the frame. Parts go out as
// Execute's would, at the same bounds; the bytes on the wire are the same.
//
// It returns calls once every call is done, with the last part in x.res,
// not yet emitted. Otherwise it stops at call i, which did not succeed the
// fast way (pre is its outcome), or which is not to run (pre is nil): x.res
// then holds the outcomes before it as Items, for Execute to go on with.
// size is what those Items count towards the frame budget, and journaled
// whether the journal holds the outcome of the last call run.
func (x *Executor) runBulk(ctx context.Context, deadline time.Time, r *wire.Run, bulk registry.Bulk, emit Emit) (i int, pre *wire.Item, size int, journaled bool, err error) {
	res, vals := &x.res, &x.vals
	vals.Buf, vals.Span = vals.Buf[:0], vals.Span[:0]
	x.items, res.Items = res.Items[:0], nil // a Result of Values (see Result.encode)
	journaled = true
	calls := r.Args.Len()
	var it wire.Item
	for i = range calls {
		x.j.Start(r.ID, i)
		if ctx.Err() != nil || !deadline.IsZero() && !time.Now().Before(deadline) {
			x.leaveBulk()
			return i, nil, size, journaled, nil
		}
		if !bulk(ctx, x.c, r.Args.At(i), vals, &it) {
			x.leaveBulk()
			return i, &it, size, journaled, nil
		}
		n := len(vals.Span)
		start := vals.Span[n-2]
		v := vals.Buf[start:]
		if len(v)+16 > x.budget { // too large: the item path says so
			vals.Buf, vals.Span = vals.Buf[:start-2], vals.Span[:n-2]
			it = wire.Item{Value: v}
			x.leaveBulk()
			return i, &it, size, journaled, nil
		}
		if size+len(v)+16 > x.budget {
			// The values before it fill a frame: they go as a part, and
			// it moves to the front of the buffer.
			res.Values = vals.Slice(0, n/2-1)
			if err := x.emitValues(res, emit, false); err != nil {
				return i, nil, 0, journaled, err
			}
			vals.Buf = append(vals.Buf[:0], vals.Buf[start-2:]...)
			vals.Span = append(vals.Span[:0], 2, uint32(len(vals.Buf)))
			v, n = vals.Buf[2:], 2
			size = 0
		}
		size += len(v) + 16
		// As in Execute: an outcome the journal cannot hold goes to the
		// parent now, and a long run streams its results in parts.
		journaled = x.j.DoneOK(r.ID, i, v)
		if (!journaled || n == 2*partItems) && i < calls-1 {
			res.Values = *vals
			if err := x.emitValues(res, emit, true); err != nil {
				return i, nil, 0, journaled, err
			}
			vals.Buf, vals.Span = vals.Buf[:0], vals.Span[:0]
			size = 0
		}
	}
	res.Values = *vals
	return calls, nil, size, journaled, nil
}

// emitValues emits res, a Result of Values, as a part.
func (x *Executor) emitValues(res *wire.Result, emit Emit, flush bool) error {
	res.More = true
	err := x.emit(res, emit, flush)
	res.More, res.Values = false, wire.Values{}
	return err
}

// leaveBulk turns the values of the part being built into the Items of
// x.res, for Execute to go on with call by call.
func (x *Executor) leaveBulk() {
	res, vals := &x.res, &x.vals
	res.Items = slices.Grow(x.items[:0], vals.Len()+1) // not nil: a Result of Items
	for k := range vals.Len() {
		res.Items = append(res.Items, wire.Item{Value: vals.At(k)})
	}
	res.Values = wire.Values{}
}
