package procpool

import (
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"

	"github.com/procpool/procpool/internal/wire"
)

// killConn is a conn that only records the kills it is asked for.
type killConn struct {
	conn  // the methods the watcher never calls: nil, and a panic if it did
	kills []string
}

func (c *killConn) kill(why string) { c.kills = append(c.kills, why) }

// TestJudgeMemory: the watcher charges a call for the memory it adds, as it
// reads it over the memory-watch periods: a call that crosses the limit is
// killed; one that finds its worker over the limit already, left so by the
// calls before it, only if it adds a quarter of the limit.
func TestJudgeMemory(t *testing.T) {
	const limit = 100 << 20
	type read struct {
		index int   // the call running, in run 1
		rss   int64 // MiB
		kill  bool  // the read must kill the worker
	}
	for _, tc := range []struct {
		name  string
		reads []read
	}{
		{"crosses the limit", []read{{0, 40, false}, {0, 90, false}, {0, 130, true}}},
		{"first read over the limit, then grows", []read{{0, 120, false}, {0, 140, false}, {0, 146, true}}},
		{"left over the limit by the call before", []read{{0, 60, false}, {1, 300, false}, {1, 310, false}, {1, 300, false}, {1, 324, false}}},
		{"left over the limit, and grows a quarter more", []read{{1, 300, false}, {1, 326, true}}},
		{"each call its own: a quick bloater, then a slow call", []read{{0, 40, false}, {1, 200, false}, {1, 210, false}, {2, 210, false}, {2, 240, true}}},
		{"under the limit", []read{{0, 40, false}, {0, 100, false}, {1, 100, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Pool{cfg: Config{MaxMemoryPerWorker: limit}}
			c := &killConn{}
			m := &member{p: p, conn: c, log: hclog.NewNullLogger(), isReady: true}
			m.held = []*batch{{id: 1, task: "grow", args: wire.ValuesOf(nil, nil, nil)}}
			for i, r := range tc.reads {
				p.judgeMemory(memorySample{m: m, rss: r.rss << 20, call: callRef{1, r.index}, byName: true})
				killed := len(c.kills) > 0
				assert.Equal(t, r.kill, killed, "read %d: %d MiB in call %d", i, r.rss, r.index)
				if killed {
					assert.Equal(t, r.rss<<20, m.memKilled)
					assert.True(t, m.retiring, "no more work for a worker being killed")
					assert.Equal(t, []string{"resident memory " + mib(r.rss<<20) + ", over MaxMemoryPerWorker 100 MiB"}, c.kills)
					return
				}
			}
		})
	}
}

// A *MemoryLimitError says how far the worker grew, in the units people
// read memory in, and matches ErrMemoryLimit and the worker's end.
func TestMemoryLimitError(t *testing.T) {
	exit := &WorkerExitError{PID: 1234, ExitCode: -1, Signal: "SIGKILL"}
	err := error(&MemoryLimitError{RSS: 612<<20 + 400<<10, Limit: 200 << 20, Exit: exit})
	assert.Equal(t, "procpool: worker pid 1234 used 612.4 MiB, over MaxMemoryPerWorker 200 MiB", err.Error())
	assert.ErrorIs(t, err, ErrMemoryLimit)
	assert.NotErrorIs(t, err, ErrWorkerLost)
	var got *WorkerExitError
	assert.ErrorAs(t, err, &got)
	assert.Same(t, exit, got)
	assert.Equal(t, "procpool: worker used 4096 bytes, over MaxMemoryPerWorker 1 MiB", (&MemoryLimitError{RSS: 4096, Limit: 1 << 20}).Error())
	assert.NoError(t, (&MemoryLimitError{}).Unwrap(), "no exit: not a nil *WorkerExitError")
}
