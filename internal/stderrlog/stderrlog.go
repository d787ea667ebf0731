// Package stderrlog forwards a worker's stderr into an hclog logger, line by
// line, and keeps what a crash report needs: the last lines, and the trace of
// a Go panic or fatal error from its first line on. It is the one place that
// recognises Go's crash reports: IsCrashStart and Headline.
package stderrlog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

const (
	maxLine  = 4 << 10  // longer lines are cut for the log and the tail
	tailSize = 16 << 10 // bytes of recent output kept
)

// Forwarder copies lines from a worker's stderr into a logger.
type Forwarder struct {
	log hclog.Logger

	mu    sync.Mutex
	tail  []string // recent lines, oldest first
	size  int      // bytes in tail
	crash []string // a crash report, from its first line on
	csize int
}

// New returns a Forwarder writing to log.
func New(log hclog.Logger) *Forwarder { return &Forwarder{log: log} }

// Run reads r until it ends. Plain lines are logged at Info; the lines of a
// crash report at Error; hclog JSON lines keep their level and fields.
func (f *Forwarder) Run(r io.Reader) {
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := readLine(br)
		if len(line) > 0 || err == nil {
			f.line(line)
		}
		if err != nil {
			return
		}
	}
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

func (f *Forwarder) line(line string) {
	f.mu.Lock()
	inCrash := f.crash != nil
	if !inCrash && IsCrashStart(line) {
		f.crash, inCrash = []string{}, true
	}
	if inCrash && f.csize < tailSize {
		f.crash = append(f.crash, line)
		f.csize += len(line) + 1
	}
	f.tail = append(f.tail, line)
	for f.size += len(line) + 1; f.size > tailSize && len(f.tail) > 1; f.tail = f.tail[1:] {
		f.size -= len(f.tail[0]) + 1
	}
	f.mu.Unlock()

	if inCrash {
		f.log.Error(line)
		return
	}
	if level, msg, args, ok := parseJSON(line); ok {
		f.log.Log(level, msg, args...)
		return
	}
	f.log.Info(line)
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
