// Package codec turns task arguments and results into msgpack bytes and
// back, with the settings both sides of the pipe must share.
package codec

import (
	"bytes"
	"fmt"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// Codec encodes values into an append-only arena and decodes values from
// byte slices, reusing one msgpack encoder and decoder. A Codec is not safe
// for concurrent use.
type Codec struct {
	arena bytes.Buffer
	small []byte // the fast paths' arena (Fast.Encode): a plain append costs a tiny value far less
	enc   *msgpack.Encoder
	rd    bytes.Reader
	dec   *msgpack.Decoder

	// The type last encoded, and what it needs: a task encodes values of
	// one type over and over.
	lastType reflect.Type
	lastInfo *typeInfo
	w        walker

	// Share lets a task's []byte argument of MinShared bytes or more be
	// handed out in the bytes it was decoded from rather than copied: for
	// a caller that owns those bytes and never writes them again, as a
	// worker process owns each frame it reads. It also lets a []byte
	// result that large be sent from the bytes the task returned (see
	// BinHeader and wire.Item.Tail), by a caller that sends it before the
	// task runs again.
	Share bool
	// Lent is set once a value has been handed out in the bytes it was
	// decoded from (see Share): their owner must then keep them as they
	// are, rather than reuse them, and clears it.
	Lent bool
}

// MinShared is the size from which a []byte value may be handed out in the
// bytes it arrived in (see [Bin] and Codec.Share) rather than copied. A
// value this large travels in a frame it shares with few others, so keeping
// it keeps little else alive.
const MinShared = 64 << 10

// New returns a Codec.
func New() *Codec {
	c := &Codec{}
	c.init()
	return c
}

// init gives c a fresh encoder and decoder.
func (c *Codec) init() {
	c.enc = msgpack.NewEncoder(&c.arena)
	c.enc.UseCompactInts(true)
	c.dec = msgpack.NewDecoder(&c.rd) // c.rd is a ByteScanner: no buffering

	// Numbers decoded into `any` come back as int64 or uint64 (compact ints
	// do not keep the sign of a non-negative value) and float64, whatever
	// the sender's width.
	c.dec.UseLooseInterfaceDecoding(true)
}

// PanicError is a panic in a value's own msgpack code (a CustomEncoder,
// CustomDecoder, Marshaler or Unmarshaler), recovered.
type PanicError struct {
	Value any    // what was passed to panic
	Stack []byte // where it panicked
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// recovered turns a panic into a *PanicError in *err, and gives c a fresh
// encoder and decoder, since the panic may have left them mid-value. Call it
// deferred.
func (c *Codec) recovered(err *error) {
	if r := recover(); r != nil {
		*err = &PanicError{Value: r, Stack: debug.Stack()}
		c.init()
	}
}

var pool = sync.Pool{New: func() any { return New() }}

// Get returns a Codec from a shared pool, its arena empty.
func Get() *Codec { return pool.Get().(*Codec) }

// Put resets c and returns it to the pool. Slices it returned become invalid.
func Put(c *Codec) {
	if c.arena.Cap() > 1<<20 || cap(c.small) > 1<<20 {
		return // let a large arena go rather than pin it
	}
	c.Reset()
	pool.Put(c)
}

// Encode appends the encoding of v to the arena and returns it. The slice
// stays valid until Reset, even as the arena grows. On error nothing is kept.
// A panic in v's own encoding code is an error, a *PanicError.
//
// A value that contains itself would make msgpack recurse until the stack
// overflowed, which kills the program, so values of the types that can (see
// [CheckType]) are walked first: one that contains itself is a *[CycleError],
// and one that nests deeper than [MaxDepth] a *[DepthError]. Values of other
// types are not walked.
func (c *Codec) Encode(v any) ([]byte, error) {
	if t := reflect.TypeOf(v); t != nil {
		if t != c.lastType {
			c.lastType, c.lastInfo = t, infoOf(t)
		}
		if c.lastInfo.walk {
			if err := c.w.walk(reflect.ValueOf(v), c.lastInfo); err != nil {
				return nil, err
			}
		}
	}
	start := c.arena.Len()
	if err := c.encode(v); err != nil {
		c.arena.Truncate(start)
		return nil, err
	}
	b := c.arena.Bytes()
	return b[start:len(b):len(b)], nil
}

func (c *Codec) encode(v any) (err error) {
	defer c.recovered(&err)
	return c.enc.Encode(v)
}

// Len is the number of bytes in the arena.
func (c *Codec) Len() int { return c.arena.Len() }

// Bytes returns the arena's contents, valid until Reset.
func (c *Codec) Bytes() []byte { return c.arena.Bytes() }

// Truncate drops the bytes of the arena after the first n.
func (c *Codec) Truncate(n int) { c.arena.Truncate(n) }

// Discard drops the first n bytes of the arena; the rest moves down by n.
// Slices returned by Encode become invalid.
func (c *Codec) Discard(n int) { c.arena.Next(n) }

// Reset empties the arenas; slices returned by Encode and Fast.Encode
// become invalid.
func (c *Codec) Reset() {
	c.arena.Reset()
	c.small = c.small[:0]
}

// Decode decodes b into the value v points to. A panic in v's own decoding
// code is an error, a *PanicError. A length in b that does not fit in the
// bytes that follow it is an error before anything is allocated for it. An
// interface msgpack cannot fill, one
// with methods that was sent a value it decodes as a map or a number, is an
// *[InterfaceError].
func (c *Codec) Decode(b []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = interfaceError(r, reflect.TypeOf(v))
			if err == nil {
				err = &PanicError{Value: r, Stack: debug.Stack()}
			}
			c.init()
		}
	}()
	if err := checkLengths(b); err != nil {
		return err
	}
	// The decoder reads c.rd, which buffers nothing of its own: pointing
	// c.rd at b is enough, and far cheaper than resetting the decoder.
	c.rd.Reset(b)
	return c.dec.Decode(v)
}

