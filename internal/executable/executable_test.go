package executable

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBuildID agrees with the go tool's reading of this test binary.
func TestBuildID(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	out, err := exec.Command("go", "tool", "buildid", exe).Output()
	require.NoError(t, err)
	assert.Equal(t, strings.TrimSpace(string(out)), BuildID())
	assert.NotEmpty(t, BuildID())
}

// TestReadBuildIDNotGo: a file that is not a Go ELF binary is an error.
func TestReadBuildIDNotGo(t *testing.T) {
	_, err := ReadBuildID("/bin/sh")
	assert.Error(t, err)
	_, err = ReadBuildID("/nonexistent")
	assert.Error(t, err)
}

// TestSHA256 hashes the running program, as the remote cache names it.
func TestSHA256(t *testing.T) {
	b, err := os.ReadFile("/proc/self/exe")
	require.NoError(t, err)
	sum := sha256.Sum256(b)
	d, err := SHA256()
	require.NoError(t, err)
	assert.Equal(t, hex.EncodeToString(sum[:]), d.SHA256)
	assert.Equal(t, int64(len(b)), d.Size)
}
