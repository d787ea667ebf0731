//go:build unix

// Package sshtest runs a real OpenSSH server on 127.0.0.1 for tests, the way
// net/http/httptest runs an HTTP server: its host key, a user key, its
// config and its client config live in a temporary folder, and nothing of
// the system's configuration is read or changed.
//
// The server is Debian's openssh-server (/usr/sbin/sshd). Where it is not
// installed, Start skips the test, unless PROCPOOL_REQUIRE_SSHD is set, as it
// is in CI, where a missing server must fail.
//
// It runs on Unix; the helpers that look for processes read Linux's /proc.
package sshtest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/procpool/procpool/internal/procfs"
)

// Dest is the Host alias of the server in the client config.
const Dest = "procpool-test"

// Server is a running sshd.
type Server struct {
	Dir  string // holds the keys and both configs
	Port int

	tb  testing.TB
	cmd *exec.Cmd
	log *tail
}

// SSHD is the path of the server program.
var SSHD = "/usr/sbin/sshd"

// Start starts a server that lets the current user log in with a key of its
// own, and stops it when the test ends, after checking that it has no
// sessions left.
func Start(tb testing.TB) *Server {
	tb.Helper()
	if _, err := os.Stat(SSHD); err != nil {
		if os.Getenv("PROCPOOL_REQUIRE_SSHD") != "" {
			tb.Fatalf("sshtest: %s is required (PROCPOOL_REQUIRE_SSHD is set): %v; install openssh-server", SSHD, err)
		}
		tb.Skipf("sshtest: %s not installed (apt-get install openssh-server)", SSHD)
	}
	if _, err := exec.LookPath("ssh"); err != nil {
		tb.Fatalf("sshtest: no ssh client: %v; install openssh-client", err)
	}
	s := &Server{Dir: tb.TempDir(), tb: tb}
	u, err := user.Current()
	if err != nil {
		tb.Fatal(err)
	}
	for _, key := range []string{"host_key", "user_key"} {
		out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sshtest", "-f", s.path(key)).CombinedOutput()
		if err != nil {
			tb.Fatalf("sshtest: ssh-keygen: %v: %s", err, out)
		}
	}
	s.copyFile("user_key.pub", "authorized_keys")
	if os.Geteuid() == 0 {
		// sshd running as root insists on its privilege separation
		// folder, which the package's service unit would create.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			tb.Fatalf("sshtest: %v", err)
		}
	}
	for attempt := 0; ; attempt++ {
		s.Port = freePort(tb)
		err := s.start()
		if err == nil {
			break
		}
		if attempt == 3 {
			tb.Fatalf("sshtest: %v", err)
		}
	}
	hostKey, err := os.ReadFile(s.path("host_key.pub"))
	if err != nil {
		tb.Fatal(err)
	}
	s.write("known_hosts", fmt.Sprintf("[127.0.0.1]:%d %s", s.Port, hostKey))
	s.write("ssh_config", fmt.Sprintf(`Host %s
  HostName 127.0.0.1
  Port %d
  User %s
  IdentityFile %s
  IdentitiesOnly yes
  UserKnownHostsFile %s
  StrictHostKeyChecking yes
  LogLevel ERROR
`, Dest, s.Port, u.Username, s.path("user_key"), s.path("known_hosts")))
	tb.Cleanup(s.Stop)
	return s
}

// ClientArgs are the ssh client arguments that reach the server as Dest.
func (s *Server) ClientArgs() []string { return []string{"-F", s.path("ssh_config")} }

// Stop stops the server. It waits up to five seconds for its sessions to
// end first, and fails the test if some did not.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Sessions()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if left := s.Sessions(); len(left) > 0 {
		s.tb.Errorf("sshtest: sessions still open when the test ended: %v", left)
	}
	s.Kill()
}

// Kill stops the server at once, sessions and all: a host that goes down.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	for _, pid := range s.Sessions() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// Restart starts the server again on the same port after Kill.
func (s *Server) Restart() {
	s.tb.Helper()
	if err := s.start(); err != nil {
		s.tb.Fatalf("sshtest: restart: %v", err)
	}
}

// Log returns the end of the server's log.
func (s *Server) Log() string { return s.log.String() }

// Sessions returns the pids of the server's per-connection processes.
func (s *Server) Sessions() []int {
	if s.cmd == nil {
		return nil
	}
	return procfs.Descendants(s.cmd.Process.Pid)
}

func (s *Server) start() error {
	s.write("sshd_config", fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
AuthorizedKeysFile %s
PidFile none
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
MaxStartups 200
MaxSessions 200
# Workers built with -race would linger a second at exit.
SetEnv GORACE=atexit_sleep_ms=0
LogLevel VERBOSE
`, s.Port, s.path("host_key"), s.path("authorized_keys")))
	s.log = &tail{}
	cmd := exec.Command(SSHD, "-D", "-e", "-f", s.path("sshd_config"))
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	dieWithParent(cmd.SysProcAttr)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			s.log.add(sc.Text())
			if strings.Contains(sc.Text(), "Server listening") {
				once.Do(func() { close(listening) })
			}
		}
	}()
	select {
	case <-listening:
		s.cmd = cmd
		return nil
	case <-time.After(10 * time.Second):
	}
	cmd.Process.Kill()
	cmd.Wait()
	return fmt.Errorf("sshd did not start listening on port %d: %s", s.Port, s.log)
}

func (s *Server) path(name string) string { return filepath.Join(s.Dir, name) }

func (s *Server) write(name, content string) {
	if err := os.WriteFile(s.path(name), []byte(content), 0o600); err != nil {
		s.tb.Fatal(err)
	}
}

func (s *Server) copyFile(from, to string) {
	b, err := os.ReadFile(s.path(from))
	if err != nil {
		s.tb.Fatal(err)
	}
	s.write(to, string(b))
}

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort(tb testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// tail keeps the last lines of a log.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > 200 {
		t.lines = t.lines[len(t.lines)-200:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}
