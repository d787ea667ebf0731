package procpool

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procpool/procpool/internal/executable"
)

// SSH returns a Launcher that runs workers on destination through the
// system's OpenSSH client, one session per worker:
//
//	ssh [SSHArgs] -T -o BatchMode=yes -o ServerAliveInterval=5 ... -- destination <worker command>
//
// so the user's ssh config, keys and agent apply, and a password prompt
// fails instead of waiting. destination is anything ssh takes: host,
// user@host, or a Host from ssh_config.
//
// By default the remote worker is the program at this program's path, which
// must then be a build of this program installed there; RemoteProgram names
// another path, and ShipBinary uploads this very program instead.
//
// A worker ends with its session: if this process dies or the connection
// drops, the remote worker reads the end of its stdin and exits, and the
// remote wrapper kills what its tasks started. A session that dies is the
// death of its worker, under Config.OnCrash; a host whose workers keep
// failing to start is retried with a growing back-off while the other
// workers carry on.
func SSH(destination string, workers int, opts ...SSHOption) Launcher {
	l := &sshLauncher{dest: destination, workers: workers, client: "ssh"}
	for _, o := range opts {
		o(l)
	}
	return l
}

// An SSHOption configures an SSH launcher.
type SSHOption func(*sshLauncher)

// SSHArgs adds arguments for the ssh client, placed before procpool's own
// options, so that theirs win: "-F", "ssh_config", "-i", "key", "-p", "2222",
// "-o", "ServerAliveInterval=2".
func SSHArgs(args ...string) SSHOption {
	return func(l *sshLauncher) { l.args = append(l.args, args...) }
}

// SSHClient names the ssh client program. Default "ssh", found in PATH.
func SSHClient(path string) SSHOption {
	return func(l *sshLauncher) { l.client = path }
}

// RemoteProgram is the path of the worker program on the remote host: a
// build of this program. A path beginning with "~/" is in the remote
// user's home.
func RemoteProgram(path string) SSHOption {
	return func(l *sshLauncher) { l.program = path }
}

// ShipBinary uploads this program to the remote host when the pool starts,
// through ssh itself, into cacheDir there (default "~/.cache/procpool"),
// under its SHA-256; the upload is checked against the hash and skipped
// when the host has it already. The host must have the same operating system
// and architecture as this one, and sha256sum (or shasum) and head.
func ShipBinary(cacheDir string) SSHOption {
	return func(l *sshLauncher) {
		l.ship = true
		l.cacheDir = cacheDir
		if l.cacheDir == "" {
			l.cacheDir = "~/.cache/procpool"
		}
	}
}

type sshLauncher struct {
	dest     string
	workers  int
	client   string
	args     []string
	program  string // "" means selfPath(), or the shipped copy
	ship     bool
	cacheDir string

	shipMu   sync.Mutex
	unsure   atomic.Bool  // a worker found no program: ship again before the next start
	shipDone bool         // under shipMu: shipped (or found) since the last doubt
	log      hclog.Logger // under shipMu: the pool's, set by prepare
}

func (l *sshLauncher) Workers() int   { return l.workers }
func (l *sshLauncher) String() string { return "ssh " + l.dest }

// sshOptions are procpool's defaults: fail rather than prompt, notice a
// silent network within about 15 seconds, give up connecting after 10.
var sshOptions = []string{"-T",
	"-o", "BatchMode=yes",
	"-o", "ServerAliveInterval=5",
	"-o", "ServerAliveCountMax=3",
	"-o", "ConnectTimeout=10",
}

// command is the ssh command line that runs script remotely under sh with
// args as its positional parameters.
func (l *sshLauncher) command(ctx context.Context, script string, args ...string) *exec.Cmd {
	remote := "exec sh -c " + shellQuote(script) + " procpool"
	for _, a := range args {
		remote += " " + shellQuote(a)
	}
	argv := slices.Concat(l.args, sshOptions, []string{"--", l.dest, remote})
	return exec.CommandContext(ctx, l.client, argv...)
}

