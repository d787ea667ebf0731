package worker

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/procpool/procpool/internal/wire"
)

// intake takes a worker's runs and Cancels off its stream, and hands the
// serve loop its runs in order.
//
// While runs are quick, the serve loop reads the stream itself between them:
// a run that arrives while the worker waits is then executed by the
// goroutine that read it, with no hand-off to wake another (on a worker of
// two threads, a wake-up of the other thread, which here is a process
// switch). A run that lasts longRun starts the reader goroutine, when it
// ends, or while it executes if the watch finds it has (see tick). The
// reader reads Cancels, the end of the stream and the runs that follow;
// once runs are quick again, a read deadline stops it, and the serve loop
// reads again. Where the stream takes no deadline, the reader reads
// throughout.
type intake struct {
	stream *wire.Stream
	file   *os.File       // the stream's read side, whose deadline stops the reader
	x      *Executor      // which learns of runs queued and cancelled
	runs   chan *wire.Run // from the reader to the serve loop

	// Only the serve loop's goroutine uses these.
	inline  bool          // the serve loop may read the stream (it takes deadlines)
	reading bool          // the reader goroutine is, or is about to be, reading
	started uint64        // runs started
	early   []*wire.Run   // runs the reader read before it stopped, in order
	stopped chan struct{} // the reader's answer to a stop

	// The watch: a timer that ticks every tickEvery while runs come and the
	// reader does not read, and starts it when a run has lasted longRun.
	watch *time.Timer
	epoch time.Time // since is counted from here
	// now is the serve loop's state, for the watch: started<<2, with
	// runningBit while that run executes, and readerBit while the reader
	// reads (set by the watch when it starts it). since is when that run
	// started; it is set before now.
	now   atomic.Uint64
	since atomic.Int64
	armed atomic.Bool // the watch's timer is set, or its tick is running
	last  uint64      // now at the watch's last tick; only the tick uses it

	// stopping tells the reader that its read deadline is a stop.
	stopping atomic.Bool
	// rmu is held by whoever reads the stream, so that the serve loop can
	// ask, without waiting, whether a frame has arrived (see waiting).
	rmu sync.Mutex
}

// A run that lasts longRun starts the reader goroutine: when it ends, or,
// if it is still executing at a tick of the watch, tickEvery apart, then.
// One that takes less than quickRun, with none waiting, stops it. Between them, the
// intake keeps what it has: runs of about that length neither start nor
// stop it each.
//
// The ticks are far apart because a timer set for soon is dear on a
// virtual machine, where each one may reprogram the CPU's timer through the
// hypervisor: every wait for the stream while one is set pays for it.
const (
	longRun   = 200 * time.Microsecond
	quickRun  = 50 * time.Microsecond
	tickEvery = 10 * time.Millisecond
)

const (
	runningBit = 1 << iota // intake.now: a run executes
	readerBit              // intake.now: the reader reads
)

func newIntake(stream *wire.Stream, file *os.File) *intake {
	return &intake{stream: stream, file: file, runs: make(chan *wire.Run, 64), stopped: make(chan struct{})}
}

// start gets the intake going, once the handshake is done, queueing runs
// and applying Cancels with x.
func (in *intake) start(x *Executor) {
	in.x = x
	in.inline = in.file.SetReadDeadline(time.Time{}) == nil
	in.epoch = time.Now()
	in.watch = time.AfterFunc(time.Hour, in.tick)
	in.watch.Stop()
	if !in.inline {
		in.reading = true
		go in.readLoop()
	}
}

// next returns the next run: one the reader read, or, while it does not
// read, one the serve loop reads itself.
func (in *intake) next() *wire.Run {
	if len(in.early) > 0 {
		r := in.early[0]
		in.early = in.early[1:]
		return r
	}
	if in.reading {
		return <-in.runs
	}
	select {
	case r := <-in.runs:
		return r
	default:
	}
	in.rmu.Lock()
	defer in.rmu.Unlock()
	for {
		if r := in.take(in.stream.Read()); r != nil {
			return r
		}
	}
}

// running says that the run next returned starts at start: if the watch
// finds it has lasted longRun, the reader reads meanwhile.
func (in *intake) running(start time.Time) {
	in.started++
	in.since.Store(int64(start.Sub(in.epoch)))
	in.now.Store(in.state(true))
	if !in.reading {
		in.arm()
	}
}

