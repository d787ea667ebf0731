package stderrlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// forward runs a Forwarder over stderr with a JSON logger, so each record
// can be checked field by field, and returns the Forwarder and the records.
func forward(t *testing.T, stderr string) (*Forwarder, []map[string]any) {
	t.Helper()
	var out bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Name: "pool", Level: hclog.Trace, JSONFormat: true, Output: &out}).With("pid", 7)
	f := New(log)
	f.Run(strings.NewReader(stderr))

	var recs []map[string]any
	dec := json.NewDecoder(&out)
	for dec.More() {
		var rec map[string]any
		require.NoError(t, dec.Decode(&rec))
		recs = append(recs, rec)
	}
	return f, recs
}

func messages(recs []map[string]any) []string {
	var msgs []string
	for _, r := range recs {
		msgs = append(msgs, r["@message"].(string))
	}
	return msgs
}

func TestPlainLines(t *testing.T) {
	tests := []struct {
		name   string
		stderr string
		want   []string
	}{
		{"lines", "first\nsecond\n", []string{"first", "second"}},
		{"no final newline", "first\nlast", []string{"first", "last"}},
		{"crlf", "first\r\nsecond\r\n", []string{"first", "second"}},
		{"blank line kept", "a\n\nb\n", []string{"a", "", "b"}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, recs := forward(t, tt.stderr)
			require.Equal(t, tt.want, messages(recs))
			for _, r := range recs {
				assert.Equal(t, "info", r["@level"])
				assert.Equal(t, "pool", r["@module"])
				assert.EqualValues(t, 7, r["pid"])
			}
			assert.Equal(t, strings.Join(tt.want, "\n"), f.Tail())
		})
	}
}

// TestCrash puts a crash report after far more output than the tail keeps:
// the report must still be whole, since its first line names the failure.
func TestCrash(t *testing.T) {
	tests := []struct {
		name   string
		report string
	}{
		{"panic", "panic: runtime error: index out of range [3] with length 3\n\ngoroutine 1 [running]:\nmain.main()\n\t/src/main.go:9 +0x1d\nexit status 2"},
		{"fatal error", "fatal error: concurrent map writes\n\ngoroutine 5 [running]:\nmain.worker()\n\t/src/main.go:20 +0x45"},
		{"signal", "SIGSEGV: segmentation violation\nPC=0x0 m=0 sigcode=1\n\ngoroutine 1 [running]:"},
	}
	noise := strings.Repeat(strings.Repeat("n", 99)+"\n", 400) // 40 KB
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, recs := forward(t, noise+tt.report+"\n")
			require.Equal(t, tt.report, f.Tail())

			reportLines := strings.Split(tt.report, "\n")
			require.Len(t, recs, 400+len(reportLines))
			for i, r := range recs {
				want := "info"
				if i >= 400 {
					want = "error"
				}
				require.Equal(t, want, r["@level"], "record %d: %s", i, r["@message"])
			}
			require.Equal(t, reportLines, messages(recs[400:]))
		})
	}
}

// TestCrashBounded checks that a runaway report, like a dump of thousands of
// goroutines, is kept from its first line but not without end.
func TestCrashBounded(t *testing.T) {
	var report strings.Builder
	report.WriteString("panic: boom\n")
	for i := range 5000 {
		fmt.Fprintf(&report, "goroutine %d [chan receive]:\n", i)
	}
	f, _ := forward(t, report.String())
	tail := f.Tail()
	require.True(t, strings.HasPrefix(tail, "panic: boom\ngoroutine 0 "))
	require.LessOrEqual(t, len(tail), tailSize+maxLine)
}

func TestTail(t *testing.T) {
	var in strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&in, "line %04d %s\n", i, strings.Repeat("x", 90))
	}
	f, _ := forward(t, in.String())
	tail := f.Tail()

	require.LessOrEqual(t, len(tail), tailSize)
	require.Greater(t, len(tail), tailSize-200, "the tail should use its room")
	lines := strings.Split(tail, "\n")
	for i, line := range lines {
		require.True(t, strings.HasPrefix(line, fmt.Sprintf("line %04d ", 2000-len(lines)+i)), "line %d: %q", i, line)
	}
}

func TestHclogJSON(t *testing.T) {
	var stderr bytes.Buffer
	worker := hclog.New(&hclog.LoggerOptions{Name: "resizer", Level: hclog.Trace, JSONFormat: true, Output: &stderr})
	worker.Trace("t")
	worker.Debug("d")
	worker.Info("i")
	worker.Warn("disk low", "free", 42, "path", "/tmp")
	worker.Error("e", "err", "boom")

	_, recs := forward(t, stderr.String())
	require.Len(t, recs, 5)
	for i, level := range []string{"trace", "debug", "info", "warn", "error"} {
		assert.Equal(t, level, recs[i]["@level"])
		assert.Equal(t, "resizer", recs[i]["module"], "the worker's module is kept as a field")
		assert.Equal(t, "pool", recs[i]["@module"])
		assert.EqualValues(t, 7, recs[i]["pid"])
	}
	assert.Equal(t, "disk low", recs[3]["@message"])
	assert.EqualValues(t, 42, recs[3]["free"])
	assert.Equal(t, "/tmp", recs[3]["path"])
	assert.Equal(t, "boom", recs[4]["err"])
}

// TestNotHclogJSON covers lines that look like JSON but are not hclog
// records: they must reach the log unchanged, at Info.
func TestNotHclogJSON(t *testing.T) {
	tests := []struct {
		name string
		line string
	}{
		{"no message", `{"level":"error","msg":"x"}`},
		{"message not a string", `{"@message":3}`},
		{"broken", `{"@message":"x"`},
		{"text after the object", `{"@message":"x","@level":"error"} and more`},
		{"two objects", `{"@message":"x"}{"@message":"y"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, recs := forward(t, tt.line+"\n")
			require.Len(t, recs, 1)
			assert.Equal(t, tt.line, recs[0]["@message"])
			assert.Equal(t, "info", recs[0]["@level"])
		})
	}
}

func TestHclogJSONUnknownLevel(t *testing.T) {
	_, recs := forward(t, `{"@message":"x","@level":"loud"}`+"\n")
	require.Len(t, recs, 1)
	assert.Equal(t, "x", recs[0]["@message"])
	assert.Equal(t, "info", recs[0]["@level"])
}

func TestOverlongLine(t *testing.T) {
	for _, n := range []int{maxLine - 1, maxLine, maxLine + 1, 3*maxLine + 17} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			long := strings.Repeat("y", n)
			_, recs := forward(t, "before\n"+long+"\nafter\n")
			require.Equal(t, []string{"before", long[:min(n, maxLine)], "after"}, messages(recs))
		})
	}
}

// TestRunReturnsAtEOF feeds Run through a pipe, as from a live worker, and
// reads Tail while it runs, which the pool does when a call fails.
func TestRunReturnsAtEOF(t *testing.T) {
	pr, pw := io.Pipe()
	f := New(hclog.NewNullLogger())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(pr)
	}()

	for i := range 100 {
		_, err := fmt.Fprintf(pw, "line %d\n", i)
		require.NoError(t, err)
		_ = f.Tail()
	}
	require.NoError(t, pw.Close())
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the stream ended")
	}
	require.True(t, strings.HasSuffix(f.Tail(), "line 98\nline 99"))
}
