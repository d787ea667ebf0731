// Command crasher dies in the way its argument names, so that the Go
// runtime prints a real crash report. The texts in ../crashes were made
// with it, by ../crashes/generate.sh; it is not built by ./... because it
// lives under testdata. The cgo-* ways need cgo.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

type node struct{ next *node }

func recurse(n int) int { return recurse(n+1) + 1 }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: crasher how")
		os.Exit(2)
	}
	how := os.Args[1]
	switch how {
	case "panic":
		panic("boom")
	case "panic-error":
		var err error = fmt.Errorf("open %s: %w", "/etc/conf", os.ErrNotExist)
		panic(err)
	case "nil-deref":
		var n *node
		fmt.Println(n.next)
	case "fault-address":
		p := (*int)(unsafe.Pointer(uintptr(0xdeadbeef)))
		fmt.Println(*p)
	case "stack-overflow":
		fmt.Println(recurse(0))
	case "deadlock":
		var mu sync.Mutex
		mu.Lock()
		mu.Lock()
	case "concurrent-map-writes":
		m := map[int]int{}
		for range 4 {
			go func() {
				for i := 0; ; i++ {
					m[i%64] = i
				}
			}()
		}
		time.Sleep(time.Minute)
	case "sigquit":
		syscall.Kill(os.Getpid(), syscall.SIGQUIT)
		time.Sleep(time.Minute)
	case "flag":
		// A program that parses flags before procpool.Main, started as
		// a worker by a launcher that marks it with an argument.
		os.Args = []string{"/srv/resizer", "--procpool-worker=2"}
		flag.Int("size", 64, "thumbnail `size` in pixels")
		flag.Bool("v", false, "verbose")
		flag.Parse()
	case "log-fatal":
		log.SetFlags(0)
		log.Print("loading model from /srv/models")
		log.Print("model loaded: 1.2 GiB")
		log.Fatal("listen tcp :8080: bind: address already in use")
	case "threads":
		// Run under a limit on processes (prlimit --nproc=1, as a user
		// other than root): the runtime cannot start its threads.
		var wg sync.WaitGroup
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(100 * time.Millisecond)
			}()
		}
		wg.Wait()
	default:
		if !dieInC(how) {
			fmt.Fprintln(os.Stderr, "crasher: unknown way to die:", how)
			os.Exit(2)
		}
	}
	time.Sleep(time.Second)
}
