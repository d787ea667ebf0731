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
		// Never unlocked: when this goroutine returns the thread exits with
		// it, and by then every child has been reaped.
		runtime.LockOSThread()
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
