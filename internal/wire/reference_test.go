package wire

// This file keeps the msgpack-based decoding that Decoder replaced, as the
// reference the hand-written parser must agree with (see
// FuzzDecodeReference), and the msgpack-based encoding of Runs and Results
// that Encoder's must match byte for byte (TestEncodeMatchesReference).

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

type refDecoder struct {
	body []byte
	rd   bytes.Reader
	dec  *msgpack.Decoder
}

// refDecode decodes body as Decoder.Decode did before it parsed by hand.
func refDecode(body []byte) (Message, error) {
	d := &refDecoder{body: body}
	d.rd.Reset(body)
	d.dec = msgpack.NewDecoder(&d.rd)
	m, err := d.message()
	if err == nil && d.rd.Len() != 0 {
		err = fmt.Errorf("%d bytes left over after the %s message", d.rd.Len(), m.kind())
	}
	if err != nil {
		return nil, &FrameError{Reason: err.Error(), Head: body[:min(len(body), 32)], Err: err}
	}
	return m, nil
}

func (d *refDecoder) message() (Message, error) {
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
		m = new(Result)
	case KindCancel:
		m = new(Cancel)
	default:
		return nil, fmt.Errorf("unknown message kind %d", k)
	}
	if want := fieldCount[k]; n-1 != want {
		return nil, fmt.Errorf("%s message has %d fields, want %d", k, n-1, want)
	}
	if err := d.decode(m); err != nil {
		return nil, fmt.Errorf("%s message: %w", k, err)
	}
	return m, nil
}

func (d *refDecoder) arrayLen() (int, error) {
	n, err := d.dec.DecodeArrayLen()
	if err != nil {
		return 0, err
	}
	if n < 0 || n > d.rd.Len() {
		return 0, fmt.Errorf("array length %d does not fit in the %d bytes left", n, d.rd.Len())
	}
	return n, nil
}

func (d *refDecoder) bin() ([]byte, error) {
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

func (d *refDecoder) str() (string, error) {
	b, err := d.bin()
	return string(b), err
}

func (d *refDecoder) strs() ([]string, error) {
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

// decode reads the fields of m, after the kind (and a Hello's version).
func (d *refDecoder) decode(m Message) error {
	switch m := m.(type) {
	case *Hello:
		err := d.dec.Decode(&m.PID)
		if err == nil {
			m.Tasks, err = d.strs()
		}
		if err == nil {
			m.Build, err = d.str()
		}
		return err
	case *Setup:
		err := d.dec.Decode(&m.MaxFrame)
		if err == nil {
			m.InitTask, err = d.str()
		}
		if err == nil {
			m.InitArg, err = d.bin()
		}
		if err == nil {
			err = firstErr(d.dec.Decode(&m.Progress), d.dec.Decode(&m.GOMAXPROCS), d.dec.Decode(&m.Share))
		}
		if err == nil {
			m.Env, err = d.strs()
		}
		if err == nil {
			err = firstErr(d.dec.Decode(&m.TaskTimeout), d.dec.Decode(&m.Clock))
		}
		return err
	case *Ready:
		return d.item(&m.Init)
	case *Run:
		err := d.dec.Decode(&m.ID)
		if err == nil {
			m.Task, err = d.str()
		}
		if err == nil {
			err = d.dec.Decode(&m.Deadline)
		}
		if err != nil {
			return err
		}
		n, err := d.arrayLen()
		if err != nil {
			return err
		}
		args := make([][]byte, n)
		for i := range args {
			if args[i], err = d.bin(); err != nil {
				return err
			}
		}
		m.Args = ValuesOf(args...)
		return nil
	case *Result:
		if err := firstErr(d.dec.Decode(&m.ID), d.dec.Decode(&m.More), d.dec.Decode(&m.Took)); err != nil {
			return err
		}
		n, err := d.arrayLen()
		if err != nil {
			return err
		}
		m.Items = make([]Item, n)
		for i := range m.Items {
			if err := d.item(&m.Items[i]); err != nil {
				return err
			}
		}
		return nil
	case *Cancel:
		return firstErr(d.dec.Decode(&m.ID), d.dec.Decode(&m.Whole))
	}
	panic(fmt.Sprintf("no reference decoding for %T", m))
}

func (d *refDecoder) item(it *Item) error {
	c, err := d.dec.PeekCode()
	if err != nil {
		return err
	}
	if !msgpcode.IsFixedArray(c) && c != msgpcode.Array16 && c != msgpcode.Array32 {
		it.Status = StatusOK
		it.Value, err = d.bin()
		return err
	}
	n, err := d.arrayLen()
	if err != nil {
		return err
	}
	status, err := d.dec.DecodeUint8()
	if err != nil {
		return err
	}
	if it.Status = Status(status); it.Status == StatusOK || n != 4 {
		return fmt.Errorf("item with status %d has %d fields", it.Status, n)
	}
	if it.Message, err = d.str(); err != nil {
		return err
	}
	if it.Stack, err = d.str(); err != nil {
		return err
	}
	it.Codes, err = d.strs()
	return err
}

// refEncode encodes a Run or a Result as Encoder did before it appended
// byte strings itself.
func refEncode(tb testing.TB, m Message) []byte {
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	var err error
	switch m := m.(type) {
	case *Run:
		err = firstErr(e.EncodeArrayLen(5), e.EncodeUint(uint64(KindRun)), e.EncodeUint(m.ID), e.EncodeString(m.Task), e.EncodeInt(m.Deadline), e.EncodeArrayLen(m.Args.Len()))
		for i := range m.Args.Len() {
			err = firstErr(err, e.EncodeBytes(m.Args.At(i)))
		}
	case *Result:
		items := m.Outcomes()
		err = firstErr(e.EncodeArrayLen(5), e.EncodeUint(uint64(KindResult)), e.EncodeUint(m.ID), e.EncodeBool(m.More), e.EncodeInt(int64(m.Took)), e.EncodeArrayLen(len(items)))
		for _, it := range items {
			if it.Status == StatusOK {
				err = firstErr(err, e.EncodeBytes(it.Value))
				continue
			}
			err = firstErr(err, e.EncodeArrayLen(4), e.EncodeUint(uint64(it.Status)), e.EncodeString(it.Message), e.EncodeString(it.Stack), e.Encode(it.Codes))
		}
	default:
		tb.Fatalf("no reference encoding for %T", m)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
