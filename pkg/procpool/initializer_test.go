//go:build unix

package procpool_test

// Config.Initializer: it runs in every worker, and what its failure does.

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

func TestInitializer(t *testing.T) {
	dir := t.TempDir()
	t.Run("runs in every worker, replacements too", func(t *testing.T) {
		hello := filepath.Join(dir, "hello")
		p, _ := newPool(t, procpool.Config{Workers: 2, OnCrash: procpool.Respawn, Initializer: SetGreeting.Bind(hello)})
		for range 4 {
			g, err := Greeting.Submit(p, struct{}{}).Get(ctx(t))
			require.NoError(t, err)
			assert.Equal(t, hello, g)
		}
		_, err := Crash.Submit(p, "exit1").Get(ctx(t))
		require.ErrorIs(t, err, procpool.ErrWorkerLost)
		for range 4 {
			g, err := Greeting.Submit(p, struct{}{}).Get(ctx(t))
			require.NoError(t, err)
			assert.Equal(t, hello, g)
		}
		require.NoError(t, p.Close())
	})
	t.Run("a failure fails New", func(t *testing.T) {
		noLeaks(t)
		bad := filepath.Join(dir, "bad")
		require.NoError(t, os.WriteFile(bad, nil, 0o600))
		_, err := procpool.New(procpool.Config{Workers: 2, Initializer: SetGreeting.Bind(bad), Logger: nullLogger()})
		require.ErrorIs(t, err, procpool.ErrInitFailed)
		require.ErrorIs(t, err, procpool.ErrStartup)
		assert.Contains(t, err.Error(), "greeting file exists: "+bad)
	})
	t.Run("a failure in a replacement breaks the pool", func(t *testing.T) {
		later := filepath.Join(dir, "later")
		p, _ := newPool(t, procpool.Config{Workers: 1, OnCrash: procpool.Respawn, Initializer: SetGreeting.Bind(later)})
		require.NoError(t, os.WriteFile(later, nil, 0o600))
		_, err := Crash.Submit(p, "exit1").Get(ctx(t))
		require.ErrorIs(t, err, procpool.ErrWorkerLost)
		require.Eventually(t, func() bool {
			_, err = Square.Submit(p, 2).Get(ctx(t))
			return err != nil
		}, 5*time.Second, 10*time.Millisecond)
		require.ErrorIs(t, err, procpool.ErrBrokenPool)
		require.ErrorIs(t, err, procpool.ErrInitFailed)
		assert.Contains(t, err.Error(), "greeting file exists")
		require.NoError(t, p.Close())
	})
}
