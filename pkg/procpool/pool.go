package procpool

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procpool/procpool/internal/executable"
	"github.com/procpool/procpool/internal/procfs"
	"github.com/procpool/procpool/internal/wire"
	"github.com/procpool/procpool/worker"
)

// Pool runs registered tasks in worker processes. Its methods are safe for
// concurrent use. Make one with [New]: a zero Pool has no workers, and its
// methods fail with [ErrNoPool].
type Pool struct {
	cfg        Config
	log        hclog.Logger
	executable string
	env        []string       // the environment of a local worker
	groups     []*launchGroup // the launchers, and which slots each fills
	spawner    *spawner
	wg         sync.WaitGroup     // every goroutine the pool started
	ctx        context.Context    // ends when the pool shuts down: stops back-offs and launchers
	stop       context.CancelFunc // ends ctx

	userGOMAXPROCS int // Config.WorkerGOMAXPROCS as given, before defaults

	polling atomic.Int32 // leases whose caller may poll for its result (readrole.go)

	mu       sync.Mutex
	state    poolState
	cause    error      // what broke the pool
	queue    queue      // batches waiting for a worker
	members  []*member  // the live workers, in the order they started
	place    placement  // who takes the next batch
	spawning int        // replacements being started
	pending  int        // batches queued or held by a worker
	settled  *sync.Cond // signalled when pending drops to 0, a worker ends, or the state changes
	nextID   uint64
	leasing  []*member // whose conns have leased reading to a caller (readrole.go)
	deaths   int       // deaths since work last completed: the crash-loop guard
	restarts []int     // per worker slot
	counts   counts

	// vacant is per worker slot: its worker ended and its replacement is
	// not yet a member. Guarded by mu.
	vacant []bool

	shutdownOnce sync.Once
	shutdownErr  error
}

type poolState int

const (
	starting   poolState = iota // New is starting the workers
	open                        // accepting work
	closing                     // Close is waiting for the work to finish
	stopped                     // Close told the workers to exit
	broken                      // a worker died under Break
	terminated                  // Terminate killed the workers
)

// New starts a pool of worker processes and returns once every worker has
// completed its handshake (and run [Config.Initializer]). If any fails to, New
// stops the others and returns an error matching [ErrStartup] (and
// ErrInitFailed, if the initializer failed) that says which worker failed
// and why.
//
// In a worker process New returns [ErrInWorker]. Where worker processes do
// not run (Windows), New with the Processes backend returns an error matching
// [ErrUnsupported]; with [Config.MaxMemoryPerWorker] set where a process's
// resident memory cannot be read, one matching [errors.ErrUnsupported].
func New(cfg Config) (*Pool, error) {
	if worker.IsWorker() {
		return nil, ErrInWorker
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := platformError(cfg, runtime.GOOS, noProcesses, procfs.ResidentMemory, os.Getpid()); err != nil {
		return nil, err
	}
	if cfg.Initializer.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInitFailed, cfg.Initializer.err)
	}
	if cfg.Backend == Goroutines && (cfg.Launcher != nil || len(cfg.Remote) > 0) {
		return nil, fmt.Errorf("%w: Launcher and Remote start processes; the Goroutines backend has none", ErrStartup)
	}
	userCfg := cfg
	cfg = cfg.withDefaults()
	if cfg.Workers == 0 {
		return nil, fmt.Errorf("%w: no workers: the launchers ask for none", ErrStartup)
	}
	exe, err := executable.Path()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStartup, err)
	}
	command := cfg.Command
	if len(command) > 0 && !strings.Contains(command[0], "/") {
		// A bare name is looked up in PATH, as exec.Command does.
		path, err := exec.LookPath(command[0])
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrStartup, err)
		}
		command = append([]string{path}, command[1:]...)
	}
	ctx, stop := context.WithCancel(context.Background())
	p := &Pool{
		cfg:            cfg,
		log:            cfg.Logger,
		executable:     exe,
		restarts:       make([]int, cfg.Workers),
		vacant:         make([]bool, cfg.Workers),
		ctx:            ctx,
		stop:           stop,
		userGOMAXPROCS: userCfg.WorkerGOMAXPROCS,
	}
	p.settled = sync.NewCond(&p.mu)
	p.groups = groups(userCfg, command)
	p.env = workerEnv(cfg)
	p.spawner = newSpawner(&p.wg)
	if cfg.MaxMemoryPerWorker > 0 && cfg.Backend == Processes {
		p.wg.Add(1)
		go p.watchMemory() // ends with p.ctx, in shutdown
	}
	if err := p.prepareLaunchers(ctx); err != nil {
		p.Terminate()
		return nil, fmt.Errorf("%w: %w", ErrStartup, err)
	}

	started := make([]*member, 0, cfg.Workers)
	for slot := range cfg.Workers {
		m, err := p.startWorker(slot)
		if err != nil {
			p.Terminate()
			return nil, fmt.Errorf("%w: %w", ErrStartup, err)
		}
		started = append(started, m)
	}
	for _, m := range started {
		select {
		case <-m.readyCh:
		case <-m.endedCh:
			p.Terminate()
			return nil, fmt.Errorf("%w: %w", ErrStartup, m.exitErr)
		}
	}
	p.mu.Lock()
	ok := p.state == starting
	if ok {
		p.state = open
	}
	cause := p.cause
	p.mu.Unlock()
	if !ok {
		p.Terminate()
		return nil, fmt.Errorf("%w: a worker died as the pool started: %w", ErrStartup, cause)
	}
	p.log.Debug("pool started", "workers", cfg.Workers, "launchers", p.groups)
	return p, nil
}

