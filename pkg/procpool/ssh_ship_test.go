//go:build unix

package procpool_test

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/internal/executable"
	"github.com/procpool/procpool/internal/sshtest"
	"github.com/procpool/procpool/pkg/procpool"
)

// The tests of what ShipBinary accepts in the host's cache. The "remote"
// host is this machine, so the tests prepare the cache folder with the os
// package, as its owner (or root) on the host would.

// shipStartTimeout is the pools' Config.StartTimeout: what these tests check
// does not depend on how fast workers start, and a loaded machine can take
// more than the default 10s to connect and start one.
const shipStartTimeout = time.Minute

// programDigest is this program's SHA-256 and size: the name and size of
// its copy in a cache.
func programDigest(t *testing.T) executable.Digest {
	t.Helper()
	d, err := executable.SHA256()
	require.NoError(t, err)
	return d
}

// plantedProgram is a program that leaves proof on the host that it ran, at
// marker: what another account would plant under the expected name.
func plantedProgram(marker string) []byte {
	return []byte("#!/bin/sh\necho ran >" + shellWord(marker) + "\nexit 1\n")
}

func shellWord(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// requireShipRefused starts a pool that ships into cache and checks that New
// fails with ErrStartup, with an error that holds every one of want, before
// any worker started and without an upload.
func requireShipRefused(t *testing.T, srv *sshtest.Server, l procpool.Launcher, want ...string) error {
	t.Helper()
	logs := &syncBuffer{}
	p, err := procpool.New(procpool.Config{Remote: []procpool.Launcher{l}, Logger: debugLogger(logs), StartTimeout: shipStartTimeout})
	if p != nil {
		p.Terminate()
	}
	require.Nil(t, p, "the pool started; log:\n%s", logs)
	t.Log(err)
	require.ErrorIs(t, err, procpool.ErrStartup)
	for _, w := range want {
		assert.Contains(t, err.Error(), w)
	}
	var exit *procpool.WorkerExitError
	assert.False(t, errors.As(err, &exit), "a worker was started: %v", err)
	assert.NotContains(t, logs.String(), "shipped the program")
	assertNoRemoteWorkers(t, srv)
	return err
}

// shipPool starts a pool of two workers that ship into cache, and returns
// its log.
func shipPool(t *testing.T, srv *sshtest.Server, cache string) (*procpool.Pool, *syncBuffer) {
	t.Helper()
	return newSSHPool(t, srv, procpool.Config{Remote: []procpool.Launcher{sshTo(srv, 2, procpool.ShipBinary(cache))}, StartTimeout: shipStartTimeout})
}

// requireRunsCopy checks that the pool's workers run the copy at path and
// serve calls.
func requireRunsCopy(t *testing.T, srv *sshtest.Server, p *procpool.Pool, path string) {
	t.Helper()
	for _, pid := range p.Workers() {
		require.True(t, isRemoteWorker(srv, pid))
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		require.NoError(t, err)
		assert.Equal(t, path, link, "worker %d runs the copy", pid)
	}
	out, err := Square.Map(ctx(t), p, []int{1, 2, 3})
	require.NoError(t, err)
	assert.Equal(t, []int{1, 4, 9}, out)
}

// fileMode is the permission bits (and the sticky bit) of path.
func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	return fi.Mode() & (os.ModePerm | os.ModeSticky)
}

// dirNames lists the names in dir; none if it does not exist.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if !errors.Is(err, os.ErrNotExist) {
		require.NoError(t, err)
	}
	names := []string{}
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// A user checks: a cache folder that does not exist yet is created with
// mode 0700 (and reached through a symbolic link, resolved); the first pool
// uploads the program once, the next finds it and uploads nothing, and the
// workers run the copy by its resolved path.
func TestSSHShipCleanCache(t *testing.T) {
	srv := startSSHD(t)
	dir := t.TempDir()
	realDir := filepath.Join(dir, "real")
	require.NoError(t, os.Mkdir(realDir, 0o755))
	require.NoError(t, os.Symlink(realDir, filepath.Join(dir, "link")))
	cache := filepath.Join(dir, "link", "procpool", "cache")
	copyPath := filepath.Join(realDir, "procpool", "cache", programDigest(t).SHA256)

	for i, want := range []struct{ shipped, found int }{{1, 0}, {0, 1}} {
		p, logs := shipPool(t, srv, cache)
		assert.Equal(t, want.shipped, strings.Count(logs.String(), "shipped the program"), "pool %d: uploads", i)
		assert.Equal(t, want.found, strings.Count(logs.String(), "the host has the program already"), "pool %d", i)
		assert.Equal(t, os.FileMode(0o700), fileMode(t, filepath.Dir(copyPath)), "the cache folder is private")
		assert.Equal(t, []string{filepath.Base(copyPath)}, dirNames(t, filepath.Dir(copyPath)))
		requireRunsCopy(t, srv, p, copyPath)
		require.NoError(t, p.Close())
	}
}

