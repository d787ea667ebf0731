// Package procpool runs Go functions in a pool of worker processes: Go's
// answer to Python's multiprocessing.Pool and ProcessPoolExecutor.
//
// The workers are copies of the running program, started again with an
// environment marker. procpool.Main, the first statement of main (and of
// TestMain), is the role check: in a worker it serves tasks and never
// returns; in the parent it returns at once.
//
//	var Square = procpool.Register("square", func(ctx context.Context, x int) (int, error) {
//		return x * x, nil
//	})
//
//	func main() {
//		procpool.Main()
//		p, err := procpool.New(procpool.Config{Workers: 4})
//		if err != nil {
//			log.Fatal(err)
//		}
//		defer p.Close()
//		v, err := Square.Submit(p, 7).Get(ctx)
//		out, err := Square.Map(ctx, p, inputs)
//	}
//
// Arguments and results travel msgpack-encoded in length-prefixed frames over
// each worker's stdin and stdout. In the worker those streams are moved to
// private descriptors first, so a task that prints or reads stdin cannot
// corrupt them; what it prints reaches the pool's logger, tagged with the
// worker's pid.
//
// # What runs where
//
// A worker runs the program up to procpool.Main and nothing after it. So a
// global that main sets after procpool.Main, from a flag say, is its zero
// value in every worker: give tasks what they need in their argument, or
// set it up in each worker with [Config.Initializer]. Whatever runs before
// procpool.Main (package initialization, init functions, statements above
// it in main) runs again in every worker. And flag.Parse belongs after
// procpool.Main: a worker's only argument is the role marker, which the
// program's flags do not define.
//
// # Failures
//
// A task's returned error or panic comes back as a *[RemoteError] and the
// worker lives on. A value that cannot be encoded or decoded fails that call
// alone with a *[CodecError]. A worker that dies (exits, is killed, crashes in
// the runtime, or breaks the protocol) is noticed at once by the end of its
// stdout; what follows depends on [Config.OnCrash]. Under Break, every pending
// task fails with an error matching [ErrBrokenPool] that also holds a
// *[WorkerExitError] naming the worker, how it died and the tail of its stderr.
// With [Config.MaxMemoryPerWorker], a call that takes its worker over the
// limit is stopped as it grows: the pool kills the worker and replaces it,
// under either policy, and that call alone fails, with [ErrMemoryLimit].
//
// # When a worker dies
//
// A death is charged to the call the worker was running and to no other,
// whatever killed it (SIGKILL, os.Exit, a Go fatal error, a signal in C
// code, the OOM killer) and whatever the chunk size. Each worker the
// default launcher starts keeps a journal in memory it shares with the
// pool, where it records the call it starts and the outcomes it has not yet
// written to its stdout; the pool reads it once the worker is gone. So:
// calls of the chunk that completed keep their results and never run
// again; calls that had not started run on another worker, once, without
// using a retry; the running call alone fails with [ErrWorkerLost] under
// Respawn (or runs again while [Config.Retries] allows), and its
// *[WorkerExitError] names it (Running, Element). Under Break, every error
// names that call, and [Task.Map] reports its element. [Stats] counts
// only it as lost or retried.
//
// Workers of other launchers ([SSH], [Slurm], [Exec]) keep no journal:
// the pool cannot share memory with them. Results that reached the pipe
// are kept and calls of chunks not started run once, but any call of the
// running chunk without a result may have run, so all of them are charged.
// With [Config.TaskTimeout] set, their results come back call by call, and
// a death is again charged to the one call that was running.
//
// # Other machines
//
// A worker needs nothing but its stdin and stdout, so it can run wherever a
// command reaches with them attached. [Config.Launcher] and [Config.Remote] take
// Launchers: SSH runs workers through the system's ssh client (and can ship
// this program to the host), Slurm as Slurm tasks started with srun (job
// steps of an allocation, or jobs of their own), Exec through any command
// such as kubectl exec -i or docker exec -i. The role marker travels in argv as
// well as in the environment, since those do not forward the environment.
//
// # Orphans
//
// A worker exits when its stdin ends, so a parent that dies, even by
// SIGKILL, leaves no worker behind. A second guard kills a worker whose
// parent died: Pdeathsig on Linux; on macOS and the BSDs the worker watches
// its parent's exit with a kqueue. Workers run in their own process group:
// Ctrl-C reaches the parent alone, which decides.
//
// # Platforms
//
// Worker processes run on Linux, where the tests run, and on macOS and the
// BSDs. On Windows, New with the Processes backend returns an error matching
// [ErrUnsupported]; the Goroutines backend, Register and Main work there.
package procpool
