package procpool_test

import (
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/internal/sshtest"
	"github.com/procpool/procpool/pkg/procpool"
)

func TestSSHSmoke(t *testing.T) {
	noLeaks(t)
	srv := sshtest.Start(t)
	logs := &syncBuffer{}
	p, err := procpool.New(procpool.Config{
		Remote: []procpool.Launcher{procpool.SSH(sshtest.Dest, 2, procpool.SSHArgs(srv.ClientArgs()...))},
		Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug}),
	})
	require.NoError(t, err, srv.Log())
	defer p.Close()
	out, err := Square.Map(ctx(t), p, []int{1, 2, 3, 4, 5})
	require.NoError(t, err)
	require.Equal(t, []int{1, 4, 9, 16, 25}, out)
	t.Log(p.Stats())
	require.NoError(t, p.Close())
	t.Log(logs.String())
}
