package procpool

import (
	"os/exec"
	"runtime"
	"sync"
)

// spawner starts every worker of a pool from one goroutine locked to its OS
// thread. Pdeathsig fires when the thread that forked a child ends, not the
// process (go.dev/issue/27505); a thread that lives as long as the pool makes
// the signal mean "the parent died".
type spawner struct {
	reqs chan spawnReq
}

type spawnReq struct {
	cmd   *exec.Cmd
	reply chan error
}

func newSpawner(wg *sync.WaitGroup) *spawner {
	s := &spawner{reqs: make(chan spawnReq)}
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Unlocked, not left to die with the goroutine: the thread may have
		// started children of the program's own with Pdeathsig before we
		// locked it, and its exit would kill them. Ours are reaped by now.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for r := range s.reqs {
			r.reply <- r.cmd.Start()
		}
	}()
	return s
}

// start starts cmd on the spawner's thread.
func (s *spawner) start(cmd *exec.Cmd) error {
	reply := make(chan error)
	s.reqs <- spawnReq{cmd: cmd, reply: reply}
	return <-reply
}

// stop ends the spawner. No start may follow or be in progress.
func (s *spawner) stop() { close(s.reqs) }
