package wire

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
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

// TestDirectPoll: a read that polls finds what is written while it polls,
// without sleeping meanwhile; once its poll is over, it waits in the poller
// as any read, for data or its deadline.
func TestDirectPoll(t *testing.T) {
	t.Run("finds what arrives", func(t *testing.T) {
		_, _, dr, dw := directPipe(t)
		dr.(*direct).setPoll(time.Minute)
		go func() {
			time.Sleep(50 * time.Millisecond)
			dw.Write([]byte("x"))
		}()
		got := make([]byte, 1)
		start := time.Now()
		cpu := threadCPU(t, func() {
			_, err := dr.Read(got)
			require.NoError(t, err)
		})
		assert.Equal(t, "x", string(got))
		assert.Less(t, time.Since(start), 30*time.Second, "it returns when the data comes, not when the poll ends")
		assert.GreaterOrEqual(t, cpu, 5*time.Millisecond, "it polled for the 50 ms rather than sleep")
	})
	t.Run("then waits", func(t *testing.T) {
		_, _, dr, dw := directPipe(t)
		dr.(*direct).setPoll(2 * time.Millisecond)
		go func() {
			time.Sleep(300 * time.Millisecond)
			dw.Write([]byte("y"))
		}()
		got := make([]byte, 1)
		cpu := threadCPU(t, func() {
			_, err := dr.Read(got)
			require.NoError(t, err)
		})
		assert.Equal(t, "y", string(got))
		assert.Less(t, cpu, 150*time.Millisecond, "it slept once its 2 ms poll was over")
	})
	t.Run("deadline", func(t *testing.T) {
		r, _, dr, _ := directPipe(t)
		dr.(*direct).setPoll(5 * time.Millisecond)
		require.NoError(t, r.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
		_, err := dr.Read(make([]byte, 8))
		assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	})
}

// threadCPU runs f on a thread of its own and returns the CPU time that
// thread spent in it.
func threadCPU(t *testing.T, f func()) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var before, after unix.Rusage
	require.NoError(t, unix.Getrusage(unix.RUSAGE_THREAD, &before))
	f()
	require.NoError(t, unix.Getrusage(unix.RUSAGE_THREAD, &after))
	return time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
}
