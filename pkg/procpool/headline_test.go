//go:build unix

package procpool_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/procpool/procpool/pkg/procpool"
)

// RaiseSignal sends the worker a signal of its own, outside any Go fault:
// for SIGABRT the runtime prints "SIGABRT: abort", every goroutine's stack
// and the registers, as for a signal in C code, and exits with status 2.
var RaiseSignal = procpool.Register("test.raise-signal", func(_ context.Context, sig int) (struct{}, error) {
	unix.Kill(os.Getpid(), unix.Signal(sig))
	time.Sleep(time.Hour)
	return struct{}{}, nil
})

// TestWorkerExitErrorHeadline checks the error's text: how the worker
// ended, then the headline of what it printed.
func TestWorkerExitErrorHeadline(t *testing.T) {
	registers := "rax    0x0\nrbx    0xc000012345\nrflags 0x10246\ncs     0x33\nfs     0x0\ngs     0x0\n"
	for _, tc := range []struct {
		name string
		err  procpool.WorkerExitError
		want string
	}{
		{"no stderr", procpool.WorkerExitError{PID: 7, ExitCode: 1}, "worker pid 7 exited with code 1"},
		{"last line", procpool.WorkerExitError{PID: 7, ExitCode: 1, Stderr: "loading\nno such model\n"}, "worker pid 7 exited with code 1: no such model"},
		{"panic", procpool.WorkerExitError{PID: 7, ExitCode: 2, Held: 3, Stderr: "panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n"},
			"worker pid 7 exited with code 2 holding 3 call(s): panic: boom"},
		{"nil dereference", procpool.WorkerExitError{PID: 7, ExitCode: 2, Stderr: "panic: runtime error: invalid memory address or nil pointer dereference\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4b49c5]\n\ngoroutine 1 [running]:\n"},
			"worker pid 7 exited with code 2: panic: runtime error: invalid memory address or nil pointer dereference [signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4b49c5]"},
		// A signal in C code: the report ends in the registers.
		{"SIGSEGV in C", procpool.WorkerExitError{PID: 7, ExitCode: 2, Stderr: "SIGSEGV: segmentation violation\nPC=0x4b5460 m=0 sigcode=1 addr=0x0\nsignal arrived during cgo execution\n\ngoroutine 1 gp=0x20f5d7c541e0 m=0 mp=0x5b1580 [syscall]:\nruntime.cgocall(0x4b5460, 0x20f5d7c9ce00)\n\n" + registers},
			"worker pid 7 exited with code 2: SIGSEGV: segmentation violation"},
		{"flags parsed before Main", procpool.WorkerExitError{PID: 7, Host: "ssh build1", ExitCode: 2, Stderr: "flag provided but not defined: -procpool-worker\nUsage of /srv/resizer:\n  -v\tverbose\n"},
			"worker pid 7 on ssh build1 exited with code 2: flag provided but not defined: -procpool-worker"},
		{"killed", procpool.WorkerExitError{PID: 7, ExitCode: -1, Signal: "SIGKILL", Reason: "garbled frame", Stderr: "\n"},
			"worker pid 7 killed by SIGKILL (garbled frame)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.err.Error())
		})
	}
}

// TestCrashBySignalHeadline: a worker that raises SIGABRT dies with a crash
// report that ends in its registers; the error names the signal, not the
// last register.
func TestCrashBySignalHeadline(t *testing.T) {
	p, err := procpool.New(procpool.Config{Workers: 1, Logger: hclog.NewNullLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { p.Terminate() })
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	_, err = RaiseSignal.Submit(p, int(unix.SIGABRT)).Get(c)
	var exit *procpool.WorkerExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 2, exit.ExitCode, "the runtime reports the signal and exits")
	assert.True(t, strings.HasPrefix(exit.Stderr, "SIGABRT: abort\n"), "stderr: %s", exit.Stderr)
	assert.Equal(t, "SIGABRT: abort", exit.Headline())
	assert.True(t, strings.HasSuffix(exit.Error(), ": SIGABRT: abort"), exit.Error())
}
