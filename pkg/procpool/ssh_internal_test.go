package procpool

import (
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestShellQuote hands quoted words to a real sh and checks it gets them
// back unchanged.
func TestShellQuote(t *testing.T) {
	words := []string{"plain", "/a/b-c_d.e", "", "two words", "it's", `"dq"`, "$HOME", "`id`", "a\nb", "~/x", "*", `back\slash`, "'"}
	script := "printf '%s\\0'"
	for _, w := range words {
		script += " " + shellQuote(w)
	}
	out, err := exec.Command("sh", "-c", script).Output()
	require.NoError(t, err)
	var got []string
	for start, i := 0, 0; i < len(out); i++ {
		if out[i] == 0 {
			got = append(got, string(out[start:i]))
			start = i + 1
		}
	}
	require.Equal(t, words, got)
	assert.Equal(t, "/usr/bin/app", shellQuote("/usr/bin/app"), "safe words stay readable")
}

func TestUnameArch(t *testing.T) {
	for m, want := range map[string]string{"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i686": "386", "armv7l": "arm", "riscv64": "riscv64", "ppc64le": "ppc64le"} {
		assert.Equal(t, want, unameArch(m), m)
	}
}

// TestBackoff: no wait after a first failure, then doubling from 100ms,
// capped at 10s.
func TestBackoff(t *testing.T) {
	want := []time.Duration{0, 0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}
	for f, d := range want {
		assert.Equal(t, d, backoff(f), "after %d failures", f)
	}
	assert.Equal(t, 10*time.Second, backoff(30))
	assert.Equal(t, 10*time.Second, backoff(1000))
}

// TestSSHExitDecoding: ssh's exit status becomes the worker's.
func TestSSHExitDecoding(t *testing.T) {
	l := &sshLauncher{dest: "h", program: "/opt/app"}
	for _, tt := range []struct {
		name  string
		in    WorkerExitError
		cause endCause
		want  WorkerExitError
	}{
		{"signal", WorkerExitError{ExitCode: 137}, endExited, WorkerExitError{ExitCode: -1, Signal: "SIGKILL"}},
		{"exit code", WorkerExitError{ExitCode: 3}, endExited, WorkerExitError{ExitCode: 3}},
		{"ssh failed", WorkerExitError{ExitCode: 255, Reason: errNoHandshake.Error()}, endNoHandshake,
			WorkerExitError{ExitCode: 255, Reason: "ssh failed: the host could not be reached, refused the login, or the connection was lost"}},
		{"no program", WorkerExitError{ExitCode: 127, Reason: errNoHandshake.Error()}, endNoHandshake,
			WorkerExitError{ExitCode: 127, Reason: "no worker program at /opt/app on the host: install a build of this program there and name it with RemoteProgram, or use ShipBinary"}},
		{"ssh killed by the pool", WorkerExitError{ExitCode: -1, Signal: "SIGKILL", Reason: "the pool was terminated"}, endKilled,
			WorkerExitError{ExitCode: -1, Signal: "SIGKILL", Reason: "the pool was terminated"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.in
			l.decodeExit(&e, tt.cause)
			assert.Equal(t, tt.want, e)
		})
	}
}
