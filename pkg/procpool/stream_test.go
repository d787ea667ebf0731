//go:build unix

package procpool_test

// Worker stdio: tasks cannot corrupt the protocol, and their logs keep levels.

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

func TestWorkerStreamsAreProtected(t *testing.T) {
	p, logs := newPool(t, procpool.Config{Workers: 1})
	pid, err := PID.Submit(p, struct{}{}).Get(ctx(t))
	require.NoError(t, err)
	for range 3 {
		got, err := Stdio.Submit(p, struct{}{}).Get(ctx(t))
		require.NoError(t, err)
		assert.Equal(t, "read 0 bytes of stdin", got)
	}
	v, err := Square.Submit(p, 9).Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, 81, v)
	require.NoError(t, p.Close())
	for _, line := range []string{"fmt.Println from a task", "os.Stdout.Write from a task", "from a child process", "child read done"} {
		assert.Contains(t, logs.String(), fmt.Sprintf("procpool.worker: %s: pid=%d", line, pid))
	}
}

func TestWorkerLogsKeepTheirLevel(t *testing.T) {
	p, logs := newPool(t, procpool.Config{Workers: 1})
	_, err := LogJSON.Submit(p, "disk almost full").Get(ctx(t))
	require.NoError(t, err)
	require.NoError(t, p.Close())
	assert.Regexp(t, `\[WARN\] +procpool\.worker: disk almost full: pid=\d+ module=task answer=42`, logs.String())
}
