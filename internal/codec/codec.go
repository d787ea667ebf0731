// Package codec turns task arguments and results into msgpack bytes and
// back, with the settings both sides of the pipe must share.
package codec

import (
	"bytes"
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// Codec encodes values into an append-only arena and decodes values from
// byte slices, reusing one msgpack encoder and decoder. A Codec is not safe
// for concurrent use.
type Codec struct {
	arena bytes.Buffer
	enc   *msgpack.Encoder
	rd    bytes.Reader
	dec   *msgpack.Decoder
}

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
	if c.arena.Cap() > 1<<20 {
		return // let a large arena go rather than pin it
	}
	c.Reset()
	pool.Put(c)
}

// Encode appends the encoding of v to the arena and returns it. The slice
// stays valid until Reset, even as the arena grows. On error nothing is kept.
// A panic in v's own encoding code is an error, a *PanicError.
func (c *Codec) Encode(v any) ([]byte, error) {
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

// Reset empties the arena; slices returned by Encode become invalid.
func (c *Codec) Reset() { c.arena.Reset() }

// Decode decodes b into the value v points to. A panic in v's own decoding
// code is an error, a *PanicError.
func (c *Codec) Decode(b []byte, v any) (err error) {
	defer c.recovered(&err)
	// The decoder reads c.rd, which buffers nothing of its own: pointing
	// c.rd at b is enough, and far cheaper than resetting the decoder.
	c.rd.Reset(b)
	return c.dec.Decode(v)
}
