package wire

import (
	"io"
	"time"
)

// Stream is one side of a worker's protocol: messages read from one pipe and
// written to the other. Reading and writing may happen on two goroutines at
// once; each of them must not.
type Stream struct {
	poll poller // the pipe r reads, if its reads can poll; else nil
	r    *Reader
	w    *Writer
	dec  *Decoder
}

// poller is a pipe whose reads can poll it before they wait (Direct's).
type poller interface{ setPoll(time.Duration) }

// NewStream returns a Stream that reads r and writes w, in frames of at most
// max bytes.
func NewStream(r io.Reader, w io.Writer, max int) *Stream {
	p, _ := r.(poller)
	return &Stream{poll: p, r: NewReader(r, max), w: NewWriter(w, max), dec: NewDecoder()}
}

// Read reads and decodes the next message. Byte fields of the message refer
// into its frame; a Result is the Stream's own until Release.
func (s *Stream) Read() (Message, error) {
	body, err := s.r.ReadFrame()
	if err != nil {
		return nil, err
	}
	return s.dec.Decode(body)
}

// SetPoll has the stream's reads, from now on, poll the pipe for up to d
// when it is empty, before they wait in the runtime's poller; 0 turns that
// off. It takes effect where the stream reads a pipe with raw system calls
// (see [Direct]), and changes nothing elsewhere. Only the goroutine that
// reads the stream may call it.
//
// A reader that waits in the poller lets its thread sleep, and its CPU may
// go idle; the write that wakes it must then wake the CPU too, which on a
// virtual machine is a large part of a quick call's round trip. A reader
// that polls finds the data as it arrives, at the cost of the CPU it holds
// meanwhile; a read deadline is seen only once the poll ends.
func (s *Stream) SetPoll(d time.Duration) {
	if s.poll != nil {
		s.poll.setPoll(d)
	}
}

// Buffered reports whether part of the next message has arrived (see
// Reader.Buffered).
func (s *Stream) Buffered() bool { return s.r.Buffered() }

// Whole reports whether the next message has arrived whole (see
// Reader.Whole).
func (s *Stream) Whole() bool { return s.r.Whole() }

// Release says that the Result read last is no longer in use.
func (s *Stream) Release() { s.dec.Release() }

// Write encodes m into the write buffer; see Writer.Write.
func (s *Stream) Write(m Message) error { return s.w.Write(m) }

// Flush writes the buffered frames to the pipe.
func (s *Stream) Flush() error { return s.w.Flush() }

// Send writes m and flushes it.
func (s *Stream) Send(m Message) error {
	if err := s.w.Write(m); err != nil {
		return err
	}
	return s.w.Flush()
}

// SetMax changes the frame size limit of both directions.
func (s *Stream) SetMax(max int) {
	s.r.SetMax(max)
	s.w.SetMax(max)
}
