// Package wire is the protocol between a pool and its worker processes:
// length-prefixed frames, each holding one msgpack-encoded message.
//
// A frame is a 4-byte big-endian body length followed by the body. The
// length is checked against a limit before anything is allocated, so a
// corrupt or hostile prefix costs an error, never a huge allocation.
package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/procpool/procpool/internal/bufpool"
)

// Version is the protocol version. Both sides must agree on it; it travels
// in the worker's role marker and again in its Hello.
const Version = 3

// EnvRole is the environment variable that marks a process as a worker. Its
// value is the protocol version the parent speaks.
const EnvRole = "PROCPOOL_WORKER"

// EnvJournal names the descriptor of the journal (package journal) that the
// pool shares with a worker it started on this machine.
const EnvJournal = "PROCPOOL_JOURNAL_FD"

// ArgRole is the command-line form of the role marker, for launchers that do
// not forward the environment (SSH, schedulers): "--procpool-worker=3".
const ArgRole = "--procpool-worker"

// RoleArg returns the command-line role marker for this protocol version.
func RoleArg() string { return ArgRole + "=" + strconv.Itoa(Version) }

// DefaultMaxFrame is the default bound on a frame body: 64 MiB.
const DefaultMaxFrame = 64 << 20

// headerLen is the size of a frame's length prefix.
const headerLen = 4

// bufSize is the buffer size of both ends of a pipe; a pipe holds 64 KiB.
const bufSize = 64 << 10

// ErrFrameTooLarge is matched by errors about frames over the size limit.
var ErrFrameTooLarge = errors.New("frame too large")

// FrameError reports a frame that could not be read: an oversized length
// prefix, a truncated body, or a body that is not a valid message. Head holds
// the first bytes of the offending data so a human can see what arrived.
type FrameError struct {
	Reason string
	Head   []byte
	Err    error
}

func (e *FrameError) Error() string {
	s := "garbled frame: " + e.Reason
	if len(e.Head) > 0 {
		s += "; data starts " + ShowBytes(e.Head)
	}
	return s
}

func (e *FrameError) Unwrap() error { return e.Err }

// ShowBytes renders raw bytes for an error message: hex, plus the printable
// text when there is some.
func ShowBytes(b []byte) string {
	const max = 32
	more := ""
	if len(b) > max {
		b, more = b[:max], " …"
	}
	return fmt.Sprintf("% x%s (%s)", b, more, strconv.Quote(string(b)))
}

// Reader reads frames from one stream.
type Reader struct {
	br  *bufio.Reader
	max int

	// The frame being read: a read cut short (by a read deadline, say)
	// keeps what it read, and the next goes on with it.
	hdr   [headerLen]byte
	hdrN  int    // header bytes read
	body  []byte // allocated once the header is whole; nil before
	bodyN int    // body bytes read
}

// NewReader returns a Reader over r that refuses bodies larger than max bytes.
func NewReader(r io.Reader, max int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, bufSize), max: max}
}

// SetMax changes the size limit.
func (r *Reader) SetMax(max int) { r.max = max }

// Buffered reports whether bytes of a frame not yet returned have been read
// from the stream: the next ReadFrame may not have to wait.
func (r *Reader) Buffered() bool { return r.hdrN > 0 || r.br.Buffered() > 0 }

// Whole reports whether the next frame has arrived whole: ReadFrame will
// return it without reading the stream.
func (r *Reader) Whole() bool {
	if r.hdrN > 0 || r.br.Buffered() < headerLen {
		return false
	}
	hdr, _ := r.br.Peek(headerLen)
	return int64(binary.BigEndian.Uint32(hdr)) <= int64(r.br.Buffered()-headerLen)
}

