package wire

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// directPipe returns the ends of a pipe (non-blocking, in the poller, as
// os.Pipe makes them) and their Direct forms.
func directPipe(t *testing.T) (r, w *os.File, dr, dw io.ReadWriter) {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { r.Close(); w.Close() })
	dr, dw = Direct(r), Direct(w)
	require.NotSame(t, r, dr, "a pipe of os.Pipe is non-blocking")
	return r, w, dr, dw
}

// TestDirectCarriesMoreThanThePipeHolds: 4 MiB through a pipe of 64 KiB,
// so that both sides wait for the other in the poller many times.
func TestDirectCarriesMoreThanThePipeHolds(t *testing.T) {
	_, w, dr, dw := directPipe(t)
	want := make([]byte, 4<<20)
	for i := range want {
		want[i] = byte(rand.Uint32())
	}
	done := make(chan error, 1)
	go func() {
		n, err := dw.Write(want)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		w.Close()
		done <- err
	}()
	got, err := io.ReadAll(dr) // ends at io.EOF once the writer closed
	require.NoError(t, err)
	require.NoError(t, <-done)
	assert.True(t, bytes.Equal(want, got), "read %d bytes, not the %d written", len(got), len(want))
}

// TestDirectEnds: a read waiting for data ends with os.ErrClosed when its
// file is closed, with os.ErrDeadlineExceeded at a deadline, and a write
// to a pipe no one reads fails with EPIPE.
func TestDirectEnds(t *testing.T) {
	t.Run("close", func(t *testing.T) {
		r, _, dr, _ := directPipe(t)
		go func() {
			time.Sleep(20 * time.Millisecond)
			r.Close()
		}()
		_, err := dr.Read(make([]byte, 8))
		assert.ErrorIs(t, err, os.ErrClosed)
	})
	t.Run("deadline", func(t *testing.T) {
		r, _, dr, _ := directPipe(t)
		require.NoError(t, r.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
		_, err := dr.Read(make([]byte, 8))
		assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	})
	t.Run("no reader", func(t *testing.T) {
		r, _, _, dw := directPipe(t)
		r.Close()
		_, err := dw.Write([]byte("x"))
		assert.ErrorIs(t, err, syscall.EPIPE)
	})
}

// TestDirectLeavesBlockingFilesAlone: a raw call on a blocking descriptor
// could block the whole process, so Direct returns such a file as it is.
func TestDirectLeavesBlockingFilesAlone(t *testing.T) {
	var fds [2]int
	require.NoError(t, unix.Pipe(fds[:]))
	r, w := os.NewFile(uintptr(fds[0]), "r"), os.NewFile(uintptr(fds[1]), "w")
	defer r.Close()
	defer w.Close()
	assert.Same(t, r, Direct(r))
	assert.Same(t, w, Direct(w))
}
