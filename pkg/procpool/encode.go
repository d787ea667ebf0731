package procpool

import (
	"bytes"
	"fmt"

	"github.com/procpool/procpool/internal/codec"
)

// argEncoder encodes the arguments of one task into a reused arena and
// hands them out as the arguments of a batch, in a buffer of their own.
// Submit, Map, Imap and Bind all encode through it.
type argEncoder struct {
	task     string
	maxFrame int // the frame limit an argument must fit in; 0: no check
	c        *codec.Codec
	spans    [][2]int // where each argument added and not taken lies in the arena
}

// add encodes v after the arguments already added. A value that cannot be
// encoded, or does not fit in a frame, is a *[CodecError] and adds nothing.
func (e *argEncoder) add(v any) error {
	start := e.c.Len()
	a, err := e.c.Encode(v)
	if err == nil && e.maxFrame > 0 {
		if n := runFrameSize(e.task, 1, len(a)); n > e.maxFrame {
			err = fmt.Errorf("encoded argument of %d bytes does not fit in a frame of %d bytes (Config.MaxFrameSize): %w", len(a), e.maxFrame, ErrFrameTooLarge)
			e.c.Truncate(start)
		}
	}
	if err != nil {
		return &CodecError{Task: e.task, Stage: EncodeArgument, Message: err.Error(), Err: err}
	}
	e.spans = append(e.spans, [2]int{start, e.c.Len()})
	return nil
}

// count is the number of arguments added and not taken.
func (e *argEncoder) count() int { return len(e.spans) }

// size is the encoded size of argument i of those not taken.
func (e *argEncoder) size(i int) int { return e.spans[i][1] - e.spans[i][0] }

// take returns the first n arguments not taken, in one new buffer, and
// forgets them.
func (e *argEncoder) take(n int) [][]byte {
	if n == 0 {
		return nil
	}
	end := e.spans[n-1][1]
	buf := bytes.Clone(e.c.Bytes()[:end])
	args := make([][]byte, n)
	for i, sp := range e.spans[:n] {
		args[i] = buf[sp[0]:sp[1]:sp[1]]
	}
	e.spans = e.spans[:copy(e.spans, e.spans[n:])]
	for i := range e.spans {
		e.spans[i][0] -= end
		e.spans[i][1] -= end
	}
	e.c.Discard(end)
	return args
}

// runFrameSize bounds the size of a Run frame with n arguments of total
// size argBytes: the envelope, plus a byte-string header per argument.
func runFrameSize(task string, n, argBytes int) int { return 32 + len(task) + 5*n + argBytes }
