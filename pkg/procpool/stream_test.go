//go:build unix

package procpool_test

// Worker stdio: tasks cannot corrupt the protocol, their logs keep levels,
// and a crash report reaches the log once.

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

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

// TestCrashReportLoggedOnce crashes real workers: the Go crash report
// reaches the log once, as one Error record whose message is its headline
// and whose "report" field is the report, not line by line and not again in
// the pool's record of the death, whose error ends with the headline, under
// either crash policy. The log of one crash stays short.
func TestCrashReportLoggedOnce(t *testing.T) {
	for _, tc := range []struct {
		name     string
		crash    func(t *testing.T, p *procpool.Pool) error
		headline string
	}{
		{"goroutine panic", func(t *testing.T, p *procpool.Pool) error {
			_, err := Crash.Submit(p, "goroutine-panic").Get(ctx(t))
			return err
		}, "panic: panic in a goroutine the task started"},
		// Every goroutine's stack and the registers: a hundred lines.
		{"SIGABRT", func(t *testing.T, p *procpool.Pool) error {
			_, err := RaiseSignal.Submit(p, int(unix.SIGABRT)).Get(ctx(t))
			return err
		}, "SIGABRT: abort"},
	} {
		for _, policy := range []procpool.CrashPolicy{procpool.Break, procpool.Respawn} {
			t.Run(tc.name+"/"+policy.String(), func(t *testing.T) {
				logs := &syncBuffer{}
				log := hclog.New(&hclog.LoggerOptions{Name: "procpool", Output: logs, Level: hclog.Debug, JSONFormat: true})
				p, _ := newPool(t, procpool.Config{Workers: 1, OnCrash: policy, Logger: log})
				var exit *procpool.WorkerExitError
				require.ErrorAs(t, tc.crash(t, p), &exit)
				require.Equal(t, tc.headline, exit.Headline())
				require.NoError(t, p.Close())

				recs := workerRecords(t, logs.String(), exit.PID)
				assert.Less(t, len(recs), 10, "records of the worker: %v", recs)
				dump := regexp.MustCompile(`(?m)^goroutine \d+ `)
				var report, death, withDump []map[string]any
				for _, rec := range recs {
					text := fmt.Sprint(rec)
					if strings.Contains(text, tc.headline) {
						if rec["@message"] == tc.headline {
							report = append(report, rec)
						} else {
							death = append(death, rec)
						}
					}
					if dump.MatchString(text) {
						withDump = append(withDump, rec)
					}
				}
				require.Len(t, report, 1, "records of the worker: %v", recs)
				assert.Equal(t, "error", report[0]["@level"])
				assert.Equal(t, exit.Stderr, report[0]["report"], "the whole report, as the caller gets it")
				assert.Equal(t, report, withDump, "the stacks are in the report's record alone")

				require.Len(t, death, 1, "the death's record names the headline too")
				assert.Contains(t, []string{"worker died; the pool is broken", "worker died; replacing it"}, death[0]["@message"])
				assert.True(t, strings.HasSuffix(fmt.Sprint(death[0]["error"]), ": "+tc.headline), death[0]["error"])
				assert.NotContains(t, death[0], "stderr")
			})
		}
	}
}

// workerRecords parses a JSON log and returns the records of the worker
// with pid.
func workerRecords(t *testing.T, log string, pid int) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(log, "\n"), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
		if p, ok := rec["pid"].(float64); ok && int(p) == pid {
			recs = append(recs, rec)
		}
	}
	return recs
}
