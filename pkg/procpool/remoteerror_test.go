//go:build unix

package procpool_test

// A task's error or panic comes back as a *RemoteError and costs no worker.

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

func TestTaskErrorsAreNotDeaths(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 1})
	pid, err := PID.Submit(p, struct{}{}).Get(ctx(t))
	require.NoError(t, err)

	_, err = Fail.Submit(p, "no such file").Get(ctx(t))
	var re *procpool.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, procpool.RemoteError{Task: "test.fail", Message: "no such file"}, *re)

	_, err = Panic.Submit(p, "boom").Get(ctx(t))
	require.ErrorAs(t, err, &re)
	assert.True(t, re.Panic)
	assert.Equal(t, "boom", re.Message)
	assert.Contains(t, re.Stack, "tasks_test.go", "the stack shows where the task panicked")
	assert.EqualError(t, err, `procpool: task "test.panic" panicked: boom`)

	again, err := PID.Submit(p, struct{}{}).Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, pid, again, "the same worker serves on")
	require.NoError(t, p.Close())
}
