package procpool

import (
	"fmt"

	"github.com/procpool/procpool/internal/bufpool"
	"github.com/procpool/procpool/internal/codec"
	"github.com/procpool/procpool/internal/wire"
)

// argEncoder encodes arguments of one task, of type I, into the buffer of
// one chunk, and hands them over as the arguments of a batch: slices of that
// buffer, which is theirs from then on. Submit, Map, Imap and Bind all
// encode through it.
type argEncoder[I any] struct {
	task     string
	maxFrame int            // the frame limit an argument must fit in; 0: no check
	fast     *codec.Fast[I] // nil: through c
	c        *codec.Codec
	vals     wire.Values   // the chunk being built
	last     int           // the size of the chunk taken last, to size the next
	lastN    int           // and its count of arguments
	free     []wire.Values // the arguments of finished chunks, whose buffers build the next ones
}

// add encodes *v after the arguments already added. A value that cannot be
// encoded, or does not fit in a frame, is a *[CodecError] and adds nothing.
func (e *argEncoder[I]) add(v *I) error {
	e.ready()
	start := e.vals.Begin()
	var err error
	if e.fast != nil {
		e.vals.Buf = e.fast.Append(e.vals.Buf, v)
	} else {
		e.vals.Buf, err = e.c.EncodeTo(e.vals.Buf, *v)
	}
	return e.end(start, err)
}

// addAll adds the values of vs in order, as add does each, until the
// arguments reach maxBytes, but for the first. It returns how many it
// added, and the error of the one after them, if that is why it stopped.
// One loop over a chunk spares each tiny value add's call and checks.
func (e *argEncoder[I]) addAll(vs []I, maxBytes int) (int, error) {
	if e.fast == nil {
		for i := range vs {
			if i > 0 && e.size() >= maxBytes {
				return i, nil
			}
			if err := e.add(&vs[i]); err != nil {
				return i, err
			}
		}
		return len(vs), nil
	}
	e.ready()
	for i := range vs {
		if i > 0 && len(e.vals.Buf) >= maxBytes {
			return i, nil
		}
		start := e.vals.Begin()
		e.vals.Buf = e.fast.Append(e.vals.Buf, &vs[i])
		if e.maxFrame > 0 && runFrameSize(e.task, 1, len(e.vals.Buf)-start) > e.maxFrame {
			return i, e.end(start, nil) // the error
		}
		e.vals.End(start)
	}
	return len(vs), nil
}

// ready gives a new chunk the buffers of a finished one, or buffers a
// little larger than the last one from the pool (see [wire.Recycle]).
func (e *argEncoder[I]) ready() {
	switch n := len(e.free); {
	case cap(e.vals.Buf) > 0:
	case n > 0:
		e.vals = wire.Values{Buf: e.free[n-1].Buf[:0], Span: e.free[n-1].Span[:0]}
		e.free = e.free[:n-1]
	case e.last > 0:
		e.vals = wire.Values{
			Buf:  bufpool.Bytes.Get(e.last + e.last/8)[:0],
			Span: bufpool.Spans.Get(2 * (e.lastN + e.lastN/8))[:0],
		}
	}
}

// end ends the argument begun at start, whose encoding ended with err:
// one that failed, or does not fit in a frame, is a *[CodecError] and is
// dropped.
func (e *argEncoder[I]) end(start int, err error) error {
	if n := len(e.vals.Buf) - start; err == nil && e.maxFrame > 0 && runFrameSize(e.task, 1, n) > e.maxFrame {
		err = fmt.Errorf("encoded argument of %d bytes does not fit in a frame of %d bytes (Config.MaxFrameSize): %w", n, e.maxFrame, ErrFrameTooLarge)
	}
	if err != nil {
		e.vals.Drop(start)
		return &CodecError{Task: e.task, Stage: EncodeArgument, Message: err.Error(), Err: err}
	}
	e.vals.End(start)
	return nil
}

// count is the number of arguments added and not taken.
func (e *argEncoder[I]) count() int { return e.vals.Len() }

// size is the encoded size of the arguments added and not taken.
func (e *argEncoder[I]) size() int { return len(e.vals.Buf) }

// take returns the arguments added, which are theirs to keep, and starts
// a new chunk.
func (e *argEncoder[I]) take() wire.Values {
	args := e.vals
	if args.Len() == 0 {
		return wire.Values{}
	}
	e.last, e.lastN = len(args.Buf), args.Len()
	e.vals = wire.Values{}
	return args
}

// maxFree bounds the buffers an encoder keeps for its later chunks.
const maxFree = 8

// recycle gives back the arguments of a chunk that nothing reads any more,
// to build a later chunk in: a Map of large arguments then allocates for
// its window, not for its input. Kept here rather than only in the pool,
// which the GC may empty at any time, it is sure to be reused.
func (e *argEncoder[I]) recycle(args wire.Values) {
	if cap(args.Buf) >= e.last && len(e.free) < maxFree {
		e.free = append(e.free, args)
		return
	}
	wire.Recycle(args)
}

// release gives the buffers the encoder kept to the pool, for other Maps.
func (e *argEncoder[I]) release() {
	for _, vs := range e.free {
		wire.Recycle(vs)
	}
	e.free = nil
}

// runFrameSize bounds the size of a Run frame with n arguments of total
// size argBytes: the envelope, plus a byte-string header per argument.
func runFrameSize(task string, n, argBytes int) int { return 32 + len(task) + 5*n + argBytes }
