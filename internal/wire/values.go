package wire

import (
	"math"

	"github.com/procpool/procpool/internal/bufpool"
)

// Values are encoded values held as slices of one buffer: a run's
// arguments, or a result's values. A chunk of many small values costs its
// buffer and two words of span each, which hold no pointers, rather than a
// slice header each, which the allocator would have to clear and the
// garbage collector to scan.
//
// The zero Values holds none. Buf and Span may be set directly, as an
// encoder that appends to Buf does; a Span entry is an offset in Buf.
type Values struct {
	Buf  []byte
	Span []uint32 // value i is Buf[Span[2i]:Span[2i+1]]
}

// ValuesOf returns Values holding copies of vals, in one buffer.
func ValuesOf(vals ...[]byte) Values {
	n := 0
	for _, v := range vals {
		n += len(v)
	}
	vs := Values{Buf: make([]byte, 0, n), Span: make([]uint32, 0, 2*len(vals))}
	for _, v := range vals {
		vs.Add(v)
	}
	return vs
}

// Recycle gives the buffers of vs to [bufpool], for later frames and
// values. The caller must be done with vs, with any slice of it, and with
// whatever was decoded from it by reference: nothing may read them again.
func Recycle(vs Values) {
	bufpool.Bytes.Put(vs.Buf)
	bufpool.Spans.Put(vs.Span)
}

// Clone returns a copy of vs, in buffers of its own.
func (vs Values) Clone() Values {
	c := Values{Buf: bufpool.Bytes.Get(len(vs.Buf)), Span: bufpool.Spans.Get(len(vs.Span))}
	copy(c.Buf, vs.Buf)
	copy(c.Span, vs.Span)
	return c
}

// Add appends a copy of the value made of parts, one after another.
func (vs *Values) Add(parts ...[]byte) {
	start := len(vs.Buf)
	for _, p := range parts {
		vs.Buf = append(vs.Buf, p...)
	}
	vs.Span = append(vs.Span, uint32(start), uint32(len(vs.Buf)))
}

// Begin starts a value at the end of Buf and returns where it starts: the
// caller appends the value to Buf, then calls End, or Drop to take it back.
// Begin leaves room before the value for the header a Run frame gives it:
// a Run of small values is then written from Buf whole, not value by value.
func (vs *Values) Begin() int {
	vs.Buf = append(vs.Buf, codeBin8, 0)
	return len(vs.Buf)
}

// End ends the value begun at start.
func (vs *Values) End(start int) {
	if n := len(vs.Buf) - start; n <= math.MaxUint8 {
		vs.Buf[start-1] = byte(n)
	} else {
		vs.Buf[start-2] = codeNil // too long for the room: written value by value
	}
	vs.Span = append(vs.Span, uint32(start), uint32(len(vs.Buf)))
}

// Drop takes back the value begun at start.
func (vs *Values) Drop(start int) { vs.Buf = vs.Buf[:start-2] }

// framed returns the values as a frame holds them, byte strings one after
// another, if Buf holds them so, as Begin and End leave values of up to
// 255 bytes.
func (vs Values) framed() ([]byte, bool) {
	if len(vs.Span) == 0 || vs.Span[0] < 2 {
		return nil, false
	}
	first := vs.Span[0] - 2
	end := first
	for i := 0; i < len(vs.Span); i += 2 {
		start, stop := vs.Span[i], vs.Span[i+1]
		if start != end+2 || stop-start > math.MaxUint8 || vs.Buf[end] != codeBin8 || vs.Buf[end+1] != byte(stop-start) {
			return nil, false
		}
		end = stop
	}
	return vs.Buf[first:end], true
}

// Len is the number of values.
func (vs Values) Len() int { return len(vs.Span) / 2 }

// At returns value i, capped so that appending to it cannot overwrite the
// value after it.
func (vs Values) At(i int) []byte {
	start, end := vs.Span[2*i], vs.Span[2*i+1]
	return vs.Buf[start:end:end]
}

// Slice returns values i to j-1.
func (vs Values) Slice(i, j int) Values { return Values{Buf: vs.Buf, Span: vs.Span[2*i : 2*j]} }

// Canonical returns a copy of m in which equal messages are equal values,
// whichever way they were made: a Run's arguments and a Result's values
// each in a buffer of their own, a Result's outcomes as Items, and no
// empty value or list told apart from a missing one. Tests compare
// messages through it.
func Canonical(m Message) Message {
	switch m := m.(type) {
	case *Run:
		c := *m
		vals := make([][]byte, m.Args.Len())
		for i := range vals {
			vals[i] = m.Args.At(i)
		}
		c.Args = ValuesOf(vals...)
		return &c
	case *Result:
		c := *m
		c.Items, c.Values, c.Fails = nil, Values{}, nil
		for _, it := range m.Outcomes() {
			if it.Tail != nil {
				it.Value, it.Tail = append(append([]byte(nil), it.Value...), it.Tail...), nil
			}
			if len(it.Value) == 0 {
				it.Value = nil
			}
			c.Items = append(c.Items, it)
		}
		return &c
	}
	return m
}
