package procpool

import (
	"fmt"

	"github.com/procpool/procpool/internal/codec"
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
	buf      []byte   // the chunk being built
	ends     []int    // where each argument in buf ends
	last     int      // the size of the chunk taken last, to size the next
	free     [][]byte // buffers of finished chunks, to build the next ones in
}

// add encodes *v after the arguments already added. A value that cannot be
// encoded, or does not fit in a frame, is a *[CodecError] and adds nothing.
func (e *argEncoder[I]) add(v *I) error {
	start := len(e.buf)
	if start == 0 && cap(e.buf) == 0 {
		if n := len(e.free); n > 0 {
			e.buf, e.free = e.free[n-1], e.free[:n-1]
		} else if e.last > 0 {
			e.buf = make([]byte, 0, e.last)
		}
	}
	var err error
	if e.fast != nil {
		e.buf = e.fast.Append(e.buf, v)
	} else {
		e.buf, err = e.c.EncodeTo(e.buf, *v)
	}
	if n := len(e.buf) - start; err == nil && e.maxFrame > 0 && runFrameSize(e.task, 1, n) > e.maxFrame {
		err = fmt.Errorf("encoded argument of %d bytes does not fit in a frame of %d bytes (Config.MaxFrameSize): %w", n, e.maxFrame, ErrFrameTooLarge)
	}
	if err != nil {
		e.buf = e.buf[:start]
		return &CodecError{Task: e.task, Stage: EncodeArgument, Message: err.Error(), Err: err}
	}
	e.ends = append(e.ends, len(e.buf))
	return nil
}

// count is the number of arguments added and not taken.
func (e *argEncoder[I]) count() int { return len(e.ends) }

// size is the encoded size of the arguments added and not taken.
func (e *argEncoder[I]) size() int { return len(e.buf) }

// take returns the arguments added, and the buffer they are slices of, and
// starts a new chunk.
func (e *argEncoder[I]) take() (args [][]byte, buf []byte) {
	if len(e.ends) == 0 {
		return nil, nil
	}
	args = make([][]byte, len(e.ends))
	start := 0
	for i, end := range e.ends {
		args[i] = e.buf[start:end:end]
		start = end
	}
	buf, e.last = e.buf, len(e.buf)
	e.buf, e.ends = nil, e.ends[:0]
	return args, buf
}

// maxFree bounds the buffers an encoder keeps for later chunks.
const maxFree = 8

// recycle gives back the buffer of a chunk whose arguments nothing reads
// any more, to build a later chunk in: a Map of large arguments then
// allocates for its window, not for its input.
func (e *argEncoder[I]) recycle(buf []byte) {
	if cap(buf) >= e.last && len(e.free) < maxFree {
		e.free = append(e.free, buf[:0])
	}
}

// runFrameSize bounds the size of a Run frame with n arguments of total
// size argBytes: the envelope, plus a byte-string header per argument.
func runFrameSize(task string, n, argBytes int) int { return 32 + len(task) + 5*n + argBytes }
