// Package codec turns task arguments and results into msgpack bytes and
// back, with the settings both sides of the pipe must share.
package codec

import (
	"bytes"
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
	c.enc = msgpack.NewEncoder(&c.arena)
	c.enc.UseCompactInts(true)
	c.dec = msgpack.NewDecoder(&c.rd) // c.rd is a ByteScanner: no buffering

	// Numbers decoded into `any` come back as int64 or uint64 (compact ints
	// do not keep the sign of a non-negative value) and float64, whatever
	// the sender's width.
	c.dec.UseLooseInterfaceDecoding(true)
	return c
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
func (c *Codec) Encode(v any) ([]byte, error) {
	start := c.arena.Len()
	if err := c.enc.Encode(v); err != nil {
		c.arena.Truncate(start)
		return nil, err
	}
	b := c.arena.Bytes()
	return b[start:len(b):len(b)], nil
}

// Len is the number of bytes in the arena.
func (c *Codec) Len() int { return c.arena.Len() }

// Bytes returns the arena's contents, valid until Reset.
func (c *Codec) Bytes() []byte { return c.arena.Bytes() }

// Reset empties the arena; slices returned by Encode become invalid.
func (c *Codec) Reset() { c.arena.Reset() }

// Decode decodes b into the value v points to.
func (c *Codec) Decode(b []byte, v any) error {
	// The decoder reads c.rd, which buffers nothing of its own: pointing
	// c.rd at b is enough, and far cheaper than resetting the decoder.
	c.rd.Reset(b)
	return c.dec.Decode(v)
}
