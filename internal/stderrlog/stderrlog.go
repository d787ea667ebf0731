// Package stderrlog forwards a worker's stderr into an hclog logger, line by
// line, but a Go crash report as one record, and keeps what a crash report
// needs: the last lines, and the trace of a Go panic or fatal error from its
// first line on. It is the one place that recognises Go's crash reports:
// IsCrashStart and Headline.
package stderrlog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

const (
	maxLine  = 4 << 10  // longer lines are cut for the log and the tail
	tailSize = 16 << 10 // bytes of recent output kept, and of a crash report

	// crashWait bounds how long a crash report is held back. A process
	// that prints one dies at once and its stream ends; one whose stream
	// goes on this long lives on (the report was a child's, say, sharing
	// its stderr), and what was held is logged then.
	crashWait = 5 * time.Second
)

// Forwarder copies lines from a worker's stderr into a logger.
//
// A Go crash report (see crash.go) is not streamed: its first line starts
// it, and it is held until the stream ends, since the process is dying,
// then logged once, as one Error record whose message is its headline and
// whose "report" field is the whole report, up to tailSize bytes. This
// record is the log's one copy of the report: the pool's own record of the
// death gives the headline alone, in its error.
type Forwarder struct {
	log  hclog.Logger
	wait time.Duration // crashWait; shorter in tests

	out sync.Mutex // held while logging, so records keep the order of their lines

	mu      sync.Mutex
	tail    []string // recent lines, oldest first
	size    int      // bytes in tail
	crash   []string // a crash report, from its first line on
	csize   int
	held    bool        // crash is held back, not logged yet
	dropped int         // lines of the held report past the bound
	timer   *time.Timer // ends the hold after wait
}

// New returns a Forwarder writing to log.
func New(log hclog.Logger) *Forwarder { return &Forwarder{log: log, wait: crashWait} }

// Run reads r until it ends. Plain lines are logged at Info and hclog JSON
// lines keep their level and fields, one record a line; a crash report is
// logged when r ends, at Error, as one record. Run returns once it is.
func (f *Forwarder) Run(r io.Reader) {
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := readLine(br)
		if len(line) > 0 || err == nil {
			f.line(line)
		}
		if err != nil {
			break
		}
	}
	f.mu.Lock()
	if f.timer != nil {
		f.timer.Stop()
	}
	f.mu.Unlock()
	f.release()
}

// readLine returns the next line without its newline, cut to maxLine bytes.
func readLine(br *bufio.Reader) (string, error) {
	b, isPrefix, err := br.ReadLine()
	line := string(b)
	for isPrefix && err == nil {
		_, isPrefix, err = br.ReadLine() // drop the rest of an overlong line
	}
	return line, err
}

// line logs one line of stderr, or holds it back as part of a crash report.
func (f *Forwarder) line(line string) {
	f.out.Lock()
	defer f.out.Unlock()

	f.mu.Lock()
	if f.crash == nil && IsCrashStart(line) {
		f.crash, f.held = []string{}, true
		f.timer = time.AfterFunc(f.wait, f.release)
	}
	if f.crash != nil {
		if f.csize < tailSize {
			f.crash = append(f.crash, line)
			f.csize += len(line) + 1
		} else if f.held {
			f.dropped++
		}
	}
	f.tail = append(f.tail, line)
	for f.size += len(line) + 1; f.size > tailSize && len(f.tail) > 1; f.tail = f.tail[1:] {
		f.size -= len(f.tail[0]) + 1
	}
	held := f.held
	f.mu.Unlock()

	if held {
		return
	}
	if level, msg, args, ok := parseJSON(line); ok {
		f.log.Log(level, msg, args...)
		return
	}
	f.log.Info(line)
}

// release logs the crash report held back, if any, as one record: at the
// end of the stream, or after wait if the stream goes on. Later lines are
// logged one by one again.
func (f *Forwarder) release() {
	f.out.Lock()
	defer f.out.Unlock()

	f.mu.Lock()
	if !f.held {
		f.mu.Unlock()
		return
	}
	f.held = false
	report, dropped := strings.Join(f.crash, "\n"), f.dropped
	f.mu.Unlock()

	args := []any{"report", report}
	if dropped > 0 {
		args = append(args, "lines_not_kept", dropped)
	}
	f.log.Error(Headline(report), args...)
}

// Tail returns the crash report if the worker printed one, else its last lines.
func (f *Forwarder) Tail() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.crash != nil {
		return strings.Join(f.crash, "\n")
	}
	return strings.Join(f.tail, "\n")
}

// parseJSON reads an hclog JSON line: its level, message and other fields.
func parseJSON(line string) (hclog.Level, string, []any, bool) {
	if !strings.HasPrefix(line, "{") {
		return 0, "", nil, false
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader([]byte(line)))
	dec.UseNumber()
	if dec.Decode(&m) != nil {
		return 0, "", nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return 0, "", nil, false // text after the object would be lost
	}
	msg, ok := m["@message"].(string)
	if !ok {
		return 0, "", nil, false
	}
	level := hclog.Info
	if s, ok := m["@level"].(string); ok {
		if l := hclog.LevelFromString(s); l != hclog.NoLevel {
			level = l
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if !strings.HasPrefix(k, "@") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	args := make([]any, 0, 2*len(keys)+2)
	if mod, ok := m["@module"].(string); ok {
		args = append(args, "module", mod)
	}
	for _, k := range keys {
		args = append(args, k, m[k])
	}
	return level, msg, args, true
}