// workerScript starts the worker ($1, its arguments after it) with the
// session's stdin, waits for it, kills its process group (which the worker
// leads: what its tasks started), and exits with its status, so that a
// signal shows as 128+n in ssh's exit code. The worker's stdin is handed on
// through fd 3 because sh gives a background job /dev/null.
const workerScript = `p=$1; shift
case $p in "~/"*) p=$HOME/${p#"~/"};; esac
exec 3<&0
"$p" "$@" 0<&3 3<&- &
w=$!
exec 3<&-
wait "$w"
s=$?
kill -9 "-$w" 2>/dev/null
exit "$s"`

func (l *sshLauncher) Command(ctx context.Context, spec WorkerSpec) (*exec.Cmd, error) {
	if l.unsure.Load() {
		// The cached copy vanished (a cleaner of ~/.cache, say): ship it
		// again rather than fail every replacement.
		if err := l.shipOnce(ctx); err != nil {
			return nil, err
		}
	}
	return l.command(context.Background(), workerScript, append([]string{l.remoteProgram()}, spec.Args...)...), nil
}

func (l *sshLauncher) remoteProgram() string {
	switch {
	case l.program != "":
		return l.program
	case l.ship:
		d, _ := executable.SHA256() // prepare has computed it
		return strings.TrimSuffix(l.cacheDir, "/") + "/" + d.SHA256
	}
	return selfPath()
}

// decodeExit reads ssh's exit code: 255 is ssh's own failure, 128+n the
// worker's death by signal n (the wrapper's exit status).
func (l *sshLauncher) decodeExit(e *WorkerExitError, cause endCause) {
	if e.Signal != "" {
		return // the ssh client itself was killed: by the pool, which said why
	}
	noHandshake := cause == endNoHandshake
	switch code := e.ExitCode; {
	case code == 255:
		if noHandshake || e.Reason == "" {
			e.Reason = "ssh failed: the host could not be reached, refused the login, or the connection was lost"
		}
	case code > 128 && code < 128+65:
		e.ExitCode = -1
		e.Signal = signalName(syscall.Signal(code - 128))
		if noHandshake {
			e.Reason = "killed before the handshake"
		}
	case code == 127 && noHandshake:
		if l.ship && l.program == "" {
			l.unsure.Store(true)
		}
		e.Reason = fmt.Sprintf("no worker program at %s on the host: install a build of this program there and name it with RemoteProgram, or use ShipBinary", l.remoteProgram())
	case code == 126 && noHandshake:
		e.Reason = fmt.Sprintf("the worker program %s on the host cannot be run", l.remoteProgram())
	}
}

// shipScript receives the program: $1 its SHA-256, $2 its size, $3 the
// cache folder. It answers "have" when the cache holds it already, or "need
// <uname -s> <uname -m>" and then reads exactly $2 bytes, checks their hash
// and moves them into place, answering "stored".
const shipScript = `set -e
h=$1; n=$2; d=$3
case $d in "~/"*) d=$HOME/${d#"~/"};; esac
f=$d/$h
if [ -x "$f" ]; then echo have; exit 0; fi
echo "need $(uname -s) $(uname -m)"
mkdir -p "$d"
t=$d/.upload.$$
trap 'rm -f "$t"' EXIT
head -c "$n" >"$t"
if command -v sha256sum >/dev/null 2>&1; then s=$(sha256sum "$t"); else s=$(shasum -a 256 "$t"); fi
if [ "${s%% *}" != "$h" ]; then echo "procpool: the upload does not match its SHA-256 (got ${s%% *})" >&2; exit 1; fi
chmod 755 "$t"
mv -f "$t" "$f"
trap - EXIT
echo stored`

// prepare ships the program, if asked to.
func (l *sshLauncher) prepare(ctx context.Context, p *Pool) error {
	if !l.ship || l.program != "" {
		return nil
	}
	l.shipMu.Lock()
	l.log = p.log.Named("ssh")
	l.shipDone = false // every pool checks the host once
	l.shipMu.Unlock()
	return l.shipOnce(ctx)
}