// ReadFrame reads the next frame and returns its body in a slice the caller
// owns: messages decoded from it refer into it instead of copying. The slice
// comes from [bufpool.Bytes], so a caller done with it and all that refers
// into it may give it back (see [Recycle]).
// At a clean end of stream it returns io.EOF; a stream cut inside a frame is
// io.ErrUnexpectedEOF. Any other error of the stream, such as
// os.ErrDeadlineExceeded, leaves the frame half read: the next ReadFrame,
// from any goroutine, goes on with it.
func (r *Reader) ReadFrame() ([]byte, error) {
	for r.hdrN < headerLen {
		n, err := r.br.Read(r.hdr[r.hdrN:])
		r.hdrN += n
		switch {
		case err == io.EOF && r.hdrN == 0:
			return nil, io.EOF
		case err == io.EOF:
			head := append([]byte(nil), r.hdr[:r.hdrN]...)
			r.reset()
			return nil, &FrameError{Reason: fmt.Sprintf("stream ended inside a frame header after %d bytes", len(head)), Head: head, Err: io.ErrUnexpectedEOF}
		case err != nil:
			return nil, err
		}
	}
	if r.body == nil {
		size := binary.BigEndian.Uint32(r.hdr[:])
		if int64(size) > int64(r.max) {
			head := append([]byte(nil), r.hdr[:]...)
			more, _ := r.br.Peek(min(28, r.br.Buffered())) // what has arrived; never wait for more
			head = append(head, more...)
			r.reset()
			return nil, &FrameError{
				Reason: fmt.Sprintf("frame of %d bytes is over the %d-byte limit", size, r.max),
				Head:   head,
				Err:    ErrFrameTooLarge,
			}
		}
		r.body = bufpool.Bytes.Get(int(size))
	}
	for r.bodyN < len(r.body) {
		n, err := r.br.Read(r.body[r.bodyN:])
		r.bodyN += n
		switch {
		case err == io.EOF:
			body, n := r.body, r.bodyN
			r.reset()
			return nil, &FrameError{Reason: fmt.Sprintf("stream ended after %d of %d body bytes", n, len(body)), Head: body[:min(n, 32)], Err: io.ErrUnexpectedEOF}
		case err != nil:
			return nil, err
		}
	}
	body := r.body
	r.reset()
	return body, nil
}

// reset forgets the frame read last.
func (r *Reader) reset() { r.hdrN, r.body, r.bodyN = 0, nil, 0 }

// Writer writes frames to one stream through a buffer; nothing reaches the
// stream before Flush or a full buffer.
type Writer struct {
	bw  *bufio.Writer
	enc *Encoder
	max int
}

// NewWriter returns a Writer over w that refuses bodies larger than max bytes.
func NewWriter(w io.Writer, max int) *Writer {
	return &Writer{bw: bufio.NewWriterSize(w, bufSize), enc: NewEncoder(), max: max}
}

// Write encodes m as one frame into the buffer. A message over the size limit
// is an error matching ErrFrameTooLarge and writes nothing. Once Write has
// returned, it no longer reads m's byte strings: each was copied into the
// buffer or written to the stream, so the caller may reuse them.
func (w *Writer) Write(m Message) error {
	e := w.enc
	if err := e.encode(m, splitMin); err != nil {
		return err
	}
	defer e.forget()
	if e.size > w.max || uint64(e.size) > math.MaxUint32 { // the prefix cannot hold more
		return fmt.Errorf("%s message of %d bytes is over the %d-byte limit: %w", m.kind(), e.size, w.max, ErrFrameTooLarge)
	}
	buf := e.buf.b
	binary.BigEndian.PutUint32(buf, uint32(e.size))
	// Large byte strings are written from where they are: bufio copies
	// what fits in its buffer and writes the rest straight to the stream.
	at := 0
	for _, s := range e.segs {
		if _, err := w.bw.Write(buf[at:s.at]); err != nil {
			return err
		}
		if _, err := w.bw.Write(s.data); err != nil {
			return err
		}
		at = s.at
	}
	_, err := w.bw.Write(buf[at:])
	return err
}

// SetMax changes the size limit.
func (w *Writer) SetMax(max int) { w.max = max }

// Max returns the size limit.
func (w *Writer) Max() int { return w.max }

// Flush writes buffered frames to the stream.
func (w *Writer) Flush() error { return w.bw.Flush() }
