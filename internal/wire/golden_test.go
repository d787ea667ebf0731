package wire_test

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/internal/wire"
	"github.com/procpool/procpool/internal/wire/wiretest"
)

var update = flag.Bool("update", false, "rewrite the golden frames in testdata/wire/ from the messages in internal/wire/wiretest")

// TestGolden pins the protocol to the frames in testdata/wire/v<Version>:
// each must decode to its message, and encoding the message must give the
// frame byte for byte. A change to any message's encoding fails here; if it
// is meant, bump wire.Version and regenerate:
//
//	go test ./internal/wire -run Golden -update
func TestGolden(t *testing.T) {
	golden := wiretest.Messages()
	if *update {
		dir := wiretest.Dir(t)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		for _, g := range golden {
			require.NoError(t, os.WriteFile(wiretest.Path(t, g), frame(t, g.Msg), 0o644))
		}
	}

	covered := map[string]bool{}
	for _, g := range golden {
		t.Run(g.Name, func(t *testing.T) {
			file := wiretest.Frame(t, g)
			require.Equal(t, frame(t, g.Msg), file, "encoding the message does not give the golden frame")

			r := wire.NewReader(bytes.NewReader(file), wire.DefaultMaxFrame)
			body, err := r.ReadFrame()
			require.NoError(t, err)
			got, err := wire.NewDecoder().Decode(body)
			require.NoError(t, err)
			require.Equal(t, wire.Canonical(g.Msg), wire.Canonical(got))
			_, err = r.ReadFrame()
			require.Equal(t, io.EOF, err, "the file holds more than one frame")
		})
		switch m := g.Msg.(type) {
		case *wire.Hello:
			require.Equal(t, wire.Version, m.Version, "%s: the golden Hello is of another version", g.Name)
		case *wire.Result:
			for _, it := range m.Items {
				covered[fmt.Sprintf("an item of status %d", it.Status)] = true
			}
			covered[fmt.Sprintf("a result with More %v", m.More)] = true
		}
		covered[fmt.Sprintf("a %T", g.Msg)] = true
	}

	// The set covers the protocol: every kind, every status, More both ways.
	want := []string{"a *wire.Hello", "a *wire.Setup", "a *wire.Ready", "a *wire.Run", "a *wire.Result", "a *wire.Cancel",
		"a result with More true", "a result with More false"}
	for s := wire.StatusOK; s <= wire.StatusTooLarge; s++ {
		want = append(want, fmt.Sprintf("an item of status %d", s))
	}
	for _, w := range want {
		require.True(t, covered[w], "no golden message has %s", w)
	}

	// And the directory holds nothing else.
	files, err := filepath.Glob(filepath.Join(wiretest.Dir(t), "*.bin"))
	require.NoError(t, err)
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".bin")
		require.True(t, slices.ContainsFunc(golden, func(g wiretest.Golden) bool { return g.Name == name }),
			"%s is no golden message's frame: delete it", f)
	}
}

// frame encodes m as one complete frame, length prefix and body, as a
// Writer sends it.
func frame(t *testing.T, m wire.Message) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := wire.NewWriter(&buf, wire.DefaultMaxFrame)
	require.NoError(t, w.Write(m))
	require.NoError(t, w.Flush())
	return buf.Bytes()
}
