//go:build unix

package procpool_test

// Register: duplicate names panic; parent and workers must have the same tasks.

import (
	"context"
	"fmt"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

func TestDuplicateRegistrationPanics(t *testing.T) {
	defer func() {
		msg := fmt.Sprint(recover())
		assert.Contains(t, msg, `procpool: task "test.square" registered twice: at `)
		assert.Contains(t, msg, "tasks_test.go")
		assert.Contains(t, msg, "register_test.go")
	}()
	procpool.Register("test.square", func(_ context.Context, x int) (int, error) { return x, nil })
}

func TestTaskSetsMustMatch(t *testing.T) {
	noLeaks(t)
	_, err := procpool.New(procpool.Config{Workers: 1, Env: []string{"PROCPOOL_TEST_EXTRA_TASK=1"}, Logger: hclog.NewNullLogger()})
	require.ErrorIs(t, err, procpool.ErrStartup)
	assert.Contains(t, err.Error(), `unknown to the pool: ["test.extra(int) int"]`)
}
