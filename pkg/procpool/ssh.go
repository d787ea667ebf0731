package procpool

import (
	"bufio"
	"context"
	"errors"
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
// death of its worker, under [Config.OnCrash]; a host whose workers keep
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
// under its SHA-256, and the workers run that copy. The upload is checked
// against the hash, and skipped when the host has the copy already.
//
// The copy runs as the remote user, so the cache must be that user's alone.
// When the pool starts, the host creates cacheDir (and any missing folder
// above it) with mode 0700, resolves its symbolic links, and the pool
// refuses to start (an error matching ErrStartup that names the path and
// what is wrong with it) if:
//   - cacheDir, or the cached copy, is not owned by the remote user or is
//     writable by its group or others, or the copy is not an executable
//     regular file;
//   - a folder above cacheDir is owned by someone other than the remote
//     user or root, or is writable by its group or others without the
//     sticky bit (/tmp has it): whoever can write there could swap cacheDir
//     for a folder of their own;
//   - the cached copy's SHA-256, computed on the host, is not the one in its
//     name (a planted or truncated file). The pool does not ship around it:
//     the file is left as it is for you to inspect; remove it and the next
//     pool ships the program again.
//
// Nothing is changed to make the cache pass (no chmod, no removal). The
// workers run the copy by the resolved path that passed the check. The
// check is made when the pool starts, and again before the next worker
// starts when a worker finds the copy gone or not runnable (a refusal then
// fails that start, which breaks the pool); in between, the copy is not
// hashed before each worker start. What remains trusted is what can change
// the copy or its folders after the check: the remote account itself, and
// root.
//
// The host must have the same operating system and architecture as this
// one, and sh, head, ls, and sha256sum (or shasum).
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

	shipMu sync.Mutex   // one check (and upload) of the host at a time
	log    hclog.Logger // under shipMu: the pool's, set by prepare
	// shipped is the host's path of the copy that passed the last check;
	// nil before the pool's first check, and after a worker found no copy
	// it could run. A worker runs only this path.
	shipped atomic.Pointer[string]
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
	program := l.program
	if l.ship && program == "" {
		// Only a copy that passed the check: wait for the check (or the
		// upload) if none has passed since the pool started, or since a
		// worker found the copy gone (a cleaner of ~/.cache, say).
		var err error
		if program, err = l.shipOnce(ctx); err != nil {
			return nil, err
		}
	} else {
		program = l.remoteProgram()
	}
	return l.command(context.Background(), workerScript, append([]string{program}, spec.Args...)...), nil
}

// remoteProgram is the path of the worker program on the host, for errors
// too: with ShipBinary, that of the copy that passed the check, or where it
// is expected.
func (l *sshLauncher) remoteProgram() string {
	switch {
	case l.program != "":
		return l.program
	case l.ship:
		if p := l.shipped.Load(); p != nil {
			return *p
		}
		d, _ := executable.SHA256() // hashed once, before the first check
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
		e.Reason = fmt.Sprintf("no worker program at %s on the host: install a build of this program there and name it with RemoteProgram, or use ShipBinary", l.remoteProgram())
		l.doubtShipped()
	case code == 126 && noHandshake:
		e.Reason = fmt.Sprintf("the worker program %s on the host cannot be run", l.remoteProgram())
		l.doubtShipped()
	}
}

// doubtShipped makes the next worker start check the host again (and ship
// the program again if it is gone), when a worker found no shipped copy
// to run.
func (l *sshLauncher) doubtShipped() {
	if l.ship && l.program == "" {
		l.shipped.Store(nil)
	}
}

// shipScript checks the cache and receives the program: $1 its SHA-256, $2
// its size, $3 the cache folder. It creates the folder (mode 0700) if need
// be and resolves its links; then it answers, on one line:
//   - "refuse <why>" if the folder, one above it, or the cached copy is not
//     safe (see ShipBinary), or the copy's SHA-256 is not $1;
//   - "have <path>" if the cache holds the program, at path;
//   - "need <uname -s> <uname -m>", and then it reads exactly $2 bytes,
//     checks their hash, moves them into place and answers "stored <path>".
//
// ls -ldn is the portable way to read a file's owner (its 3rd field) and
// mode: "drwx------", with the group's write bit 6th and others' 9th, the
// sticky bit (t or T) 10th; an ACL mark may follow.
const shipScript = `set -ef
h=$1; n=$2; d=$3; u=$(id -u)
refuse() { printf 'refuse %s\n' "$*"; exit 1; }
look() { set -- $(ls -ldn "$1"); m=$1; o=$3; z=$5; }
sum() { if command -v sha256sum >/dev/null 2>&1; then s=$(sha256sum); else s=$(shasum -a 256); fi; echo "${s%% *}"; }
case $d in "~/"*) d=$HOME/${d#"~/"};; esac
umask 077
mkdir -p "$d"
d=$(CDPATH= cd -P "$d" && pwd -P)
look "$d"
[ "$o" = "$u" ] || refuse "the cache folder $d is owned by uid $o, not by the remote user (uid $u): another account controls what runs from it; use a folder of your own"
case $m in ?????w*|????????w*) refuse "the cache folder $d is writable by its group or others ($m): another account could plant a program there; chmod go-w it, if it need not be shared, or use another folder";; esac
a=$d
while [ "$a" != / ]; do
	a=${a%/*}; a=${a:-/}
	look "$a"
	case $o in "$u"|0) ;; *) refuse "$a, above the cache folder $d, is owned by uid $o, neither the remote user (uid $u) nor root: that account could swap the cache folder for its own";; esac
	case $m in ?????????[tT]*) ;; ?????w*|????????w*) refuse "$a, above the cache folder $d, is writable by its group or others without the sticky bit ($m): another account could swap the cache folder for its own; chmod go-w it, if it need not be shared, or use another folder";; esac
done
f=$d/$h
if [ -e "$f" ] || [ -L "$f" ]; then
	look "$f"
	case $m in -*) ;; *) refuse "the cached program $f is not a regular file ($m)";; esac
	[ "$o" = "$u" ] || refuse "the cached program $f is owned by uid $o, not by the remote user (uid $u)"
	case $m in ?????w*|????????w*) refuse "the cached program $f is writable by its group or others ($m)";; esac
	[ -x "$f" ] || refuse "the cached program $f cannot be run ($m)"
	s=$(sum <"$f")
	[ "$s" = "$h" ] || refuse "the cached program $f is not this program (SHA-256 $h, $n bytes): its SHA-256 is $s, and it has $z bytes; it is left as it is for you to inspect: remove it, and the next pool ships the program again"
	printf 'have %s\n' "$f"
	exit 0
fi
echo "need $(uname -s) $(uname -m)"
t=$d/.upload.$$
trap 'rm -f "$t"' EXIT
head -c "$n" >"$t"
s=$(sum <"$t")
if [ "$s" != "$h" ]; then echo "procpool: the upload does not match its SHA-256 (got $s)" >&2; exit 1; fi
chmod 755 "$t"
mv -f "$t" "$f"
trap - EXIT
printf 'stored %s\n' "$f"`