// A user checks: a file with the program's name and other content in the
// cache (as another account with access would plant it) is refused, never
// run, and left as it is; once the user removes it, the next pool ships the
// program. The same holds for a launcher that wraps the SSH one, whose
// workers start without the pool's preparation of the launcher.
func TestSSHShipPlantedProgram(t *testing.T) {
	srv := startSSHD(t)
	d := programDigest(t)
	for _, wrapped := range []bool{false, true} {
		t.Run(fmt.Sprintf("wrapped=%v", wrapped), func(t *testing.T) {
			dir := t.TempDir()
			cache := filepath.Join(dir, "cache")
			require.NoError(t, os.Mkdir(cache, 0o700))
			marker := filepath.Join(dir, "planted-program-ran")
			planted := filepath.Join(cache, d.SHA256)
			content := plantedProgram(marker)
			require.NoError(t, os.WriteFile(planted, content, 0o755))

			var l procpool.Launcher = sshTo(srv, 2, procpool.ShipBinary(cache))
			if wrapped {
				l = wrappedLauncher{l}
			}
			requireShipRefused(t, srv, l, fmt.Sprintf("the cached program %s is not this program (SHA-256 %s, %d bytes): its SHA-256 is ", planted, d.SHA256, d.Size),
				fmt.Sprintf(", and it has %d bytes; it is left as it is for you to inspect", len(content)))
			assert.NoFileExists(t, marker, "the planted program ran")
			got, err := os.ReadFile(planted)
			require.NoError(t, err)
			assert.Equal(t, content, got, "the planted file was changed")
			assert.Equal(t, os.FileMode(0o755), fileMode(t, planted))

			require.NoError(t, os.Remove(planted))
			p, err := procpool.New(procpool.Config{Remote: []procpool.Launcher{l}, Logger: nullLogger(), StartTimeout: shipStartTimeout})
			require.NoError(t, err)
			defer p.Terminate()
			requireRunsCopy(t, srv, p, planted)
			require.NoError(t, p.Close())
			assertNoRemoteWorkers(t, srv)
		})
	}
}

// wrappedLauncher is a Launcher of the user's that wraps another: the pool
// sees only the Launcher methods, so it prepares nothing before the first
// Command.
type wrappedLauncher struct{ procpool.Launcher }

// A user checks: a cached copy cut short (a full disk, an interrupted copy
// by hand) is refused with its size and hash, and left as it is.
func TestSSHShipTruncatedProgram(t *testing.T) {
	srv := startSSHD(t)
	cache := filepath.Join(t.TempDir(), "cache")
	d := programDigest(t)
	copyPath := filepath.Join(cache, d.SHA256)
	p, _ := shipPool(t, srv, cache)
	require.NoError(t, p.Close())

	half := d.Size / 2
	require.NoError(t, os.Truncate(copyPath, half))
	requireShipRefused(t, srv, sshTo(srv, 2, procpool.ShipBinary(cache)),
		fmt.Sprintf("the cached program %s is not this program (SHA-256 %s, %d bytes): its SHA-256 is ", copyPath, d.SHA256, d.Size),
		fmt.Sprintf(", and it has %d bytes; it is left as it is", half))
	fi, err := os.Stat(copyPath)
	require.NoError(t, err)
	assert.Equal(t, half, fi.Size(), "the truncated copy was changed")
}

