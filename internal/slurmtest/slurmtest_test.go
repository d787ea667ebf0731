package slurmtest_test

import (
	"strings"
	"testing"

	"github.com/procpool/procpool/internal/slurmtest"
)

// The fixture starts a cluster whose nodes run a job, and whose queue is
// empty afterwards.
func TestCluster(t *testing.T) {
	c := slurmtest.Start(t, slurmtest.Options{})
	out := c.Run(t, "srun", "--quiet", "--nodes=2", "--ntasks=2", "sh", "-c", "echo $SLURMD_NODENAME")
	got := strings.Fields(out)
	if len(got) != 2 || !strings.Contains(out, "node1") || !strings.Contains(out, "node2") {
		t.Fatalf("srun on both nodes printed %q", out)
	}
	jobs, err := c.Jobs()
	if err != nil || len(jobs) != 0 {
		t.Fatalf("queue after the job: %v, %v", jobs, err)
	}
}