// InterfaceError reports a value sent for an interface with methods, such
// as a field of type Shape, which msgpack decodes through its structure: it
// decodes the value as a map (or a number, a string…), which is no Shape,
// since nothing in the data says which concrete type to make.
type InterfaceError struct {
	Into   reflect.Type // the type decoded into
	Iface  reflect.Type // the interface
	Places []string     // where it lies in Into ("main.Scene.Shapes[i]")
	Got    string       // the type msgpack made of the value ("map[string]interface {}")
}

func (e *InterfaceError) Error() string {
	where := "into interface type " + e.Iface.String()
	hint := "make the type concrete, or register each concrete type that is sent with msgpack.RegisterExt"
	if len(e.Places) > 1 || e.Places[0] != e.Into.String() {
		where = fmt.Sprintf("%s (of interface type %s)", strings.Join(e.Places, " or "), e.Iface)
		hint = "make the field a concrete type, give " + e.Into.String() + " a DecodeMsgpack method, or register each concrete type that is sent in it with msgpack.RegisterExt"
	}
	if e.Iface == errorType {
		hint = "send the error's text instead"
	}
	return fmt.Sprintf("cannot decode %s: msgpack made a %s of the data sent, which is not a %s, as nothing in it says which concrete type to make; %s", where, e.Got, e.Iface, hint)
}

// interfaceError turns the panic of reflect's Set, when msgpack sets an
// interface of ptr's element type to a value that does not implement it,
// into an *InterfaceError; for any other panic it returns nil.
func interfaceError(r any, ptr reflect.Type) error {
	// reflect.Value.Set panics with "reflect.Set: value of type X is not
	// assignable to type Y".
	msg, ok := r.(string)
	if !ok || ptr == nil || ptr.Kind() != reflect.Pointer {
		return nil
	}
	rest, ok := strings.CutPrefix(msg, "reflect.Set: value of type ")
	if !ok {
		return nil
	}
	got, iface, ok := strings.Cut(rest, " is not assignable to type ")
	if !ok {
		return nil
	}
	into := ptr.Elem()
	e := &InterfaceError{Into: into, Got: got}
	for _, p := range interfacePlaces(into) {
		if p.iface.String() == iface {
			e.Iface = p.iface
			e.Places = append(e.Places, p.path)
		}
	}
	if into == errorType && iface == "error" {
		e.Iface, e.Places = errorType, []string{"error"}
	}
	if e.Iface == nil {
		return nil
	}
	return e
}

// EncodeTo appends the encoding of v to dst and returns the extended slice,
// as Encode does to the arena: the caller keeps the bytes without a copy.
// On error dst comes back as it was.
func (c *Codec) EncodeTo(dst []byte, v any) ([]byte, error) {
	arena := c.arena
	c.arena = *bytes.NewBuffer(dst)
	_, err := c.Encode(v)
	dst = c.arena.Bytes()
	c.arena = arena
	return dst, err
}
