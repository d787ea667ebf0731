//go:build unix

package procpool_test

// BenchmarkLaunchers: local workers against workers over SSH.

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procpool/procpool/internal/sshtest"
	"github.com/procpool/procpool/pkg/procpool"
)

// BenchmarkLaunchers runs the same calls on local workers and on workers
// over SSH (a real sshd on 127.0.0.1, so the figures show ssh's own cost:
// its encryption and extra hops, not a network's), in one run:
//
//	go test -run '^$' -bench Launchers -count 6 ./pkg/procpool/ | benchstat -
//
// Floor is a raw 16-byte ping-pong with a re-exec'd child, directly or
// through ssh, with no pool and no encoding; RoundTrip is one Submit+Get;
// Map is the throughput of a trivial task over 100,000 items at the
// default chunk size, reported as items/s.
func BenchmarkLaunchers(b *testing.B) {
	srv := sshtest.Start(b)
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
	launchers := []struct {
		name string
		cfg  procpool.Config
	}{
		{"local", procpool.Config{Workers: 2}},
		{"ssh", procpool.Config{Remote: []procpool.Launcher{procpool.SSH(sshtest.Dest, 2, procpool.SSHArgs(srv.ClientArgs()...))}}},
	}
	in := make([]int, 100_000)
	for i := range in {
		in[i] = i
	}
	ctx := context.Background()
	for _, l := range launchers {
		l.cfg.Logger = hclog.NewNullLogger()
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
