package procpool_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/internal/executable"
	"github.com/procpool/procpool/internal/sshtest"
	"github.com/procpool/procpool/pkg/procpool"
)

// TestSSHReshipsAfterCacheLoss: when the shipped copy vanishes from the
// host's cache (a cleaner of ~/.cache, say), the next replacement ships the
// program again instead of failing for ever.
func TestSSHReshipsAfterCacheLoss(t *testing.T) {
	noLeaks(t)
	srv := sshtest.Start(t)
	cache := filepath.Join(t.TempDir(), "cache")
	logs := &syncBuffer{}
	p, err := procpool.New(procpool.Config{
		Remote:  []procpool.Launcher{procpool.SSH(sshtest.Dest, 1, procpool.SSHArgs(srv.ClientArgs()...), procpool.ShipBinary(cache))},
		OnCrash: procpool.Respawn,
		Logger:  hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug}),
	})
	require.NoError(t, err)
	t.Cleanup(func() { p.Terminate() })
	require.Equal(t, 1, strings.Count(logs.String(), "shipped the program"))

	d, err := executable.SHA256()
	require.NoError(t, err)
	require.NoError(t, os.Remove(filepath.Join(cache, d.SHA256)))
	old := p.Workers()[0]
	require.NoError(t, syscall.Kill(old, syscall.SIGKILL))

	require.Eventually(t, func() bool { return p.Stats().Deaths == 1 }, 5*time.Second, 5*time.Millisecond)
	// The call waits for a replacement that completes its handshake.
	v, err := Square.Submit(p, 12).Get(ctx(t))
	require.NoError(t, err, logs.String())
	require.Equal(t, 144, v)
	require.NotEqual(t, old, p.Workers()[0])
	require.Equal(t, 2, strings.Count(logs.String(), "shipped the program"), logs.String())
	require.FileExists(t, filepath.Join(cache, d.SHA256))
	require.NoError(t, p.Close())
}