// startWorker starts a worker of the configured backend in slot; it is a
// member of the pool before it can end.
func (p *Pool) startWorker(slot int) (*member, error) {
	g := p.groupOf(slot)
	init := p.cfg.Initializer
	spec := connSpec{
		slot:     slot,
		group:    g,
		worker:   p.workerSpec(slot),
		setup:    wire.Setup{MaxFrame: p.cfg.MaxFrameSize, InitTask: init.task, InitArg: init.arg, Progress: p.cfg.TaskTimeout > 0, TaskTimeout: p.cfg.TaskTimeout},
		initTask: init.task,
		start:    p.cfg.StartTimeout,
		maxFrame: p.cfg.MaxFrameSize,
		log:      p.log.Named("worker"),
		pool:     p,
	}
	p.setupFor(g, &spec.setup)
	var m *member
	if p.cfg.Backend == Goroutines {
		c := newGoroutineConn(spec)
		m = newMember(p, c, slot, spec.log.With("goroutine", slot))
		p.adopt(m)
		c.serve(m)
		return m, nil
	}
	c, err := startProcess(spec)
	if err != nil {
		return nil, err
	}
	m = newMember(p, c, slot, c.log)
	p.adopt(m)
	c.serve(m)
	return m, nil
}

// adopt makes m one of the pool's workers. It must come before m's
// goroutines start: a worker that ended before it was counted would be
// waited for for ever.
func (p *Pool) adopt(m *member) {
	p.mu.Lock()
	p.members = append(p.members, m)
	p.vacant[m.slot] = false
	p.mu.Unlock()
}

// usable reports ErrNoPool for a Pool that New did not make.
func (p *Pool) usable() error {
	if p == nil || p.settled == nil {
		return ErrNoPool
	}
	return nil
}

// mustBeUsable panics with an error matching ErrNoPool for a Pool that New
// did not make, in the methods that have no error to return.
func (p *Pool) mustBeUsable(method string) {
	if err := p.usable(); err != nil {
		panic(fmt.Errorf("Pool.%s: %w", method, err))
	}
}

// workerEnv is the environment of a worker: ours, with the role marker,
// GOMAXPROCS and the configured additions.
func workerEnv(cfg Config) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, wire.EnvRole+"=") || strings.HasPrefix(kv, "GOMAXPROCS=")
	})
	env = append(env,
		wire.EnvRole+"="+strconv.Itoa(wire.Version),
		"GOMAXPROCS="+strconv.Itoa(cfg.WorkerGOMAXPROCS))
	return append(env, cfg.Env...)
}

