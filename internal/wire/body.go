package wire

// This file turns messages into frame bodies and back: the Encoder, and the
// defensive Decoder, which checks every length against the bytes left
// before it allocates.

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"
)

// Encoder encodes message bodies into one reused buffer.
type Encoder struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
	// split is the size from which bin leaves a byte string where it is
	// rather than copy it into buf; 0 copies them all. Writer sets it: it
	// writes the segments from where they are.
	split int
	segs  []segment
	size  int // the body's size: buf after the header room, plus the segments
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
	return e.buf.Bytes()[headerLen:], nil
}

// encode encodes m into buf after room for the frame header, leaving byte
// strings of split bytes or more (when split > 0) to segs.
func (e *Encoder) encode(m Message, split int) error {
	e.buf.Reset()
	e.forget()
	e.split = split
	var room [headerLen]byte
	e.buf.Write(room[:])
	if err := m.encode(e); err != nil {
		e.forget()
		return fmt.Errorf("encode %s message: %w", m.kind(), err)
	}
	e.size += e.buf.Len() - headerLen
	return nil
}

// bin encodes a byte string, as a segment when it is large enough.
func (e *Encoder) bin(b []byte) error {
	if e.split == 0 || len(b) < e.split {
		return e.enc.EncodeBytes(b)
	}
	if err := e.enc.EncodeBytesLen(len(b)); err != nil {
		return err
	}
	e.segs = append(e.segs, segment{at: e.buf.Len(), data: b})
	e.size += len(b)
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
// caller has called Release: results are the parent's hot path, and it is
// done with each before the next.
type Decoder struct {
	result Result
	body   []byte
	rd     bytes.Reader
	dec    *msgpack.Decoder
}

// maxKeptItems bounds the items buffer a Decoder keeps between results
// (64 bytes each): a result of a huge chunk gets a buffer of its own.
const maxKeptItems = 16 << 10

// Release tells d that the Result it decoded last is no longer in use. It
// forgets the values, so that they do not keep the frame alive, and lets go
// of a buffer too large to keep.
func (d *Decoder) Release() {
	items := d.result.Items[:cap(d.result.Items)]
	if len(items) > maxKeptItems {
		d.result.Items = nil
		return
	}
	clear(items)
	d.result.Items = items[:0]
}

// NewDecoder returns a Decoder.
func NewDecoder() *Decoder {
	d := &Decoder{}
	d.dec = msgpack.NewDecoder(&d.rd)
	return d
}

// Decode decodes one message body. Any error is a *FrameError showing the
// start of the body.
func (d *Decoder) Decode(body []byte) (Message, error) {
	d.body = body
	d.rd.Reset(body)
	d.dec.ResetReader(&d.rd)
	m, err := d.message()
	if err == nil && d.rd.Len() != 0 {
		err = fmt.Errorf("%d bytes left over after the %s message", d.rd.Len(), m.kind())
	}
	if err != nil {
		return nil, &FrameError{Reason: err.Error(), Head: body[:min(len(body), 32)], Err: err}
	}
	return m, nil
}

func (d *Decoder) message() (Message, error) {
	n, err := d.arrayLen()
	if err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, errors.New("empty message")
	}
	var k Kind
	if err := d.dec.Decode(&k); err != nil {
		return nil, fmt.Errorf("message kind: %w", err)
	}
	var m Message
	switch k {
	case KindHello:
		// The version comes first and is checked first: a worker of
		// another version may lay out the rest differently.
		h := new(Hello)
		if err := d.dec.Decode(&h.Version); err != nil {
			return nil, fmt.Errorf("hello message: version: %w", err)
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
var fieldCount = map[Kind]int{KindHello: 3, KindSetup: 9, KindReady: 1, KindRun: 4, KindResult: 4, KindCancel: 2}

// arrayLen reads an array header. A nil array or one longer than the bytes
// left (every element takes at least one) is an error, so a corrupt length
// cannot force a large allocation.
func (d *Decoder) arrayLen() (int, error) {
	n, err := d.dec.DecodeArrayLen()
	if err != nil {
		return 0, err
	}
	if n < 0 || n > d.rd.Len() {
		return 0, fmt.Errorf("array length %d does not fit in the %d bytes left", n, d.rd.Len())
	}
	return n, nil
}

// bin reads a byte string without copying: the result refers into the body.
func (d *Decoder) bin() ([]byte, error) {
	n, err := d.dec.DecodeBytesLen()
	if err != nil || n < 0 {
		return nil, err
	}
	if n > d.rd.Len() {
		return nil, fmt.Errorf("byte string of %d bytes does not fit in the %d bytes left", n, d.rd.Len())
	}
	off := len(d.body) - d.rd.Len()
	if _, err := d.rd.Seek(int64(n), io.SeekCurrent); err != nil {
		return nil, err
	}
	return d.body[off : off+n : off+n], nil
}

// str reads a string through bin, so its length is checked against the bytes
// left before anything is allocated; msgpack's own string decoding would
// allocate up to 1 MiB for a corrupt length.
func (d *Decoder) str() (string, error) {
	b, err := d.bin()
	return string(b), err
}

// strs reads an array of strings, nil included, with the same checks;
// msgpack's own []string decoding preallocates up to a million elements
// (16 MiB) for a corrupt length.
func (d *Decoder) strs() ([]string, error) {
	n, err := d.dec.DecodeArrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	if n > d.rd.Len() {
		return nil, fmt.Errorf("array length %d does not fit in the %d bytes left", n, d.rd.Len())
	}
	ss := make([]string, n)
	for i := range ss {
		if ss[i], err = d.str(); err != nil {
			return nil, err
		}
	}
	return ss, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
