package stderrlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
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
// the plain lines are logged one by one, the report as one record, its
// headline with the whole report in a field; and the tail is the report,
// whole, since its first line names the failure.
func TestCrash(t *testing.T) {
	tests := []struct {
		name     string
		report   string
		headline string
	}{
		{"panic", "panic: runtime error: index out of range [3] with length 3\n\ngoroutine 1 [running]:\nmain.main()\n\t/src/main.go:9 +0x1d\nexit status 2", "panic: runtime error: index out of range [3] with length 3"},
		{"fatal error", "fatal error: concurrent map writes\n\ngoroutine 5 [running]:\nmain.worker()\n\t/src/main.go:20 +0x45", "fatal error: concurrent map writes"},
		{"signal", "SIGSEGV: segmentation violation\nPC=0x0 m=0 sigcode=1\n\ngoroutine 1 [running]:", "SIGSEGV: segmentation violation"},
		{"lead line", "runtime: goroutine stack exceeds 1000000000-byte limit\nfatal error: stack overflow\n\ngoroutine 1 [running]:", "fatal error: stack overflow"},
	}
	noise := strings.Repeat(strings.Repeat("n", 99)+"\n", 400) // 40 KB
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, recs := forward(t, noise+tt.report+"\n")
			require.Equal(t, tt.report, f.Tail())

			require.Len(t, recs, 400+1)
			for i, r := range recs[:400] {
				require.Equal(t, "info", r["@level"], "record %d: %s", i, r["@message"])
			}
			crash := recs[400]
			assert.Equal(t, "error", crash["@level"])
			assert.Equal(t, tt.headline, crash["@message"])
			assert.Equal(t, tt.report, crash["report"])
			assert.EqualValues(t, 7, crash["pid"])
			assert.NotContains(t, crash, "lines_not_kept")
		})
	}
}

// TestCrashBounded checks that a runaway report, like a dump of thousands of
// goroutines, is kept from its first line but not without end, and logged
// once, saying how much was left out.
func TestCrashBounded(t *testing.T) {
	var report strings.Builder
	report.WriteString("panic: boom\n")
	for i := range 5000 {
		fmt.Fprintf(&report, "goroutine %d [chan receive]:\n", i)
	}
	f, recs := forward(t, report.String())
	tail := f.Tail()
	require.True(t, strings.HasPrefix(tail, "panic: boom\ngoroutine 0 "))
	require.LessOrEqual(t, len(tail), tailSize+maxLine)

	require.Len(t, recs, 1)
	assert.Equal(t, "panic: boom", recs[0]["@message"])
	assert.Equal(t, tail, recs[0]["report"])
	kept := strings.Count(tail, "\n") + 1
	assert.EqualValues(t, 5001-kept, recs[0]["lines_not_kept"])
}

// TestCrashAmongPlainLines feeds every real crash report, after a plain
// line and an hclog JSON line: those are logged one by one as before; the
// report, from its first line on, as one Error record whose message is its
// headline. Lines before the report's start (assert(3)'s) stay plain lines.
func TestCrashAmongPlainLines(t *testing.T) {
	const before = "loading model\n" + `{"@level":"warn","@message":"disk low","free":42}` + "\n"
	for _, tt := range realCrashes {
		t.Run(tt.file, func(t *testing.T) {
			report := crashReport(t, tt.file)
			lines := strings.Split(strings.TrimSuffix(report, "\n"), "\n")
			start := slices.IndexFunc(lines, IsCrashStart)

			_, recs := forward(t, before+report)
			require.Equal(t, []string{"loading model", "disk low"}, messages(recs[:2]))
			assert.Equal(t, "warn", recs[1]["@level"])
			assert.EqualValues(t, 42, recs[1]["free"])
			if start < 0 { // not a crash: its lines, one by one
				require.Equal(t, lines, messages(recs[2:]))
				return
			}
			require.Len(t, recs, 2+start+1, "the plain lines, then one record for the report")
			for i, l := range lines[:start] {
				assert.Equal(t, l, recs[2+i]["@message"])
				assert.Equal(t, "info", recs[2+i]["@level"])
			}
			crash := recs[len(recs)-1]
			assert.Equal(t, "error", crash["@level"])
			assert.Equal(t, tt.want, anyPC(crash["@message"].(string)))
			assert.Equal(t, strings.Join(lines[start:], "\n"), crash["report"])
		})
	}
}

// TestCrashOfAChild: a report in a stream that goes on, as when a child
// process of a worker crashes and the worker lives on, is held no longer
// than the Forwarder's wait; then it is logged as one record, and what
// follows line by line.
func TestCrashOfAChild(t *testing.T) {
	var out syncBuffer
	log := hclog.New(&hclog.LoggerOptions{Name: "pool", Level: hclog.Trace, JSONFormat: true, Output: &out})
	f := New(log)
	f.wait = 200 * time.Millisecond
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(pr)
	}()

	_, err := io.WriteString(pw, "before\npanic: the child's\n\ngoroutine 1 [running]:\n")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "the child's") }, 5*time.Second, 5*time.Millisecond)
	_, err = io.WriteString(pw, "after\n")
	require.NoError(t, err)
	require.NoError(t, pw.Close())
	<-done

	var recs []map[string]any
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &rec))
		recs = append(recs, rec)
	}
	require.Equal(t, []string{"before", "panic: the child's", "after"}, messages(recs))
	assert.Equal(t, "panic: the child's\n\ngoroutine 1 [running]:", recs[1]["report"])
	assert.Equal(t, "info", recs[2]["@level"])
}

// syncBuffer is a bytes.Buffer safe for a logger writing from the
// Forwarder's timer while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
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