// Workers returns the process ids of the live workers, each on the machine
// it runs on (see Stats for which machine that is).
func (p *Pool) Workers() []int {
	p.mustBeUsable("Workers")
	p.mu.Lock()
	defer p.mu.Unlock()
	pids := make([]int, 0, len(p.members))
	for _, m := range p.members {
		pids = append(pids, m.workerPID)
	}
	slices.Sort(pids)
	return pids
}

// Close stops accepting work (a later Submit fails with [ErrClosed]), waits for
// every submitted task to finish, then stops the workers and waits for them to
// exit. It is safe to call more than once and together with Terminate and
// Shutdown. To bound the wait, use [Pool.Shutdown].
func (p *Pool) Close() error {
	if err := p.usable(); err != nil {
		return err
	}
	p.mu.Lock()
	if p.state == open || p.state == starting {
		p.state = closing
	}
	p.voidLeases() // nothing is left to wait for a caller's Get
	for p.pending > 0 && p.state == closing {
		p.settled.Wait()
	}
	if p.state == closing {
		p.state = stopped
	}
	for _, m := range p.members {
		m.stopping = true
		p.withdraw(m)
		m.conn.stop()
	}
	p.mu.Unlock()
	return p.shutdown()
}

// Terminate kills the workers at once. Every unfinished task fails with
// [ErrClosed]. It is safe to call more than once and together with Close and
// Shutdown.
func (p *Pool) Terminate() error {
	if err := p.usable(); err != nil {
		return err
	}
	p.mu.Lock()
	if p.state != terminated {
		p.state = terminated
		p.voidLeases()
		p.failAll(func() error { return fmt.Errorf("%w: terminated", ErrClosed) })
		for _, m := range p.members {
			m.conn.kill("the pool was terminated")
		}
		p.settled.Broadcast()
	}
	p.mu.Unlock()
	return p.shutdown()
}

// Shutdown is Close with a deadline: it stops accepting work and waits for
// every submitted task to finish and the workers to exit, until ctx ends.
// If ctx ends first, Shutdown does what [Pool.Terminate] does to what is left:
// it kills the workers, fails every unfinished task with [ErrClosed], waits
// for the workers to be gone and returns ctx.Err(). Otherwise it returns what
// Close returns. It has the shape of net/http's Server.Shutdown. (Python's
// Executor.shutdown(cancel_futures=True) drops the calls not yet started at
// once and waits for the running ones without limit; Shutdown lets every
// call finish, as long as ctx allows.)
//
//	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
//	defer cancel()
//	if err := p.Shutdown(ctx); err != nil {
//		log.Printf("pool shutdown: %v", err) // context.DeadlineExceeded: calls were cut short
//	}
//
// It is safe to call more than once and together with Close and Terminate.
func (p *Pool) Shutdown(ctx context.Context) error {
	if err := p.usable(); err != nil {
		return err
	}
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-closed: // both at once: Close won
		return err
	default:
	}
	p.Terminate()
	<-closed // Close returns once Terminate has failed what it waited for
	return ctx.Err()
}

// shutdown waits for every worker to be gone and every goroutine to end.
func (p *Pool) shutdown() error {
	p.shutdownOnce.Do(func() {
		p.stop()
		stuck := time.AfterFunc(p.cfg.StopTimeout, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			for _, m := range p.members {
				p.shutdownErr = fmt.Errorf("procpool: worker %s did not exit within %s of Close; killed", name(m.workerPID, m.host()), p.cfg.StopTimeout)
				m.conn.kill("it did not exit after its stdin was closed")
			}
		})
		p.mu.Lock()
		for len(p.members) > 0 || p.spawning > 0 {
			p.settled.Wait()
		}
		p.mu.Unlock()
		stuck.Stop()
		p.spawner.stop()
		p.wg.Wait()
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.shutdownErr
}
