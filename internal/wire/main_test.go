package wire

import (
	"bytes"
	"encoding/binary"
	"runtime/metrics"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sample is a message and what decoding its encoding must give back; want
// differs from msg only where the encoding cannot tell nil from empty.
type sample struct {
	name string
	msg  Message
	want Message
}

// samples covers every kind, every Status, More both ways, and nil and
// empty byte slices, which decode differently (nil stays nil, empty stays
// empty and non-nil).
func samples() []sample {
	items := []Item{
		{Status: StatusOK, Value: []byte{0x2a}},
		{Status: StatusOK, Value: nil},
		{Status: StatusOK, Value: []byte{}},
		{Status: StatusError, Message: "task failed"},
		{Status: StatusPanic, Message: "runtime error: index out of range", Stack: "goroutine 7 [running]:\nmain.f()\n"},
		{Status: StatusDecodeArg, Message: "cannot decode"},
		{Status: StatusEncodeResult, Message: "cannot encode"},
		{Status: StatusUnknownTask, Message: `no task "x"`},
		{Status: StatusTooLarge, Message: "too large"},
		{Status: StatusError},
	}
	return []sample{
		{name: "hello", msg: &Hello{Version: Version, PID: 4242, Tasks: []string{"resize", "sum"}}},
		{name: "hello/nil tasks", msg: &Hello{Version: Version, PID: 1}},
		{name: "hello/empty tasks", msg: &Hello{Version: Version, PID: 1, Tasks: []string{}}},
		{name: "hello/negative", msg: &Hello{Version: Version, PID: -1, Tasks: []string{""}}},
		{name: "hello/build", msg: &Hello{Version: Version, PID: 7, Tasks: []string{"sq(int) int"}, Build: "abc/def"}},
		{name: "setup/remote", msg: &Setup{MaxFrame: 1, GOMAXPROCS: 3, Share: 4, Env: []string{"A=1", "B="}}},
		{name: "setup", msg: &Setup{MaxFrame: DefaultMaxFrame, InitTask: "init", InitArg: []byte{0x92, 0x01, 0x02}, Progress: true}},
		{name: "setup/nil arg", msg: &Setup{MaxFrame: 1}},
		{name: "setup/empty arg", msg: &Setup{InitArg: []byte{}}},
		{name: "ready/ok", msg: &Ready{Init: Item{Status: StatusOK}}},
		{name: "ready/panic", msg: &Ready{Init: items[4]}},
		{name: "run", msg: &Run{ID: 1, Task: "sum", Args: ValuesOf([]byte{0x01}, []byte{0x02, 0x03})}},
		{name: "run/nil and empty args", msg: &Run{ID: 2, Task: "t", Args: ValuesOf(nil, []byte{}, []byte{0xc0})}},
		{name: "run/no args", msg: &Run{ID: 3, Task: "t", Args: ValuesOf()}},
		{name: "run/nil args", msg: &Run{ID: 4}, want: &Run{ID: 4, Args: ValuesOf()}},
		{name: "run/max id", msg: &Run{ID: ^uint64(0), Task: "t", Args: ValuesOf(bytes.Repeat([]byte{0xee}, 70000))}},
		{name: "result/every status", msg: &Result{ID: 5, Items: items}},
		{name: "result/more", msg: &Result{ID: 5, More: true, Items: items[:2]}},
		{name: "result/no items", msg: &Result{ID: 6, Items: []Item{}}},
		{name: "result/nil items", msg: &Result{ID: 6, More: true}, want: &Result{ID: 6, More: true, Items: []Item{}}},
		{name: "cancel", msg: &Cancel{ID: 7}},
		{name: "cancel/zero", msg: &Cancel{}},
	}
}

func (s sample) expected() Message {
	if s.want != nil {
		return s.want
	}
	return s.msg
}

// encode returns a copy of m's body, since Encoder reuses its buffer.
func encode(tb testing.TB, m Message) []byte {
	tb.Helper()
	b, err := NewEncoder().Message(m)
	if err != nil {
		tb.Fatalf("encode %T: %v", m, err)
	}
	return bytes.Clone(b)
}

// frame prefixes body with its length, as Writer does.
func frame(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// brokenBodies are bodies Decoder must refuse. Several claim lengths far
// beyond their size, which must be caught before anything is allocated.
var brokenBodies = []struct {
	name string
	body []byte
}{
	{"empty", nil},
	{"not an array", []byte{0x01}},
	{"nil", []byte{0xc0}},
	{"empty array", []byte{0x90}},
	{"kind is a string", []byte{0x91, 0xa1, 'x'}},
	{"kind zero", []byte{0x91, 0x00}},
	{"unknown kind", []byte{0x92, 0x07, 0x01}},
	{"cancel with two fields", []byte{0x93, 0x06, 0x01, 0x02}},
	{"cancel without fields", []byte{0x91, 0x06}},
	{"trailing bytes", []byte{0x92, 0x06, 0x01, 0x00}},
	{"outer array longer than data", []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0x06, 0x01}},
	{"run args array longer than data", []byte{0x94, 0x04, 0x01, 0xa1, 't', 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc4, 0x00}},
	{"run arg longer than data", []byte{0x94, 0x04, 0x01, 0xa1, 't', 0x91, 0xc6, 0xff, 0xff, 0xff, 0xff, 0x00}},
	{"run task longer than data", []byte{0x94, 0x04, 0x01, 0xdb, 0xff, 0xff, 0xff, 0xff, 0x90}},
	{"run arg is an int", []byte{0x94, 0x04, 0x01, 0xa1, 't', 0x91, 0x05}},
	{"result items array longer than data", []byte{0x94, 0x05, 0x01, 0xc2, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x92}},
	{"result more is an int", []byte{0x94, 0x05, 0x01, 0x01, 0x90}},
	{"ok item with three fields", []byte{0x94, 0x05, 0x01, 0xc2, 0x91, 0x93, 0x00, 0xa0, 0xa0}},
	{"error item with two fields", []byte{0x94, 0x05, 0x01, 0xc2, 0x91, 0x92, 0x01, 0xc4, 0x00}},
	{"item not an array", []byte{0x92, 0x03, 0x00}},
	{"item message longer than data", []byte{0x92, 0x03, 0x93, 0x01, 0xdb, 0x7f, 0xff, 0xff, 0xff, 0xa0}},
	{"hello tasks array longer than data", []byte{0x94, 0x01, 0x01, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff}},
	{"hello task longer than data", []byte{0x94, 0x01, 0x01, 0x01, 0x91, 0xdb, 0x00, 0x10, 0x00, 0x00}},
	{"setup init arg longer than data", []byte{0x95, 0x02, 0x01, 0xa0, 0xc6, 0x00, 0x01, 0x00, 0x00, 0xc2}},
	{"setup progress is a string", []byte{0x95, 0x02, 0x01, 0xa0, 0xc0, 0xa1, 't'}},
}

// heapAllocated is the process's running total of heap bytes allocated. It
// counts small objects a span at a time, so compare it only against bounds
// with slack well above a span.
func heapAllocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