// shipOnce ships the program unless it has been shipped since the last
// doubt; concurrent starts wait for one upload.
func (l *sshLauncher) shipOnce(ctx context.Context) error {
	l.shipMu.Lock()
	defer l.shipMu.Unlock()
	if l.unsure.Swap(false) {
		l.shipDone = false
	}
	if l.shipDone {
		return nil
	}
	if err := l.shipProgram(ctx, l.log); err != nil {
		return err
	}
	l.shipDone = true
	return nil
}

// shipProgram uploads the program unless the host has it.
func (l *sshLauncher) shipProgram(ctx context.Context, log hclog.Logger) error {
	d, err := executable.SHA256()
	if err != nil {
		return fmt.Errorf("ship the program: %w", err)
	}
	start := time.Now()
	cmd := l.command(ctx, shipScript, d.SHA256, fmt.Sprint(d.Size), l.cacheDir)
	var stderr tailBuffer
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("ship the program: %w", err)
	}
	sent, err := l.upload(in, bufio.NewReader(out), d)
	in.Close()
	if werr := cmd.Wait(); err == nil && werr != nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("ship the program to the host: %w%s", err, stderr.suffix())
	}
	if sent {
		log.Info("shipped the program", "to", l.String(), "bytes", d.Size, "sha256", d.SHA256, "took", time.Since(start))
	} else {
		log.Debug("the host has the program already", "on", l.String(), "sha256", d.SHA256)
	}
	return nil
}

// upload conducts the dialogue of shipScript; it reports whether it sent
// the program.
func (l *sshLauncher) upload(in io.Writer, out *bufio.Reader, d executable.Digest) (bool, error) {
	line, err := out.ReadString('\n')
	if err != nil {
		return false, fmt.Errorf("no answer from the host (%v)", err)
	}
	fields := strings.Fields(line)
	switch {
	case len(fields) == 1 && fields[0] == "have":
		return false, nil
	case len(fields) == 3 && fields[0] == "need":
		if goos, goarch := strings.ToLower(fields[1]), unameArch(fields[2]); goos != runtime.GOOS || goarch != runtime.GOARCH {
			return false, fmt.Errorf("the host is %s/%s and this program is built for %s/%s: build it for the host, install it there and use RemoteProgram", goos, goarch, runtime.GOOS, runtime.GOARCH)
		}
	default:
		return false, fmt.Errorf("unexpected answer %q from the host (does its shell print to stdout at login?)", strings.TrimSpace(line))
	}
	path, err := executable.Path()
	if err != nil {
		return false, err
	}
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if _, err := io.CopyN(in, f, d.Size); err != nil {
		return false, fmt.Errorf("upload: %w", err)
	}
	if line, err = out.ReadString('\n'); strings.TrimSpace(line) != "stored" {
		return false, fmt.Errorf("the host did not store the upload (%q, %v)", strings.TrimSpace(line), err)
	}
	return true, nil
}

// unameArch turns `uname -m` into a GOARCH.
func unameArch(m string) string {
	switch m {
	case "x86_64", "amd64":
		return "amd64"
	case "aarch64", "arm64":
		return "arm64"
	case "i386", "i486", "i586", "i686":
		return "386"
	}
	if strings.HasPrefix(m, "armv") {
		return "arm"
	}
	return m // ppc64le, s390x, riscv64, loong64, mips64 read the same
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// shellQuote quotes s for a POSIX shell, or any shell that takes '…'.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if over := len(t.b) - 4096; over > 0 {
		t.b = t.b[over:]
	}
	return len(p), nil
}

// suffix is ": <the last lines>" or "".
func (t *tailBuffer) suffix() string {
	s := strings.TrimSpace(string(t.b))
	if s == "" {
		return ""
	}
	return ": " + s
}
