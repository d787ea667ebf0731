//go:build unix

// Tests that a task's error keeps its identity across the pipe.
package procpool_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

func TestErrorsKeepTheirIdentity(t *testing.T) {
	for _, backend := range []procpool.Backend{procpool.Processes, procpool.Goroutines} {
		t.Run(backend.String(), func(t *testing.T) {
			p, _ := newPool(t, procpool.Config{Workers: 1, Backend: backend})
			for which, want := range map[string]error{
				"canceled": context.Canceled, "deadline": context.DeadlineExceeded, "os-deadline": os.ErrDeadlineExceeded,
				"not-exist": fs.ErrNotExist, "exist": fs.ErrExist, "permission": fs.ErrPermission,
				"eof": io.EOF, "unexpected-eof": io.ErrUnexpectedEOF, "quota": ErrQuota,
			} {
				_, err := FailWith.Submit(p, which).Get(ctx(t))
				require.ErrorIs(t, err, want, which)
				var re *procpool.RemoteError
				require.ErrorAs(t, err, &re)
				assert.Equal(t, `step "`+which+`": `+want.Error(), re.Message, "the message is kept")
				if want != io.EOF {
					assert.NotErrorIs(t, err, io.EOF, "%s is not io.EOF", which)
				}
			}
			_, err := FailWith.Submit(p, "plain").Get(ctx(t))
			var re *procpool.RemoteError
			require.ErrorAs(t, err, &re)
			assert.Empty(t, re.Errs)
			assert.False(t, errors.Is(err, context.Canceled))
			require.NoError(t, p.Close())
		})
	}
}
