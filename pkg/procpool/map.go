package procpool

import (
	"context"
	"sync"

	"github.com/procpool/procpool/internal/codec"
	"github.com/procpool/procpool/internal/wire"
)

// MapOption configures one call of [Task.Map], [Task.Imap] or
// [Task.ImapUnordered]. Each option says what it does for each of them; a
// call that an option does not apply to ignores it.
//
//	option     Map              Imap, ImapUnordered
//	Chunksize  calls per chunk  calls per chunk, fixed rather than adapted
//	Window     ignored          chunks in flight at once
type MapOption func(*mapOptions)

type mapOptions struct {
	chunksize int
	window    int
}

// Chunksize sets the number of calls sent to a worker at once. For Map the
// default is len(in) / (4 × workers), rounded up, like
// multiprocessing.Pool.map, but a default chunk also ends once its encoded
// arguments reach 64 KiB: a large Map of small values then streams through
// the workers in many chunks rather than in a few that each side must
// encode, send and decode whole before the next step can start. For Imap
// and ImapUnordered it fixes the size of every chunk, which otherwise adapts
// to how long chunks take. Either way a chunk is also cut short when its
// encoded arguments reach [Config.MaxChunkBytes].
func Chunksize(n int) MapOption { return func(o *mapOptions) { o.chunksize = n } }

// defaultChunkBytes is where Map cuts a chunk of the default size. Cold,
// a Map of 1,000,000 ints on 2 workers ran 1.5 times as fast with chunks
// cut at 64 or 128 KiB as with Pool.map's 125,000 calls (about 600 KiB);
// at 256 KiB it was already slower.
const defaultChunkBytes = 64 << 10

// mapWindowBytes is the least a Map keeps of encoded arguments in flight.
// It keeps the workers fed while the parent's memory stays bounded by the
// chunks in flight, never by the input.
const mapWindowBytes = 16 << 20

