package wire

// This file turns messages into frame bodies and back: the Encoder, and the
// defensive Decoder, whose readers (parse.go) check every length against
// the bytes left before anything is allocated.

import (
	"errors"
	"fmt"
	"math"

	"github.com/vmihailenco/msgpack/v5"
)

// Encoder encodes message bodies into one reused buffer.
type Encoder struct {
	buf buffer
	enc *msgpack.Encoder // writes into buf
	// split is the size from which bin leaves a byte string where it is
	// rather than copy it into buf; 0 copies them all. Writer sets it: it
	// writes the segments from where they are.
	split int
	segs  []segment
	size  int // the body's size: buf after the header room, plus the segments
}

// buffer is the Encoder's output: msgpack.Encoder writes to it, and bin
// appends to it directly, which costs a small value far fewer calls.
type buffer struct{ b []byte }

func (w *buffer) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *buffer) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
}

// segment is a byte string of the body that is not in buf: it follows
// buf[:at].
type segment struct {
	at   int
	data []byte
}

// splitMin is the size from which a Writer's byte strings are not copied
// into the body buffer. Below it, a copy costs less than the extra write.
const splitMin = 8 << 10

// NewEncoder returns an Encoder.
func NewEncoder() *Encoder {
	e := &Encoder{}
	e.enc = msgpack.NewEncoder(&e.buf)
	return e
}

// Message encodes m and returns its body, valid until the next call.
func (e *Encoder) Message(m Message) ([]byte, error) {
	if err := e.encode(m, 0); err != nil {
		return nil, err
	}
	return e.buf.b[headerLen:], nil
}

// encode encodes m into buf after room for the frame header, leaving byte
// strings of split bytes or more (when split > 0) to segs.
func (e *Encoder) encode(m Message, split int) error {
	e.forget()
	e.split = split
	e.buf.b = append(e.buf.b[:0], make([]byte, headerLen)...)
	if err := m.encode(e); err != nil {
		e.forget()
		return fmt.Errorf("encode %s message: %w", m.kind(), err)
	}
	e.size += len(e.buf.b) - headerLen
	return nil
}

// raw appends encoded bytes, as a segment when they are large enough.
func (e *Encoder) raw(b []byte) {
	if e.split > 0 && len(b) >= e.split {
		e.segs = append(e.segs, segment{at: len(e.buf.b), data: b})
		e.size += len(b)
		return
	}
	e.buf.b = append(e.buf.b, b...)
}

// values encodes vs as byte strings one after another: from Buf whole if
// it holds them so (see Values.Begin), else one by one.
func (e *Encoder) values(vs Values) error {
	if raw, ok := vs.framed(); ok {
		e.raw(raw)
		return nil
	}
	for i := range vs.Len() {
		if err := e.bin(vs.At(i)); err != nil {
			return err
		}
	}
	return nil
}

// bin encodes a byte string, as a segment when it is large enough.
func (e *Encoder) bin(b []byte) error {
	n := len(b)
	split := e.split > 0 && n >= e.split
	switch {
	case b == nil:
		e.buf.b = append(e.buf.b, codeNil)
		return nil
	case n <= math.MaxUint8 && !split: // the usual value, as EncodeBytes would
		e.buf.b = append(append(e.buf.b, codeBin8, byte(n)), b...)
		return nil
	case !split:
		return e.enc.EncodeBytes(b)
	}
	if err := e.enc.EncodeBytesLen(n); err != nil {
		return err
	}
	e.segs = append(e.segs, segment{at: len(e.buf.b), data: b})
	e.size += len(b)
	return nil
}

// binParts encodes the byte string made of head and tail, one after
// another, tail as a segment when it is large enough.
func (e *Encoder) binParts(head, tail []byte) error {
	if err := e.enc.EncodeBytesLen(len(head) + len(tail)); err != nil {
		return err
	}
	e.buf.b = append(e.buf.b, head...)
	e.raw(tail)
	return nil
}

// forget drops the segments, so that the Encoder does not keep the
// caller's byte strings alive.
func (e *Encoder) forget() {
	clear(e.segs)
	e.segs = e.segs[:0]
	e.size = 0
}

// Decoder decodes message bodies. Byte fields of a decoded message refer
// into the body; the caller must not reuse it while they are in use. A
// decoded Result is the Decoder's own, reused by the next Decode once the
// caller has called Release; its Values and Fails are the caller's to keep.
type Decoder struct {
	result Result
	b      []byte // the body being decoded
	off    int    // the next byte of b to read
	err    error  // the first error of the readers in parse.go
}

// Release tells d that the Result it decoded last is no longer in use:
// d forgets it, so that it does not keep the frame alive. The Values and
// Fails it held stay valid for whoever kept them.
func (d *Decoder) Release() { d.result = Result{} }

// NewDecoder returns a Decoder.
func NewDecoder() *Decoder { return &Decoder{} }

// Decode decodes one message body. Any error is a *FrameError showing the
// start of the body.
func (d *Decoder) Decode(body []byte) (Message, error) {
	d.b, d.off, d.err = body, 0, nil
	m, err := d.message()
	if err == nil && d.off != len(body) {
		err = fmt.Errorf("%d bytes left over after the %s message", len(body)-d.off, m.kind())
	}
	d.b, d.err = nil, nil
	if err != nil {
		return nil, &FrameError{Reason: err.Error(), Head: body[:min(len(body), 32)], Err: err}
	}
	return m, nil
}

func (d *Decoder) message() (Message, error) {
	n := d.arrayLen("a message", false)
	if d.err != nil {
		return nil, d.err
	}
	if n < 1 {
		return nil, errors.New("empty message")
	}
	// msgpack.Decoder, decoding into a Kind, kept the low byte.
	k := Kind(d.uint("the message kind"))
	if d.err != nil {
		return nil, d.err
	}
	var m Message
	switch k {
	case KindHello:
		// The version comes first and is checked first: a worker of
		// another version may lay out the rest differently.
		h := &Hello{Version: int(d.int("the version"))}
		if d.err != nil {
			return nil, fmt.Errorf("hello message: %w", d.err)
		}
		if h.Version != Version {
			return nil, &VersionError{Version: h.Version}
		}
		n--
		m = h
	case KindSetup:
		m = new(Setup)
	case KindReady:
		m = new(Ready)
	case KindRun:
		m = new(Run)
	case KindResult:
		m = &d.result
	case KindCancel:
		m = new(Cancel)
	default:
		return nil, fmt.Errorf("unknown message kind %d", k)
	}
	if want := fieldCount[k]; n-1 != want {
		return nil, fmt.Errorf("%s message has %d fields, want %d", k, n-1, want)
	}
	if err := m.decode(d); err != nil {
		return nil, fmt.Errorf("%s message: %w", k, err)
	}
	return m, nil
}

// fieldCount is the number of fields after the kind in each message.
var fieldCount = [...]int{KindHello: 3, KindSetup: 9, KindReady: 1, KindRun: 4, KindResult: 4, KindCancel: 2}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
