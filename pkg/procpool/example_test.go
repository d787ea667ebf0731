package procpool_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/hashicorp/go-hclog"

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

// A worker that dies takes the pool down under the Break policy; the error
// says which worker died and how.
func ExampleWorkerExitError() {
	p, err := procpool.New(procpool.Config{Workers: 2, Logger: hclog.NewNullLogger()})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	_, err = Crash.Submit(p, "exit3").Get(context.Background())
	var exit *procpool.WorkerExitError
	if errors.As(err, &exit) {
		fmt.Println("broken:", errors.Is(err, procpool.ErrBrokenPool))
		fmt.Println("exit code:", exit.ExitCode)
	}
	// Output:
	// broken: true
	// exit code: 3
}

func ExampleRemoteError() {
	p, err := procpool.New(procpool.Config{Workers: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	_, err = Panic.Submit(p, "index out of range").Get(context.Background())
	var re *procpool.RemoteError
	if errors.As(err, &re) {
		fmt.Println(re.Task, re.Panic, re.Message)
	}
	// Output: test.panic true index out of range
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
