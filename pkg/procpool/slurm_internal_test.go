package procpool

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// decodeExit on what srun and slurmstepd print, as Slurm 22.05 prints it
// (captured from the test cluster), and on what it may print elsewhere:
// preemption, a job (not step) cancelled, a core dump.
func TestSlurmDecodeExit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stderr string
		code   int
		cause  endCause
		want   WorkerExitError
	}{
		{
			name:   "exit code",
			stderr: "srun: error: node1: task 0: Exited with exit code 3",
			code:   3,
			want:   WorkerExitError{Host: "node1", ExitCode: 3},
		},
		{
			name:   "exit code over 128",
			stderr: "srun: error: node2: task 0: Exited with exit code 137",
			code:   137,
			want:   WorkerExitError{Host: "node2", ExitCode: 137},
		},
		{
			name:   "killed",
			stderr: "srun: error: node1: task 0: Killed",
			code:   137,
			want:   WorkerExitError{Host: "node1", ExitCode: -1, Signal: "SIGKILL"},
		},
		{
			name:   "segfault with a core",
			stderr: "srun: error: node1: task 0: Segmentation fault (core dumped)",
			code:   139,
			want:   WorkerExitError{Host: "node1", ExitCode: -1, Signal: "SIGSEGV"},
		},
		{
			name:   "scancel",
			stderr: "slurmstepd-node1: error: *** STEP 1.0 ON node1 CANCELLED AT 2026-12-01T00:12:12 ***\nsrun: error: node1: task 0: Terminated",
			code:   143,
			want:   WorkerExitError{Host: "node1", ExitCode: -1, Signal: "SIGTERM", Reason: "Slurm cancelled job step 1.0 on node1 (scancel)"},
		},
		{
			name:   "time limit",
			stderr: "slurmstepd-node1: error: *** STEP 11.0 ON node1 CANCELLED AT 2026-12-01T00:15:45 DUE TO TIME LIMIT ***\nsrun: error: node1: task 0: Terminated",
			code:   143,
			want:   WorkerExitError{Host: "node1", ExitCode: -1, Signal: "SIGTERM", Reason: "Slurm killed job step 11.0 on node1: it reached its time limit"},
		},
		{
			name:   "allocation preempted",
			stderr: "slurmstepd-node7: error: *** JOB 40 ON node7 CANCELLED AT 2026-12-01T00:15:45 DUE TO PREEMPTION ***\nsrun: error: node7: task 0: Terminated",
			code:   143,
			want:   WorkerExitError{Host: "node7", ExitCode: -1, Signal: "SIGTERM", Reason: "Slurm cancelled job 40 on node7 because of preemption"},
		},
		{
			name:   "node down",
			stderr: "srun: error: Node failure on node3\nsrun: error: Node failure on node3",
			code:   0,
			want:   WorkerExitError{Host: "node3", ExitCode: -1, Reason: "node node3 failed or was set down: Slurm ended the job step"},
		},
		{
			name:   "node down, and the step cancelled for it",
			stderr: "srun: error: Node failure on node3\nsrun: error: Node failure on node3\nslurmstepd-node3: error: *** STEP 13.0 ON node3 CANCELLED AT 2026-12-01T01:07:06 DUE TO NODE FAILURE, SEE SLURMCTLD LOG FOR DETAILS ***",
			code:   0,
			want:   WorkerExitError{Host: "node3", ExitCode: -1, Reason: "node node3 failed or was set down: Slurm ended the job step"},
		},
		{
			name:   "no program",
			stderr: "slurmstepd-node1: error: execve(): /x/app: No such file or directory\nsrun: error: node1: task 0: Exited with exit code 2",
			code:   2,
			cause:  endNoHandshake,
			want:   WorkerExitError{Host: "node1", ExitCode: 2, Reason: "the node cannot run the worker program /x/app (no such file or directory): install a build of this program there and name it with SlurmProgram, or use SlurmShipBinary"},
		},
		{
			name:   "srun refused",
			stderr: "srun: error: Unable to allocate resources: Invalid partition name specified",
			code:   1,
			cause:  endNoHandshake,
			want:   WorkerExitError{Host: "slurm", ExitCode: 1, Reason: "srun could not start the worker: Unable to allocate resources: Invalid partition name specified"},
		},
		{
			name:   "clean exit",
			stderr: "",
			code:   0,
			want:   WorkerExitError{Host: "slurm", ExitCode: 0},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &WorkerExitError{Host: "slurm", ExitCode: tc.code, Stderr: tc.stderr}
			(&slurmLauncher{}).decodeExit(e, tc.cause)
			tc.want.Stderr = tc.stderr
			assert.Equal(t, &tc.want, e)
		})
	}
}
