package wire

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// pipeSize returns the capacity of f's pipe, asked without GrowPipe.
func pipeSize(t *testing.T, f *os.File) int {
	t.Helper()
	rc, err := f.SyscallConn()
	require.NoError(t, err)
	var n int
	require.NoError(t, rc.Control(func(fd uintptr) { n, err = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0) }))
	require.NoError(t, err)
	return n
}

func newPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// fill writes to w until its pipe is full and returns how much it took:
// the pipe's capacity. The write deadline works only while the file is
// still in the runtime's non-blocking mode, so this also shows that
// GrowPipe left it there.
func fill(t *testing.T, w *os.File, max int) int {
	t.Helper()
	require.NoError(t, w.SetWriteDeadline(time.Now().Add(200*time.Millisecond)))
	n, err := w.Write(make([]byte, max))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.NoError(t, w.SetWriteDeadline(time.Time{}))
	return n
}

func pipeMax(t *testing.T) int {
	t.Helper()
	max := pipeMaxSize()
	require.Positive(t, max, "/proc/sys/fs/pipe-max-size")
	return max
}

func TestGrowPipe(t *testing.T) {
	want := min(1<<20, pipeMax(t))
	r, w := newPipe(t)
	before := pipeSize(t, w)

	got, err := GrowPipe(w, want)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, got, pipeSize(t, r), "both ends share the pipe")
	require.Equal(t, got, fill(t, w, 2*got), "a writer fills the whole pipe without a reader")

	// It does not shrink, and asking for less or nothing changes nothing.
	for _, size := range []int{before, 4096, 0, -1} {
		n, err := GrowPipe(r, size)
		require.NoError(t, err)
		require.Equal(t, got, n, "size %d", size)
	}
	require.Equal(t, got, pipeSize(t, w))

	// The data is intact across the growth.
	b := make([]byte, got)
	_, err = io.ReadFull(r, b)
	require.NoError(t, err)
	require.Equal(t, make([]byte, got), b)
}

// TestGrowPipeRefused asks for more than the system gives: the pipe keeps
// working at the size it had or a larger one, GrowPipe says which, and
// nothing crashes.
func TestGrowPipeRefused(t *testing.T) {
	// 1<<32 + 4096 would be 4096 to a kernel that reads 32 bits.
	for _, size := range []uint64{1<<32 + 4096, math.MaxInt64} {
		if size > math.MaxInt {
			continue
		}
		_, w := newPipe(t)
		before := pipeSize(t, w)
		got, err := GrowPipe(w, int(size))
		t.Logf("size %d: got %d, %v", size, got, err)
		require.Equal(t, pipeSize(t, w), got)
		require.GreaterOrEqual(t, got, before)
	}

	f, err := os.CreateTemp(t.TempDir(), "not-a-pipe")
	require.NoError(t, err)
	defer f.Close()
	got, err := GrowPipe(f, 1<<20)
	require.ErrorIs(t, err, unix.EBADF)
	require.Zero(t, got)

	_, w := newPipe(t)
	w.Close()
	_, err = GrowPipe(w, 1<<20)
	require.Error(t, err)
}

// envPipeChild marks the copy of this test run as an unprivileged user.
const envPipeChild = "WIRE_TEST_UNPRIVILEGED_PIPE"

// TestGrowPipeUnprivileged asks for more than pipe-max-size as a process
// without CAP_SYS_RESOURCE, which may not exceed it: when this one has the
// capability, it runs the test again as user nobody.
func TestGrowPipeUnprivileged(t *testing.T) {
	if os.Getenv(envPipeChild) == "" && hasCapability(t, unix.CAP_SYS_RESOURCE) {
		runUnprivileged(t)
		return
	}
	max := pipeMax(t)
	_, w := newPipe(t)
	got, err := GrowPipe(w, 4*max)
	if err != nil {
		// The user's pipes are over pipe-user-pages-soft: no growth at all.
		require.ErrorIs(t, err, unix.EPERM)
		require.Equal(t, pipeSize(t, w), got)
		t.Skipf("this user may not grow pipes now: %v", err)
	}
	require.Equal(t, max, got, "GrowPipe settles for pipe-max-size")
	require.Equal(t, max, pipeSize(t, w))
	require.Equal(t, max, fill(t, w, 2*max))
}

// hasCapability reports whether this process has capability c in effect.
func hasCapability(t *testing.T, c int) bool {
	status, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for line := range strings.Lines(string(status)) {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			require.NoError(t, err)
			return caps&(1<<c) != 0
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return false
}

// runUnprivileged runs TestGrowPipeUnprivileged in a copy of the test
// binary, as user nobody, where the user can read it.
func runUnprivileged(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	bin, err := os.ReadFile(exe)
	require.NoError(t, err)
	dir, err := os.MkdirTemp("", "wire-pipe-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	copied := filepath.Join(dir, "wire.test")
	require.NoError(t, os.WriteFile(copied, bin, 0o755))

	cmd := exec.Command(copied, "-test.run=^TestGrowPipeUnprivileged$", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), envPipeChild+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var pathErr *os.PathError
	if errors.As(err, &pathErr) || errors.Is(err, syscall.EPERM) {
		t.Skipf("cannot run as user nobody: %v", err)
	}
	require.NoError(t, err, "%s", out.String())
	t.Logf("as user nobody:\n%s", out.String())
}

// BenchmarkPipeSize writes frames through a pipe of the default size and
// one of 1 MiB to a goroutine that reads and decodes them, as the other
// side of a worker's pipe does.
func BenchmarkPipeSize(b *testing.B) {
	big := [][]byte{bytes.Repeat([]byte{0x5a}, 1<<20)}
	for _, size := range []int{0, 1 << 20} {
		for _, m := range []struct {
			name string
			msg  Message
		}{
			{"Run/1x1MiB", benchRun(big)},
			{"Result/100000x1B", benchResult(benchShapes[1].values)},
		} {
			name := "default"
			if size > 0 {
				name = strconv.Itoa(size>>10) + "KiB"
			}
			b.Run("pipe="+name+"/"+m.name, func(b *testing.B) {
				pr, pw, err := os.Pipe()
				require.NoError(b, err)
				if size > 0 {
					got, err := GrowPipe(pw, size)
					require.NoError(b, err)
					require.Equal(b, size, got)
				}
				done := make(chan error, 1)
				go func() {
					r, d := NewReader(pr, DefaultMaxFrame), NewDecoder()
					for {
						body, err := r.ReadFrame()
						if err == nil {
							_, err = d.Decode(body)
						}
						if err != nil {
							done <- err
							return
						}
					}
				}()
				benchWrite(b, pw, m.msg)
				pw.Close()
				require.Equal(b, io.EOF, <-done)
				pr.Close()
			})
		}
	}
}
