package procpool

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procpool/procpool/internal/executable"
	"github.com/procpool/procpool/internal/wire"
	"github.com/procpool/procpool/worker"
)

// Pool runs registered tasks in worker processes. Its methods are safe for
// concurrent use.
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

	mu       sync.Mutex
	state    poolState
	cause    error // what broke the pool
	queue    queue // batches waiting for a worker
	procs    map[*proc]struct{}
	spawning int        // replacements being started
	pending  int        // batches queued or held by a worker
	settled  *sync.Cond // signalled when pending drops to 0, a worker ends, or the state changes
	nextID   uint64
	deaths   int   // deaths since work last completed: the crash-loop guard
	restarts []int // per worker slot
	counts   counts

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
// completed its handshake (and run Config.Initializer). If any fails to, New
// stops the others and returns an error matching ErrStartup (and
// ErrInitFailed, if the initializer failed) that says which worker failed
// and why.
//
// In a worker process New returns ErrInWorker.
func New(cfg Config) (*Pool, error) {
	if worker.IsWorker() {
		return nil, ErrInWorker
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
		procs:          map[*proc]struct{}{},
		restarts:       make([]int, cfg.Workers),
		ctx:            ctx,
		stop:           stop,
		userGOMAXPROCS: userCfg.WorkerGOMAXPROCS,
	}
	p.settled = sync.NewCond(&p.mu)
	p.groups = groups(userCfg, command)
	p.env = workerEnv(cfg)
	p.spawner = newSpawner(&p.wg)
	if err := p.prepareLaunchers(ctx); err != nil {
		p.Terminate()
		return nil, fmt.Errorf("%w: %w", ErrStartup, err)
	}

	procs := make([]*proc, 0, cfg.Workers)
	for slot := range cfg.Workers {
		w, err := p.startWorker(slot)
		if err != nil {
			p.Terminate()
			return nil, fmt.Errorf("%w: %w", ErrStartup, err)
		}
		procs = append(procs, w)
	}
	for _, w := range procs {
		select {
		case <-w.ready:
		case <-w.finished:
			p.Terminate()
			return nil, fmt.Errorf("%w: %w", ErrStartup, w.exitErr)
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
	p.mu.Lock()
	defer p.mu.Unlock()
	pids := make([]int, 0, len(p.procs))
	for w := range p.procs {
		pids = append(pids, w.workerPID())
	}
	slices.Sort(pids)
	return pids
}

// Close stops accepting work (a later Submit fails with ErrClosed), waits for
// every submitted task to finish, then stops the workers and waits for them to
// exit. It is safe to call more than once and together with Terminate.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.state == open || p.state == starting {
		p.state = closing
	}
	for p.pending > 0 && p.state == closing {
		p.settled.Wait()
	}
	if p.state == closing {
		p.state = stopped
	}
	for w := range p.procs {
		w.stopping = true
		w.closeStdin()
	}
	p.mu.Unlock()
	return p.shutdown()
}

// Terminate kills the workers at once. Every unfinished task fails with
// ErrClosed. It is safe to call more than once and together with Close.
func (p *Pool) Terminate() error {
	p.mu.Lock()
	if p.state != terminated {
		p.state = terminated
		p.failAll(func() error { return fmt.Errorf("%w: terminated", ErrClosed) })
		for w := range p.procs {
			w.kill("the pool was terminated")
		}
		p.settled.Broadcast()
	}
	p.mu.Unlock()
	return p.shutdown()
}

// shutdown waits for every worker to be gone and every goroutine to end.
func (p *Pool) shutdown() error {
	p.shutdownOnce.Do(func() {
		p.stop()
		stuck := time.AfterFunc(p.cfg.StopTimeout, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			for w := range p.procs {
				p.shutdownErr = fmt.Errorf("procpool: worker %s did not exit within %s of Close; killed", w.name(), p.cfg.StopTimeout)
				w.kill("it did not exit after its stdin was closed")
			}
		})
		p.mu.Lock()
		for len(p.procs) > 0 || p.spawning > 0 {
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
