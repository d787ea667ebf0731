// Package wiretest holds the golden frames of the wire protocol, for the
// tests of every package that speaks it: one complete frame (length prefix
// and body) per message, at the current protocol version, in
// testdata/wire/v<wire.Version> at the module root.
//
// The wire package's TestGolden checks that each frame decodes to its
// message and that encoding the message gives the frame byte for byte, so
// any change to the protocol fails there first. Regenerate the frames after
// a deliberate change with
//
//	go test ./internal/wire -run Golden -update
//
// The worker's tests decode the frames the worker receives (ToWorker), the
// pool's those it receives; each through its own reading path.
package wiretest

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/procpool/procpool/internal/wire"
)

// Module is the path of the module whose root holds testdata/.
const Module = "github.com/procpool/procpool"

// Golden is one golden frame: its name, which way it travels and the
// message it holds.
type Golden struct {
	Name     string       // the file's name without ".bin"
	ToWorker bool         // sent by the pool to a worker (Setup, Run, Cancel); else by a worker to the pool
	Msg      wire.Message // what the frame holds, exactly: decoding it gives this back
}

// Messages returns the golden messages: every kind, every item Status and
// Result's More both ways. Each call returns new values, so a caller may
// keep or change them.
func Messages() []Golden {
	// A msgpack argument or result, as the codec encodes it: [1, 2] and 3.
	pair, three := []byte{0x92, 0x01, 0x02}, []byte{0x03}
	item := func(s wire.Status, msg, stack string) []wire.Item {
		return []wire.Item{{Status: s, Message: msg, Stack: stack}}
	}
	return []Golden{
		{Name: "hello", Msg: &wire.Hello{Version: wire.Version, PID: 4242,
			Tasks: []string{"resize([]uint8) []uint8", "sum([]int) int"}, Build: "Wk1x2Bf3/go-build-id"}},
		{Name: "setup", ToWorker: true, Msg: &wire.Setup{MaxFrame: wire.DefaultMaxFrame, InitTask: "load",
			InitArg: []byte{0xa4, 'c', 'o', 'n', 'f'}, Progress: true, GOMAXPROCS: 2, Share: 4, Env: []string{"TZ=UTC", "EMPTY="}, TaskTimeout: 1500 * time.Millisecond,
			Clock: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano()}},
		// The defaults: no initializer, no settings; nil, not empty, slices.
		{Name: "setup-defaults", ToWorker: true, Msg: &wire.Setup{MaxFrame: wire.DefaultMaxFrame}},
		{Name: "ready", Msg: &wire.Ready{Init: wire.Item{Status: wire.StatusOK}}},
		{Name: "ready-init-failed", Msg: &wire.Ready{Init: wire.Item{Status: wire.StatusError, Message: "open conf: no such file or directory"}}},
		{Name: "run", ToWorker: true, Msg: &wire.Run{ID: 7, Task: "sum", Args: wire.ValuesOf(pair, []byte{0x90})}},
		// A run with a deadline.
		{Name: "run-deadline", ToWorker: true, Msg: &wire.Run{ID: 15, Task: "sum", Args: wire.ValuesOf(pair),
			Deadline: time.Date(2026, 12, 1, 0, 0, 2, 500_000_000, time.UTC).UnixNano()}},
		{Name: "result-ok", Msg: &wire.Result{ID: 7, Took: 1234 * time.Microsecond, Items: []wire.Item{{Status: wire.StatusOK, Value: three}, {Status: wire.StatusOK, Value: []byte{0x00}}}}},
		// A result split over frames: every part but the last has More set.
		{Name: "result-more", Msg: &wire.Result{ID: 8, More: true, Items: []wire.Item{{Status: wire.StatusOK, Value: three}}}},
		{Name: "result-error", Msg: &wire.Result{ID: 9, Items: item(wire.StatusError, "negative input", "")}},
		// An error that matched well-known errors, which the parent's matches too.
		{Name: "result-error-codes", Msg: &wire.Result{ID: 16, Items: []wire.Item{{Status: wire.StatusError, Message: "read conf: context deadline exceeded",
			Codes: []string{"context.DeadlineExceeded", "os.ErrDeadlineExceeded"}}}}},
		{Name: "result-panic", Msg: &wire.Result{ID: 10, Items: item(wire.StatusPanic, "runtime error: index out of range [3] with length 3",
			"goroutine 7 [running]:\nmain.sum(...)\n\t/src/main.go:12 +0x1d\n")}},
		{Name: "result-decode-arg", Msg: &wire.Result{ID: 11, Items: item(wire.StatusDecodeArg, "msgpack: invalid code=a3 decoding int64", "")}},
		{Name: "result-encode-result", Msg: &wire.Result{ID: 12, Items: item(wire.StatusEncodeResult, "msgpack: Encode(unsupported chan int)", "")}},
		{Name: "result-unknown-task", Msg: &wire.Result{ID: 13, Items: item(wire.StatusUnknownTask, `no task "resize2"`, "")}},
		{Name: "result-too-large", Msg: &wire.Result{ID: 14, Items: item(wire.StatusTooLarge, "encoded result of 70000000 bytes is over the 67108800-byte frame limit", "")}},
		{Name: "cancel", ToWorker: true, Msg: &wire.Cancel{ID: 7}},
		{Name: "cancel-whole", ToWorker: true, Msg: &wire.Cancel{ID: 7, Whole: true}},
	}
}

// Dir returns the directory of the golden frames of this protocol version,
// found from the working directory (a test's is its package's directory)
// by walking up to the module's go.mod.
func Dir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && slices.Contains(strings.Fields(string(mod)), Module) {
			return filepath.Join(dir, "testdata", "wire", "v"+strconv.Itoa(wire.Version))
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatalf("no go.mod of module %s above the working directory", Module)
		}
		dir = parent
	}
}

// Path returns the file of golden frame g.
func Path(tb testing.TB, g Golden) string {
	tb.Helper()
	return filepath.Join(Dir(tb), g.Name+".bin")
}

// Frame returns the golden frame of g: the length prefix and the body.
func Frame(tb testing.TB, g Golden) []byte {
	tb.Helper()
	b, err := os.ReadFile(Path(tb, g))
	if err != nil {
		tb.Fatalf("golden frame %s: %v (regenerate with: go test ./internal/wire -run Golden -update)", g.Name, err)
	}
	return b
}

// Stream returns the golden frames that travel one way, to the worker or
// from it, one after another as on a pipe, and their messages in order.
func Stream(tb testing.TB, toWorker bool) ([]byte, []wire.Message) {
	tb.Helper()
	var stream []byte
	var msgs []wire.Message
	for _, g := range Messages() {
		if g.ToWorker == toWorker {
			stream = append(stream, Frame(tb, g)...)
			msgs = append(msgs, g.Msg)
		}
	}
	return stream, msgs
}
