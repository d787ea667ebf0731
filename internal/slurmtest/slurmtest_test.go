//go:build unix

package slurmtest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/procpool/procpool/internal/slurmtest"
)

// The fixture starts a cluster whose two nodes run a job, and whose queue
// empties when the job ends.
func TestSlurmCluster(t *testing.T) {
	c := slurmtest.Start(t, slurmtest.Options{})
	out := c.Run(t, "srun", "--quiet", "--nodes=2", "--ntasks=2", "sh", "-c", "echo $SLURMD_NODENAME")
	if got := strings.Fields(out); len(got) != 2 || !strings.Contains(out, "node1") || !strings.Contains(out, "node2") {
		t.Fatalf("srun on both nodes printed %q", out)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		jobs, err := c.Jobs()
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job is still in the queue: %v", jobs)
		}
	}
}