// A user checks: a cache that another account can write to, or in which
// it could swap a folder, and a cached copy that is not an executable
// regular file, are refused with an error naming the path and its mode,
// and left as they are (no chmod, no upload); a folder above the cache that
// everyone may write to but that has the sticky bit, as /tmp, is fine.
func TestSSHShipUnsafeCache(t *testing.T) {
	srv := startSSHD(t)
	d := programDigest(t)
	for _, tc := range []struct {
		name string
		// setup makes the cache under dir, and returns the path it makes
		// unsafe and what the error must say of it, or "" if the cache is
		// safe.
		setup func(t *testing.T, dir, cache string) (path, want string)
	}{
		{"group-writable folder", func(t *testing.T, _, cache string) (string, string) {
			require.NoError(t, os.Mkdir(cache, 0o700))
			require.NoError(t, os.Chmod(cache, 0o770))
			return cache, "the cache folder " + cache + " is writable by its group or others (drwxrwx---)"
		}},
		{"others-writable folder", func(t *testing.T, _, cache string) (string, string) {
			require.NoError(t, os.Mkdir(cache, 0o700))
			require.NoError(t, os.Chmod(cache, 0o703))
			return cache, "the cache folder " + cache + " is writable by its group or others (drwx----wx)"
		}},
		{"group-writable folder above", func(t *testing.T, dir, cache string) (string, string) {
			require.NoError(t, os.Chmod(dir, 0o775))
			return dir, dir + ", above the cache folder " + cache + ", is writable by its group or others without the sticky bit (drwxrwxr-x)"
		}},
		{"sticky folder above", func(t *testing.T, dir, _ string) (string, string) {
			require.NoError(t, os.Chmod(dir, 0o777|os.ModeSticky))
			return dir, ""
		}},
		{"group-writable cached program", func(t *testing.T, _, cache string) (string, string) {
			copyPath := shipInto(t, srv, cache)
			require.NoError(t, os.Chmod(copyPath, 0o775))
			return copyPath, "the cached program " + copyPath + " is writable by its group or others (-rwxrwxr-x)"
		}},
		{"cached program not executable", func(t *testing.T, _, cache string) (string, string) {
			copyPath := shipInto(t, srv, cache)
			require.NoError(t, os.Chmod(copyPath, 0o644))
			return copyPath, "the cached program " + copyPath + " cannot be run (-rw-r--r--)"
		}},
		{"cached program a symbolic link", func(t *testing.T, dir, cache string) (string, string) {
			copyPath := shipInto(t, srv, cache)
			elsewhere := filepath.Join(dir, "elsewhere")
			require.NoError(t, os.Rename(copyPath, elsewhere))
			require.NoError(t, os.Symlink(elsewhere, copyPath))
			return copyPath, "the cached program " + copyPath + " is not a regular file (lrwxrwxrwx)"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "shared")
			require.NoError(t, os.Mkdir(dir, 0o700))
			t.Cleanup(func() { os.Chmod(dir, 0o700) })
			cache := filepath.Join(dir, "cache")
			path, want := tc.setup(t, dir, cache)
			before := fileMode(t, path)

			if want == "" {
				p, logs := shipPool(t, srv, cache)
				assert.Equal(t, 1, strings.Count(logs.String(), "shipped the program"))
				requireRunsCopy(t, srv, p, filepath.Join(cache, d.SHA256))
				require.NoError(t, p.Close())
				return
			}
			names := dirNames(t, cache)
			requireShipRefused(t, srv, sshTo(srv, 2, procpool.ShipBinary(cache)), want)
			assert.Equal(t, before, fileMode(t, path), "the mode of %s was changed", path)
			assert.Equal(t, names, dirNames(t, cache), "the cache's content changed")
		})
	}
}

// shipInto ships the program into cache with a pool it closes at once,
// and returns the copy's path.
func shipInto(t *testing.T, srv *sshtest.Server, cache string) string {
	t.Helper()
	p, err := procpool.New(procpool.Config{
		Remote:       []procpool.Launcher{sshTo(srv, 1, procpool.ShipBinary(cache))},
		Logger:       nullLogger(),
		StartTimeout: shipStartTimeout,
	})
	require.NoError(t, err)
	require.NoError(t, p.Close())
	assertNoRemoteWorkers(t, srv)
	return filepath.Join(cache, programDigest(t).SHA256)
}

