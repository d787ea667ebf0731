package procpool_test

import (
	"context"
	"os"

	"github.com/procpool/procpool/pkg/procpool"
)

// A task only some processes register, so the handshake sees two programs
// that differ.
func init() {
	if os.Getenv("PROCPOOL_TEST_EXTRA_TASK") != "" {
		procpool.Register("test.extra", func(context.Context, int) (int, error) { return 0, nil })
	}
}