// prepare checks the host's cache, and ships the program, if asked to:
// every pool checks the host once before its first worker starts.
func (l *sshLauncher) prepare(ctx context.Context, p *Pool) error {
	if !l.ship || l.program != "" {
		return nil
	}
	l.shipMu.Lock()
	l.log = p.log.Named("ssh")
	l.shipped.Store(nil)
	l.shipMu.Unlock()
	_, err := l.shipOnce(ctx)
	return err
}

// shipOnce returns the path of the copy that passed the check, and checks
// (and ships) first if none has; concurrent starts wait for one check.
func (l *sshLauncher) shipOnce(ctx context.Context) (string, error) {
	l.shipMu.Lock()
	defer l.shipMu.Unlock()
	if p := l.shipped.Load(); p != nil {
		return *p, nil
	}
	log := l.log
	if log == nil { // Command without prepare: a Launcher wrapped by another
		log = hclog.NewNullLogger()
	}
	path, err := l.shipProgram(ctx, log)
	if err != nil {
		return "", err
	}
	l.shipped.Store(&path)
	return path, nil
}

// shipProgram checks the host's cache and uploads the program unless the
// host has it; it returns the copy's path on the host.
func (l *sshLauncher) shipProgram(ctx context.Context, log hclog.Logger) (string, error) {
	d, err := executable.SHA256()
	if err != nil {
		return "", fmt.Errorf("ship the program: %w", err)
	}
	start := time.Now()
	cmd := l.command(ctx, shipScript, d.SHA256, fmt.Sprint(d.Size), l.cacheDir)
	var stderr tailBuffer
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return "", err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("ship the program: %w", err)
	}
	path, sent, err := l.upload(in, bufio.NewReader(out), d)
	in.Close()
	if werr := cmd.Wait(); err == nil && werr != nil {
		err = werr
	}
	if err != nil {
		return "", fmt.Errorf("ship the program to the host: %w%s", err, stderr.suffix())
	}
	if sent {
		log.Info("shipped the program", "to", l.String(), "path", path, "bytes", d.Size, "sha256", d.SHA256, "took", time.Since(start))
	} else {
		log.Debug("the host has the program already", "on", l.String(), "path", path, "sha256", d.SHA256)
	}
	return path, nil
}

// upload conducts the dialogue of shipScript; it returns the copy's path on
// the host and whether it sent the program.
func (l *sshLauncher) upload(in io.Writer, out *bufio.Reader, d executable.Digest) (string, bool, error) {
	line, err := out.ReadString('\n')
	if err != nil {
		return "", false, fmt.Errorf("no answer from the host (%v)", err)
	}
	answer, rest, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
	switch fields := strings.Fields(rest); {
	case answer == "refuse":
		return "", false, errors.New(rest)
	case answer == "have":
		path, err := shippedPath(line, rest, d)
		return path, false, err
	case answer == "need" && len(fields) == 2:
		if goos, goarch := strings.ToLower(fields[0]), unameArch(fields[1]); goos != runtime.GOOS || goarch != runtime.GOARCH {
			return "", false, fmt.Errorf("the host is %s/%s and this program is built for %s/%s: build it for the host, install it there and use RemoteProgram", goos, goarch, runtime.GOOS, runtime.GOARCH)
		}
	default:
		return "", false, fmt.Errorf("unexpected answer %q from the host (does its shell print to stdout at login?)", strings.TrimSpace(line))
	}
	path, err := executable.Path()
	if err != nil {
		return "", false, err
	}
	f, err := os.Open(path)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	if _, err := io.CopyN(in, f, d.Size); err != nil {
		return "", false, fmt.Errorf("upload: %w", err)
	}
	line, err = out.ReadString('\n')
	answer, rest, _ = strings.Cut(strings.TrimSuffix(line, "\n"), " ")
	if answer != "stored" {
		return "", false, fmt.Errorf("the host did not store the upload (%q, %v)", strings.TrimSpace(line), err)
	}
	path, err = shippedPath(line, rest, d)
	return path, true, err
}

// shippedPath checks the path in the host's answer line: absolute, and
// named by the hash.
func shippedPath(line, path string, d executable.Digest) (string, error) {
	if !strings.HasPrefix(path, "/") || !strings.HasSuffix(path, "/"+d.SHA256) {
		return "", fmt.Errorf("unexpected answer %q from the host", strings.TrimSpace(line))
	}
	return path, nil
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
