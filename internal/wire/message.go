package wire

import (
	"fmt"
	"math"
	"time"

	"github.com/procpool/procpool/internal/bufpool"
)

// Kind tags each message; it is the first element of every frame body.
type Kind uint8

// The message kinds. The order of the handshake is Hello (worker → parent),
// Setup (parent → worker), Ready (worker → parent); then Run and Cancel flow
// to the worker and Result flows back.
const (
	KindHello Kind = iota + 1
	KindSetup
	KindReady
	KindRun
	KindResult
	KindCancel
)

func (k Kind) String() string {
	switch k {
	case KindHello:
		return "hello"
	case KindSetup:
		return "setup"
	case KindReady:
		return "ready"
	case KindRun:
		return "run"
	case KindResult:
		return "result"
	case KindCancel:
		return "cancel"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Message is one of the message types below.
type Message interface {
	kind() Kind
	encode(e *Encoder) error
	decode(d *Decoder) error
}

// Hello is the worker's first message: who it is and what it can run.
type Hello struct {
	Version int
	PID     int
	Tasks   []string // registered tasks, "name(argument type) result type", sorted
	Build   string   // the Go build ID of the worker's executable, or ""
}

// Setup is the parent's answer to Hello. InitTask, when set, names a task
// the worker runs once with InitArg before it reports Ready. Progress makes
// the parent see each call end, which it needs to time calls one by one.
// GOMAXPROCS, Share and Env carry settings that a launcher such as SSH
// cannot pass in the environment.
type Setup struct {
	MaxFrame   int
	InitTask   string
	InitArg    []byte
	Progress   bool     // send each call's result as it ends, not once per run
	GOMAXPROCS int      // GOMAXPROCS to set; 0 means use Share
	Share      int      // workers sharing the worker's machine, to divide its CPUs; 0 leaves GOMAXPROCS alone
	Env        []string // KEY=VALUE pairs to set before the initializer
	// TaskTimeout bounds each call: its context's deadline is this long
	// after it starts. 0 means no bound.
	TaskTimeout time.Duration
	// Clock is the parent's time when it sent Setup, in Unix nanoseconds:
	// the worker reads the deadlines of runs against it, so that a worker
	// whose clock differs keeps the same deadlines.
	Clock int64
}

// VersionError is a Hello from a worker that speaks another protocol
// version; the rest of its message cannot be trusted to parse.
type VersionError struct {
	Version int // the worker's
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("the worker speaks protocol version %d, this program %d", e.Version, Version)
}

// Ready ends the handshake. Init is the outcome of the initializer, StatusOK
// when there was none.
type Ready struct {
	Init Item
}

// Run asks the worker to call Task once per argument, in order. The
// arguments are msgpack values, encoded by the parent. Deadline, when not 0,
// is the run's deadline on the parent's clock, in Unix nanoseconds (see
// Setup.Clock): no call of it starts after it.
type Run struct {
	ID       uint64
	Task     string
	Args     Values
	Deadline int64
}

// Result carries the outcomes of a Run, in argument order. A result too big
// for one frame is split: every part but the last has More set.
//
// A worker builds Items, and Encode writes them. Decode, on the parent's
// hot path, reads them into Values and Fails instead, which cost a large
// result no record per call; Outcomes turns them back into Items.
type Result struct {
	ID    uint64
	More  bool
	Took  time.Duration // the worker's time on this part's calls, which the parent's scheduler learns from
	Items []Item

	Values Values // one per call: its value, or nothing if it failed (decoded)
	Fails  []Fail // the calls that failed, in order (decoded)
}

// Fail is the outcome of a call that did not succeed, and its index in
// its Result.
type Fail struct {
	Index int
	Item  Item
}

// Len is the number of outcomes r holds.
func (r *Result) Len() int {
	if r.Items != nil {
		return len(r.Items)
	}
	return r.Values.Len()
}

// Outcomes returns the outcomes r holds as Items.
func (r *Result) Outcomes() []Item {
	if r.Items != nil || r.Values.Len() == 0 {
		return r.Items
	}
	items := make([]Item, r.Values.Len())
	for i := range items {
		items[i].Value = r.Values.At(i)
	}
	for _, f := range r.Fails {
		items[f.Index] = f.Item
	}
	return items
}

// Pack returns items as a decoded Result holds them, with the values
// copied into one buffer.
func Pack(items []Item) (Values, []Fail) {
	n := 0
	for i := range items {
		n += len(items[i].Value) + len(items[i].Tail)
	}
	vs := Values{Buf: bufpool.Bytes.Get(n)[:0], Span: bufpool.Spans.Get(2 * len(items))[:0]}
	var fails []Fail
	for i := range items {
		vs.Add(items[i].Value, items[i].Tail)
		if items[i].Status != StatusOK {
			fails = append(fails, Fail{Index: i, Item: items[i]})
		}
	}
	return vs, fails
}

// Cancel asks the worker to cancel the Run with this ID: the context of the
// call in progress, and, with Whole set, the calls not started too, which
// then do not run.
type Cancel struct {
	ID    uint64
	Whole bool
}

// Status says how one call ended.
type Status uint8

// The statuses of a call.
const (
	StatusOK           Status = iota // Value holds the encoded result
	StatusError                      // the task returned an error
	StatusPanic                      // the task panicked; Stack is set
	StatusDecodeArg                  // the worker could not decode the argument
	StatusEncodeResult               // the worker could not encode the result
	StatusUnknownTask                // the worker has no task of that name
	StatusTooLarge                   // the encoded result is over the frame limit
)

// Item is the outcome of one call.
type Item struct {
	Status Status
	Value  []byte // for StatusOK: the encoded value, or its start if Tail is set
	// Tail is the rest of the encoded value, if set: the bytes of a large
	// []byte result, which a worker writes from where the task returned
	// them rather than copy them into Value, which holds their header.
	// Only a worker's items have it; a decoded Item holds its value whole.
	Tail    []byte
	Message string   // for every other status
	Stack   string   // for StatusPanic
	Codes   []string // for StatusError: the well-known errors the task's error matches (see package errcode)
}

func (*Hello) kind() Kind  { return KindHello }
func (*Setup) kind() Kind  { return KindSetup }
func (*Ready) kind() Kind  { return KindReady }
func (*Run) kind() Kind    { return KindRun }
func (*Result) kind() Kind { return KindResult }
func (*Cancel) kind() Kind { return KindCancel }

// Every body is an array: the kind, then the message's fields in order.

func (m *Hello) encode(enc *Encoder) error {
	e := enc.enc
	return firstErr(e.EncodeArrayLen(5), e.EncodeUint(uint64(KindHello)), e.EncodeInt(int64(m.Version)), e.EncodeInt(int64(m.PID)), e.Encode(m.Tasks), e.EncodeString(m.Build))
}

// decode reads the fields after the version, which message has read.
func (m *Hello) decode(d *Decoder) error {
	m.PID = int(d.int("the pid"))
	m.Tasks = d.strs("the tasks")
	m.Build = d.str("the build")
	return d.err
}

func (m *Setup) encode(enc *Encoder) error {
	e := enc.enc
	return firstErr(e.EncodeArrayLen(10), e.EncodeUint(uint64(KindSetup)), e.EncodeInt(int64(m.MaxFrame)), e.EncodeString(m.InitTask), enc.bin(m.InitArg), e.EncodeBool(m.Progress),
		e.EncodeInt(int64(m.GOMAXPROCS)), e.EncodeInt(int64(m.Share)), e.Encode(m.Env), e.EncodeInt(int64(m.TaskTimeout)), e.EncodeInt(m.Clock))
}

func (m *Setup) decode(d *Decoder) error {
	m.MaxFrame = int(d.int("the frame limit"))
	m.InitTask = d.str("the init task")
	m.InitArg = d.bin("the init argument")
	m.Progress = d.bool("progress")
	m.GOMAXPROCS = int(d.int("GOMAXPROCS"))
	m.Share = int(d.int("the share"))
	m.Env = d.strs("the environment")
	m.TaskTimeout = time.Duration(d.int("the task timeout"))
	m.Clock = d.int("the clock")
	return d.err
}

func (m *Ready) encode(e *Encoder) error {
	return firstErr(e.enc.EncodeArrayLen(2), e.enc.EncodeUint(uint64(KindReady)), m.Init.encode(e))
}

func (m *Ready) decode(d *Decoder) error {
	d.item(&m.Init)
	return d.err
}

func (m *Run) encode(enc *Encoder) error {
	e := enc.enc
	if err := firstErr(e.EncodeArrayLen(5), e.EncodeUint(uint64(KindRun)), e.EncodeUint(m.ID), e.EncodeString(m.Task), e.EncodeInt(m.Deadline), e.EncodeArrayLen(m.Args.Len())); err != nil {
		return err
	}
	return enc.values(m.Args)
}

func (m *Run) decode(d *Decoder) error {
	m.ID = d.uint("the run id")
	m.Task = d.str("the task")
	m.Deadline = d.int("the deadline")
	n := d.arrayLen("the arguments", false)
	if d.err != nil {
		return d.err
	}
	m.Args = Values{Buf: d.b, Span: bufpool.Spans.Get(2 * n)[:0]}
	for range n {
		if start, end, ok := d.shortBin(); ok {
			m.Args.Span = append(m.Args.Span, start, end)
			continue
		}
		v := d.bin("an argument")
		if d.err != nil {
			return d.err
		}
		m.Args.Span = append(m.Args.Span, uint32(d.off-len(v)), uint32(d.off))
	}
	return nil
}

func (m *Result) encode(enc *Encoder) error {
	e := enc.enc
	// Values alone, as a worker's loop over a chunk builds them, are the
	// items a Result of Items would give, all OK, written as a Run's
	// arguments are.
	valuesOnly := m.Items == nil && m.Fails == nil
	var items []Item
	n := m.Values.Len()
	if !valuesOnly {
		items = m.Outcomes()
		n = len(items)
	}
	if err := firstErr(e.EncodeArrayLen(5), e.EncodeUint(uint64(KindResult)), e.EncodeUint(m.ID), e.EncodeBool(m.More), e.EncodeInt(int64(m.Took)), e.EncodeArrayLen(n)); err != nil {
		return err
	}
	if valuesOnly {
		return enc.values(m.Values)
	}
	for i := range items {
		// The usual item, OK and short, as Item.encode writes it.
		if it := &items[i]; it.Status == StatusOK && it.Value != nil && it.Tail == nil && len(it.Value) <= math.MaxUint8 {
			enc.buf.b = append(enc.buf.b, codeBin8, byte(len(it.Value)))
			enc.buf.b = append(enc.buf.b, it.Value...)
			continue
		}
		if err := items[i].encode(enc); err != nil {
			return err
		}
	}
	return nil
}

func (m *Result) decode(d *Decoder) error {
	m.ID = d.uint("the run id")
	m.More = d.bool("more")
	m.Took = time.Duration(d.int("the time taken"))
	n := d.arrayLen("the items", false)
	if d.err != nil {
		return d.err
	}
	// The spans are the caller's to keep, with the frame: a new slice.
	m.Items, m.Fails = nil, nil
	m.Values = Values{Buf: d.b, Span: bufpool.Spans.Get(2 * n)[:0]}
	for i := range n {
		if start, end, ok := d.shortBin(); ok { // an OK item
			m.Values.Span = append(m.Values.Span, start, end)
			continue
		}
		var it Item
		if d.item(&it); d.err != nil {
			return d.err
		}
		if it.Status != StatusOK {
			m.Fails = append(m.Fails, Fail{Index: i, Item: it})
		}
		m.Values.Span = append(m.Values.Span, uint32(d.off-len(it.Value)), uint32(d.off))
	}
	return nil
}

func (m *Cancel) encode(enc *Encoder) error {
	e := enc.enc
	return firstErr(e.EncodeArrayLen(3), e.EncodeUint(uint64(KindCancel)), e.EncodeUint(m.ID), e.EncodeBool(m.Whole))
}

func (m *Cancel) decode(d *Decoder) error {
	m.ID = d.uint("the run id")
	m.Whole = d.bool("whole")
	return d.err
}

// An OK item is its value alone, a byte string; any other is the array
// [status, message, stack, codes]. Results are mostly OK, and this keeps
// them to a byte-string header and the value.
func (it *Item) encode(enc *Encoder) error {
	switch {
	case it.Status == StatusOK && it.Tail != nil:
		return enc.binParts(it.Value, it.Tail)
	case it.Status == StatusOK:
		return enc.bin(it.Value)
	}
	e := enc.enc
	return firstErr(e.EncodeArrayLen(4), e.EncodeUint(uint64(it.Status)), e.EncodeString(it.Message), e.EncodeString(it.Stack), e.Encode(it.Codes))
}
