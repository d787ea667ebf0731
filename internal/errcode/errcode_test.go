package errcode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCodesRoundTrip(t *testing.T) {
	mine := errors.New("errcode test: quota exceeded")
	Register(mine)
	for _, want := range []error{context.Canceled, context.DeadlineExceeded, os.ErrDeadlineExceeded, fs.ErrNotExist, fs.ErrExist, fs.ErrPermission, io.EOF, io.ErrUnexpectedEOF, mine} {
		wrapped := fmt.Errorf("doing things: %w", want)
		back := errors.Join(Errors(Codes(wrapped))...)
		assert.ErrorIs(t, back, want, "%v", want)
	}
	_, err := os.Open("/no/such/file")
	assert.Equal(t, []string{"fs.ErrNotExist"}, Codes(err), "a *PathError matches fs.ErrNotExist")
	assert.Nil(t, Codes(errors.New("plain")))
	assert.Empty(t, Errors([]string{"user:from another build"}))
	assert.Panics(t, func() { Register(errors.New("errcode test: quota exceeded")) }, "the same text twice")
}