// A user checks: a cache folder, a folder above it or a cached copy that
// belongs to another account (here nobody; the remote user is root, who runs
// the tests) is refused with an error naming the path and its owner, and
// is left as it is.
func TestSSHShipForeignOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to give a folder to another account (CI runs the tests as root)")
	}
	nobody := 65534
	if u, err := user.Lookup("nobody"); err == nil {
		nobody, _ = strconv.Atoi(u.Uid)
	}
	srv := startSSHD(t)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir, cache string) (path, want string)
	}{
		{"folder", func(t *testing.T, _, cache string) (string, string) {
			require.NoError(t, os.Mkdir(cache, 0o700))
			return cache, fmt.Sprintf("the cache folder %s is owned by uid %d, not by the remote user (uid 0)", cache, nobody)
		}},
		{"folder above", func(t *testing.T, dir, cache string) (string, string) {
			require.NoError(t, os.Mkdir(cache, 0o700))
			return dir, fmt.Sprintf("%s, above the cache folder %s, is owned by uid %d, neither the remote user (uid 0) nor root", dir, cache, nobody)
		}},
		{"cached program", func(t *testing.T, _, cache string) (string, string) {
			copyPath := shipInto(t, srv, cache)
			return copyPath, fmt.Sprintf("the cached program %s is owned by uid %d, not by the remote user (uid 0)", copyPath, nobody)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "shared")
			require.NoError(t, os.Mkdir(dir, 0o755))
			cache := filepath.Join(dir, "cache")
			path, want := tc.setup(t, dir, cache)
			require.NoError(t, os.Lchown(path, nobody, nobody))
			names := dirNames(t, cache)

			requireShipRefused(t, srv, sshTo(srv, 2, procpool.ShipBinary(cache)), want)
			fi, err := os.Lstat(path)
			require.NoError(t, err)
			assert.EqualValues(t, nobody, fi.Sys().(*syscall.Stat_t).Uid, "the owner of %s was changed", path)
			assert.Equal(t, names, dirNames(t, cache), "the cache's content changed")
		})
	}
}

// A user checks: when a worker finds the shipped copy gone, the next worker
// start checks the cache again before it runs anything, and a cache that
// has meanwhile become writable by others is refused there too: the
// replacement does not start and the pool breaks, saying why, with no
// upload into that folder.
func TestSSHShipRecheckAfterCacheLoss(t *testing.T) {
	srv := startSSHD(t)
	cache := filepath.Join(t.TempDir(), "cache")
	p, logs := newSSHPool(t, srv, procpool.Config{
		Remote:       []procpool.Launcher{sshTo(srv, 1, procpool.ShipBinary(cache))},
		OnCrash:      procpool.Respawn,
		StartTimeout: shipStartTimeout,
	})
	require.Equal(t, 1, strings.Count(logs.String(), "shipped the program"))

	require.NoError(t, os.Remove(filepath.Join(cache, programDigest(t).SHA256)))
	require.NoError(t, os.Chmod(cache, 0o770))
	old := p.Workers()[0]
	require.NoError(t, syscall.Kill(old, syscall.SIGKILL))
	require.Eventually(t, func() bool { return p.Stats().Deaths >= 1 }, 5*time.Second, 5*time.Millisecond)

	_, err := Square.Submit(p, 12).Get(ctx(t))
	t.Log(err)
	require.ErrorIs(t, err, procpool.ErrBrokenPool)
	require.ErrorIs(t, err, procpool.ErrStartup)
	assert.Contains(t, err.Error(), "the cache folder "+cache+" is writable by its group or others (drwxrwx---)")
	assert.Contains(t, logs.String(), "no worker program at "+filepath.Join(cache, programDigest(t).SHA256), "a replacement found the copy gone first")
	assert.Equal(t, 1, strings.Count(logs.String(), "shipped the program"), "shipped into the unsafe folder")
	assert.Empty(t, dirNames(t, cache))
	assert.Equal(t, os.FileMode(0o770), fileMode(t, cache))
	require.Eventually(t, func() bool { return !running(old) }, 5*time.Second, 10*time.Millisecond)
}