// Map calls the task once per element of in, in chunks spread over the
// workers, and returns the results in input order. If any call fails, Map
// returns the error of the first failed element in input order, once every
// chunk has ended: an *[ElementError] that says which element it was. If a
// worker died, it is the element whose call was running, which caused the
// death, rather than one that failed with it. If
// ctx ends first, Map returns ctx.Err() at once, and no call of it starts
// afterwards: the chunks queued are dropped, the workers holding the others
// skip their calls not started and have the context of the one they run
// cancelled; a worker whose call has not returned [Config.KillGrace] later
// is killed and replaced, as for [Future.Cancel]. The tasks' contexts carry
// ctx's deadline, if it has one.
//
// Map encodes a chunk just before it queues it, and decodes each chunk's
// results as they come back, while the workers run the others. Of the
// encoded arguments it keeps only those of the chunks in flight: at most
// 16 MiB, or two chunks of [Config.MaxChunkBytes] per worker if that is
// more. So a Map of large arguments costs memory for the chunks in flight
// and the results, never a second copy of the whole input.
func (t *Task[I, O]) Map(ctx context.Context, p *Pool, in []I, opts ...MapOption) ([]O, error) {
	var o mapOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := p.usable(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	size, maxBytes := chunking(len(in), p.cfg.Workers, o.chunksize, p.cfg.MaxChunkBytes)
	c := codec.Get()
	defer codec.Put(c)
	m := mapRun[I, O]{
		t: t, p: p, in: in, out: make([]O, len(in)), size: size, maxBytes: maxBytes,
		e:           t.encoder(p.cfg.MaxFrameSize, c),
		c:           c,
		live:        map[*batch]struct{}{},
		windowBytes: max(mapWindowBytes, 2*p.cfg.Workers*p.cfg.MaxChunkBytes),
		firstAt:     len(in),
	}
	defer m.e.release()
	_, m.sharesBytes = any(&m.out).(*[][]byte)
	m.back.signal = make(chan struct{}, 1)
	m.finished = m.back.add
	m.deadline = deadlineOf(ctx)
	for m.next < len(in) || len(m.live) > 0 {
		if err := m.fill(); err != nil {
			p.cancel(m.batches()...)
			return nil, err
		}
		select {
		case <-m.back.signal:
		case <-ctx.Done():
			p.cancel(m.batches()...)
			return nil, ctx.Err()
		}
		back := m.back.take(m.spare)
		for _, b := range back {
			m.decode(b)
		}
		m.spare = clear0(back)
	}
	if m.firstErr != nil {
		return nil, &ElementError{Index: m.firstAt, Err: m.firstErr}
	}
	return m.out, nil
}

// chunking returns the calls per chunk of a Map of n calls on workers, and
// where a chunk's arguments end, but for its first: as chunksize and
// maxChunkBytes set them, or by default (chunksize 0) as [Chunksize] says.
func chunking(n, workers, chunksize, maxChunkBytes int) (size, maxBytes int) {
	if chunksize > 0 {
		return chunksize, maxChunkBytes
	}
	return max(1, (n+4*workers-1)/(4*workers)), min(maxChunkBytes, defaultChunkBytes)
}

// mapRun is one call of Map: the input, the chunks in flight, the results.
// Only Map's goroutine touches it, but for back.
type mapRun[I, O any] struct {
	t        *Task[I, O]
	p        *Pool
	in       []I
	out      []O
	size     int   // calls per chunk
	maxBytes int   // where a chunk's arguments end, but for its first
	deadline int64 // ctx's, in Unix nanoseconds (deadlineOf)
	e        argEncoder[I]
	c        *codec.Codec // decodes the results
	// O is []byte: a large result is the frame it came in, which the
	// fast path would copy (see decodeValue).
	sharesBytes bool

	next        int                 // the first element not yet queued
	live        map[*batch]struct{} // the chunks queued and not decoded
	liveBytes   int                 // the argument bytes of live: their bufs
	windowBytes int                 // liveBytes stops growing at this
	queuedYet   int                 // chunks queued so far
	back        returns
	spare       []*batch     // back's other buffer
	group       []*batch     // fill's buffer
	finished    func(*batch) // back.add, made once: each chunk's done

	// The first failed element, unless another's call killed its worker:
	// that one says what went wrong.
	firstErr     error
	firstAt      int
	firstCulprit bool
}

// fill encodes and queues chunks until the window is full or the input
// ends. It queues in growing groups: the first chunk at once, so that the
// workers start, later ones many per lock.
func (m *mapRun[I, O]) fill() error {
	group := m.group[:0]
	defer func() { m.group = clear0(group) }()
	for m.next < len(m.in) && m.liveBytes < m.windowBytes && len(m.live) < (maxPrefetch+2)*m.p.cfg.Workers {
		b, err := m.chunk()
		if err != nil {
			return err
		}
		m.live[b] = struct{}{}
		m.liveBytes += len(b.args.Buf)
		if group = append(group, b); len(group) >= min(max(1, m.queuedYet), 256) {
			if err := m.queue(group); err != nil {
				return err
			}
			group = group[:0]
		}
	}
	return m.queue(group)
}

func (m *mapRun[I, O]) queue(group []*batch) error {
	if len(group) == 0 {
		return nil
	}
	m.queuedYet += len(group)
	return m.p.enqueue(group...)
}

// chunk encodes the next chunk of the input into a batch: up to size calls,
// cut short when the arguments reach maxBytes.
func (m *mapRun[I, O]) chunk() (*batch, error) {
	start := m.next
	n, err := m.e.addAll(m.in[start:min(len(m.in), start+m.size)], m.maxBytes)
	if err != nil {
		m.e.take()
		return nil, &ElementError{Index: start + n, Err: err}
	}
	args := m.e.take()
	m.next += args.Len()
	b := newBatch(m.t.name, args, nil)
	b.first = start
	b.elem = mapElem
	b.deadline = m.deadline
	b.done = m.finished
	return b, nil
}

// mapElem is the index in a Map's input of call i of chunk b.
func mapElem(b *batch, i int) int { return b.first + i }

// decode stores the results of a finished chunk, and lets it go.
func (m *mapRun[I, O]) decode(b *batch) {
	m.liveBytes -= len(b.args.Buf)
	delete(m.live, b)
	for _, pt := range b.outs.parts {
		out := m.out[b.first+pt.first:][:pt.vals.Len()]
		k := 0
		if fast := m.t.fastOut; fast != nil && b.outs.failed == nil && !m.sharesBytes {
			k = fast.DecodeSpans(pt.vals.Buf, pt.vals.Span, out) // the rest, if any, the slow way
		}
		for ; k < len(out); k++ {
			if j := pt.first + k; b.outs.err(j) == nil {
				if err := decodeValue(m.c, m.t.fastOut, m.t.name, pt.vals.At(k), &out[k]); err != nil {
					m.failed(b.first+j, err, false)
				}
			}
		}
	}
	for j, f := range b.outs.failed {
		if f.err != nil {
			m.failed(b.first+j, f.err, f.culprit)
		}
	}
	// Nothing refers into the results' frames any more, unless they are
	// the []byte values themselves; nor into the arguments, once written
	// from a batch that was never split.
	if !m.sharesBytes {
		for _, pt := range b.outs.parts {
			wire.Recycle(pt.vals)
		}
	}
	if b.clean && b.written.Load() {
		m.e.recycle(b.args)
	}
}

// failed notes that element at failed with err: Map's error is the first
// such element, unless a call killed its worker, which says what went
// wrong.
func (m *mapRun[I, O]) failed(at int, err error, culprit bool) {
	if culprit && !m.firstCulprit || culprit == m.firstCulprit && at < m.firstAt {
		m.firstErr, m.firstAt, m.firstCulprit = err, at, culprit
	}
}

// batches returns the chunks in flight, to cancel them.
func (m *mapRun[I, O]) batches() []*batch {
	bs := make([]*batch, 0, len(m.live))
	for b := range m.live {
		bs = append(bs, b)
	}
	return bs
}

// returns collects the batches of a Map as they finish. add runs under the
// pool's lock, so it must not block: it appends and signals.
type returns struct {
	mu     sync.Mutex
	done   []*batch
	signal chan struct{}
}

func (r *returns) add(b *batch) {
	r.mu.Lock()
	r.done = append(r.done, b)
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

// clear0 empties bs and lets go of what its array held.
func clear0(bs []*batch) []*batch {
	clear(bs[:cap(bs)])
	return bs[:0]
}

// take returns the batches that finished, and keeps spare, empty, for
// those to come.
func (r *returns) take(spare []*batch) []*batch {
	r.mu.Lock()
	defer r.mu.Unlock()
	done := r.done
	r.done = spare[:0]
	return done
}