// ran says that the run ended after took.
func (in *intake) ran(took time.Duration) {
	if in.now.Swap(in.state(false))&readerBit != 0 && !in.reading {
		in.reading = true // the watch started the reader
		in.now.Store(in.state(false))
	}
	switch {
	case !in.reading && took >= longRun:
		in.reading = true
		in.now.Store(in.state(false))
		go in.readLoop()
	case in.reading && in.inline && took < quickRun && len(in.runs) == 0:
		in.stop()
	}
}

// state is now's value for the serve loop, in a run or between runs.
func (in *intake) state(running bool) uint64 {
	s := in.started << 2
	if running {
		s |= runningBit
	}
	if in.reading {
		s |= readerBit
	}
	return s
}

// arm sets the watch's timer unless it is set. Setting a timer wakes
// another of the runtime's threads to wait for it, where the worker has
// one idle (GOMAXPROCS over 1): a process switch, which would cost a quick
// run more than the run. So the timer is set once for a stream of runs,
// not once a run.
func (in *intake) arm() {
	if !in.armed.Load() && in.armed.CompareAndSwap(false, true) {
		in.watch.Reset(tickEvery)
	}
}

// tick is the watch: it starts the reader, and becomes it, if the run that
// executes has lasted longRun; otherwise it ticks again, unless the reader
// reads or no run started or executed since its last tick.
func (in *intake) tick() {
	now := in.now.Load()
	lasted := time.Since(in.epoch) - time.Duration(in.since.Load()) // that run's, or a later one's: less
	last := in.last
	in.last = now
	switch {
	case now&readerBit != 0:
		in.rest(now) // the serve loop arms it again once the reader stops
	case now&runningBit != 0 && lasted >= longRun:
		if in.now.CompareAndSwap(now, now|readerBit) {
			in.armed.Store(false)
			in.readLoop()
			return
		}
		in.watch.Reset(tickEvery) // the run has just ended
	case now == last:
		in.rest(now)
	default:
		in.watch.Reset(tickEvery)
	}
}

// rest stops the ticks, as of now. A run that started since may have seen
// the timer still set: then the ticks go on.
func (in *intake) rest(now uint64) {
	in.armed.Store(false)
	if cur := in.now.Load(); cur != now && cur&readerBit == 0 {
		in.arm()
	}
}

// waiting reports whether a run has arrived that the serve loop has not
// started: read, or, as far as can be told without waiting, on its way.
func (in *intake) waiting() bool {
	if len(in.early) > 0 || len(in.runs) > 0 {
		return true
	}
	if !in.rmu.TryLock() {
		return false // the reader is reading: what it reads it will send
	}
	defer in.rmu.Unlock()
	return in.stream.Buffered()
}

// stop stops the reader goroutine: a read deadline in the past ends its
// read, and it answers. The runs it read meanwhile go first.
func (in *intake) stop() {
	in.stopping.Store(true)
	_ = in.file.SetReadDeadline(time.Now())
	for stopped := false; !stopped; {
		select {
		case r := <-in.runs: // it may be waiting to send one
			in.early = append(in.early, r)
		case <-in.stopped:
			stopped = true
		}
	}
	for len(in.runs) > 0 {
		in.early = append(in.early, <-in.runs)
	}
	in.stopping.Store(false)
	_ = in.file.SetReadDeadline(time.Time{})
	in.reading = false
	in.now.Store(in.state(false))
}

// readLoop is the reader goroutine: it reads frames and sends the runs to
// the serve loop until stopped.
func (in *intake) readLoop() {
	for {
		in.rmu.Lock()
		m, err := in.stream.Read()
		in.rmu.Unlock()
		if err != nil && in.stopping.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
			in.stopped <- struct{}{}
			return
		}
		if r := in.take(m, err); r != nil {
			in.runs <- r
		}
	}
}

// take deals with a message read from the stream: a Run it queues with the
// executor and returns; a Cancel it applies, and returns nil. The end of
// the stream ends the process at once, even mid-task: the parent is gone or
// has no more use for this worker, and nothing may outlive it.
func (in *intake) take(m wire.Message, err error) *wire.Run {
	if err == io.EOF {
		exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "procpool worker: read from parent: %v\n", err)
		exit(ExitProtocol)
	}
	switch m := m.(type) {
	case *wire.Run:
		in.x.Queue(m.ID)
		return m
	case *wire.Cancel:
		in.x.Cancel(m.ID, m.Whole)
		return nil
	}
	fmt.Fprintf(os.Stderr, "procpool worker: unexpected %T message from parent\n", m)
	exit(ExitProtocol)
	return nil
}
