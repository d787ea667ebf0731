//go:build unix

package procpool_test

// Examples of the API; each defines, in this file, the tasks it runs.

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"regexp"
	"slices"
	"strconv"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/procpool/procpool/pkg/procpool"
)

// Tasks are registered at package level, so that the parent and the workers,
// which run the same program, know the same names.
var Cube = procpool.Register("example.cube", func(_ context.Context, x int) (int, error) {
	return x * x * x, nil
})

func ExampleTask_Submit() {
	// In a real program the first statement of main is procpool.Main().
	p, err := procpool.New(procpool.Config{Workers: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	v, err := Cube.Submit(p, 3).Get(context.Background())
	fmt.Println(v, err)
	// Output: 27 <nil>
}

func ExampleTask_Map() {
	p, err := procpool.New(procpool.Config{Workers: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	out, err := Cube.Map(context.Background(), p, []int{1, 2, 3, 4, 5}, procpool.Chunksize(2))
	fmt.Println(out, err)
	// Output: [1 8 27 64 125] <nil>
}

// Atoi parses a number in a worker. A string that is not one fails that call
// alone.
var Atoi = procpool.Register("example.atoi", func(_ context.Context, s string) (int, error) {
	return strconv.Atoi(s)
})

// Imap yields each result with its error, in input order; a failed call
// yields its error in its place, and the iteration goes on.
func ExampleTask_Imap() {
	p, err := procpool.New(procpool.Config{Workers: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	in := slices.Values([]string{"1", "22", "x", "333"})
	for v, err := range Atoi.Imap(context.Background(), p, in) {
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Println(v)
	}
	// Output:
	// 1
	// 22
	// error: map element 2: procpool: task "example.atoi": strconv.Atoi: parsing "x": invalid syntax
	// 333
}

// Imap reads its input as it goes, a window of chunks ahead, so the input may
// be endless; breaking out of the loop cancels the calls still in flight.
func ExampleTask_Imap_endless() {
	p, err := procpool.New(procpool.Config{Workers: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	naturals := func(yield func(int) bool) {
		for i := 1; yield(i); i++ {
		}
	}
	for v, err := range Cube.Imap(context.Background(), p, naturals) {
		if err != nil {
			log.Fatal(err)
		}
		if v > 100 {
			break
		}
		fmt.Println(v)
	}
	// Output:
	// 1
	// 8
	// 27
	// 64
}

// Nap sleeps ms milliseconds, or until its call is cancelled.
var Nap = procpool.Register("example.nap", func(ctx context.Context, ms int) (int, error) {
	select {
	case <-time.After(time.Duration(ms) * time.Millisecond):
		return ms, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
})

func ExampleAsCompleted() {
	p, err := procpool.New(procpool.Config{Workers: 3, Prefetch: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	var fs []*procpool.Future[int]
	for _, ms := range []int{600, 20, 300} {
		fs = append(fs, Nap.Submit(p, ms))
	}
	// Each result is used as soon as it is ready, not in submission order.
	for f, err := range procpool.AsCompleted(context.Background(), fs...) {
		if err != nil {
			log.Fatal(err)
		}
		v, _ := f.Get(context.Background())
		fmt.Println("slept", v, "ms")
	}
	// Output:
	// slept 20 ms
	// slept 300 ms
	// slept 600 ms
}

func ExampleWait() {
	p, err := procpool.New(procpool.Config{Workers: 2, Prefetch: 1, Logger: hclog.NewNullLogger()})
	if err != nil {
		log.Fatal(err)
	}
	// Terminate, not Close: the slow call is no longer wanted.
	defer p.Terminate()

	slow := Nap.Submit(p, 60_000)
	bad := Atoi.Submit(p, "x")
	done, pending := procpool.Wait(context.Background(), []*procpool.Future[int]{slow, bad}, procpool.FirstError)
	_, err = done[0].Get(context.Background())
	fmt.Println(len(done), "done,", len(pending), "pending:", err)
	// Output: 1 done, 1 pending: procpool: task "example.atoi": strconv.Atoi: parsing "x": invalid syntax
}

// Exit ends its worker process with the exit code it is given.
var Exit = procpool.Register("example.exit", func(_ context.Context, code int) (int, error) {
	os.Exit(code)
	return 0, nil
})

// A worker that dies takes the pool down under the Break policy; the error
// says which worker died and how.
func ExampleWorkerExitError() {
	p, err := procpool.New(procpool.Config{Workers: 2, Logger: hclog.NewNullLogger()})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	_, err = Exit.Submit(p, 3).Get(context.Background())
	var exit *procpool.WorkerExitError
	if errors.As(err, &exit) {
		fmt.Println("broken:", errors.Is(err, procpool.ErrBrokenPool))
		fmt.Println("exit code:", exit.ExitCode)
	}
	// Output:
	// broken: true
	// exit code: 3
}

// Explode panics with the message it is given.
var Explode = procpool.Register("example.explode", func(_ context.Context, msg string) (int, error) {
	panic(msg)
})

func ExampleRemoteError() {
	p, err := procpool.New(procpool.Config{Workers: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	_, err = Explode.Submit(p, "index out of range").Get(context.Background())
	var re *procpool.RemoteError
	if errors.As(err, &re) {
		fmt.Println(re.Task, re.Panic, re.Message)
	}
	// Output: example.explode true index out of range
}

// word is the pattern CountWords matches. Each worker process has its own,
// compiled once by the initializer CompileWord.
var word *regexp.Regexp

var (
	// CompileWord compiles the pattern of a word.
	CompileWord = procpool.Register("example.compile-word", func(_ context.Context, expr string) (struct{}, error) {
		var err error
		word, err = regexp.Compile(expr)
		return struct{}{}, err
	})
	// CountWords counts the words of a text.
	CountWords = procpool.Register("example.count-words", func(_ context.Context, text string) (int, error) {
		return len(word.FindAllString(text, -1)), nil
	})
)

// An initializer prepares each worker once, before it takes any call, and
// again in each replacement: here it compiles the pattern every call uses.
// Task.Bind makes it: a task bound to its argument. If it fails, New fails
// with ErrInitFailed.
func ExampleConfig_initializer() {
	p, err := procpool.New(procpool.Config{Workers: 2, Initializer: CompileWord.Bind(`[\p{L}']+`)})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	out, err := CountWords.Map(context.Background(), p, []string{"Hello, world!", "It's a pool of workers.", ""})
	fmt.Println(out, err)
	// Output: [2 5 0] <nil>
}

// Getpid returns the process id of wherever it runs.
var Getpid = procpool.Register("example.getpid", func(context.Context, struct{}) (int, error) {
	return os.Getpid(), nil
})

// The Goroutines backend runs the same tasks in goroutines of this process,
// with the same API and errors: no process to start, no isolation either.
// Arguments and results still pass through the codec, so a task sees copies.
func ExampleGoroutines() {
	p, err := procpool.New(procpool.Config{Workers: 2, Backend: procpool.Goroutines})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	out, err := Cube.Map(context.Background(), p, []int{1, 2, 3})
	fmt.Println(out, err)
	pid, err := Getpid.Submit(p, struct{}{}).Get(context.Background())
	fmt.Println("in this process:", pid == os.Getpid(), err)
	// Output:
	// [1 8 27] <nil>
	// in this process: true <nil>
}

// Workers on two more machines, next to two local ones. The first host gets
// this very program uploaded into its cache; the second has a build of it
// installed. (Not run: it needs the hosts.)
func ExampleSSH() {
	p, err := procpool.New(procpool.Config{
		Workers: 2,
		Remote: []procpool.Launcher{
			procpool.SSH("build1", 8, procpool.ShipBinary("")),
			procpool.SSH("alice@build2", 8, procpool.RemoteProgram("/opt/app/server"), procpool.SSHArgs("-p", "2222")),
		},
		OnCrash: procpool.Respawn,
		Retries: 2,
	})
	if err != nil {
		log.Fatal(err) // names the host that could not be reached, and quotes ssh
	}
	defer p.Close()
	out, err := Cube.Map(context.Background(), p, []int{1, 2, 3})
	fmt.Println(out, err)
}

// Workers started through another command that connects stdin and stdout,
// here a shell that passes the worker's arguments on, as srun or
// kubectl exec -i would.
func ExampleExec() {
	exe, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	p, err := procpool.New(procpool.Config{Launcher: procpool.Exec(2, "sh", "-c", `exec "$0" "$@"`, exe)})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	out, err := Cube.Map(context.Background(), p, []int{1, 2, 3})
	fmt.Println(out, err)
	// Output: [1 8 27] <nil>
}
