//go:build unix

package procpool_test

// BenchmarkLaunchers: local workers against workers over SSH and through
// Slurm.

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procpool/procpool/internal/slurmtest"
	"github.com/procpool/procpool/internal/sshtest"
	"github.com/procpool/procpool/pkg/procpool"
)

// BenchmarkLaunchers runs the same calls on local workers, on workers over
// SSH (a real sshd on 127.0.0.1, so the figures show ssh's own cost: its
// encryption and extra hops, not a network's) and on Slurm workers, each a
// job of its own (a real slurmctld and slurmd on 127.0.0.1; skipped where
// Slurm is not installed), in one run:
//
//	go test -run '^$' -bench Launchers -count 6 ./pkg/procpool/ | benchstat -
//
// Floor is a raw 16-byte ping-pong with a re-exec'd child, directly, through
// ssh or through srun, with no pool and no encoding; Startup is New with
// two workers, until both have completed the handshake; RoundTrip is one
// Submit+Get; Map is the throughput of a trivial task over 100,000 items at
// the default chunk size, reported as items/s.
func BenchmarkLaunchers(b *testing.B) {
	srv := sshtest.Start(b)
	var slurm *slurmtest.Cluster
	if slurmtest.Available() == "" || slurmtest.Required() {
		slurm = slurmtest.Start(b, slurmtest.Options{})
	}
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Floor/local", func(b *testing.B) {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), "PROCPOOL_TEST_ROLE=pipe-echo")
		pingPong(b, cmd)
	})
	b.Run("Floor/ssh", func(b *testing.B) {
		pingPong(b, exec.Command("ssh", append(srv.ClientArgs(), "-T", sshtest.Dest, "env", "PROCPOOL_TEST_ROLE=pipe-echo", exe)...))
	})
	b.Run("Floor/slurm", func(b *testing.B) {
		if slurm == nil {
			b.Skip(slurmtest.Available())
		}
		cmd := slurm.Command("srun", "--ntasks=1", "--unbuffered", "--quiet", exe)
		cmd.Env = append(cmd.Env, "PROCPOOL_TEST_ROLE=pipe-echo")
		pingPong(b, cmd)
	})
	launchers := []struct {
		name string
		cfg  procpool.Config
	}{
		{"local", procpool.Config{Workers: 2}},
		{"ssh", procpool.Config{Remote: []procpool.Launcher{procpool.SSH(sshtest.Dest, 2, procpool.SSHArgs(srv.ClientArgs()...))}}},
		{"slurm", procpool.Config{Launcher: procpool.Slurm(2)}},
	}
	in := make([]int, 100_000)
	for i := range in {
		in[i] = i
	}
	ctx := context.Background()
	for _, l := range launchers {
		if l.name == "slurm" {
			if slurm == nil {
				b.Run("Startup/slurm", func(b *testing.B) { b.Skip(slurmtest.Available()) })
				continue
			}
			l.cfg.Env = slurm.Env()
		}
		l.cfg.Logger = hclog.NewNullLogger()
		l.cfg.StartTimeout = time.Minute // a loaded machine must not fail the run
		b.Run("Startup/"+l.name, func(b *testing.B) {
			for b.Loop() {
				p, err := procpool.New(l.cfg)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				p.Close()
				b.StartTimer()
			}
		})
		p, err := procpool.New(l.cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("RoundTrip/"+l.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := Square.Submit(p, 3).Get(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("Map/"+l.name, func(b *testing.B) {
			start := time.Now()
			n := 0
			for b.Loop() {
				if _, err := Square.Map(ctx, p, in); err != nil {
					b.Fatal(err)
				}
				n += len(in)
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "items/s")
		})
		p.Close()
	}
}
