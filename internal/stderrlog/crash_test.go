package stderrlog

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// crashReport returns the stderr of a real program's death, kept in
// testdata/crashes (made by its generate.sh).
func crashReport(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "crashes", name+".txt"))
	require.NoError(t, err)
	return string(b)
}

// realCrashes are the reports in testdata/crashes and their headlines.
var realCrashes = []struct {
	file string
	want string
}{
	{"panic", "panic: boom"},
	{"panic-error", "panic: open /etc/conf: file does not exist"},
	// GOTRACEBACK=crash: a SIGABRT after the stacks, which is not the news.
	{"panic-gotraceback-crash", "panic: boom"},
	{"nil-deref", "panic: runtime error: invalid memory address or nil pointer dereference [signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=…]"},
	// The fault is named first, by a line that leads up to the fatal error.
	{"fault-address", "fatal error: fault [signal SIGSEGV: segmentation violation code=0x1 addr=0xdeadbeef pc=…]"},
	{"stack-overflow", "fatal error: stack overflow"},
	{"concurrent-map-writes", "fatal error: concurrent map writes"},
	{"address-space", "fatal error: failed to reserve page summary memory"},
	{"threads", "fatal error: newosproc"},
	// Then an abort, with a goroutine dump and registers.
	{"threads-cgo", "runtime/cgo: pthread_create failed: Resource temporarily unavailable"},
	// A signal in C code: the report ends in a register dump, whose
	// last line, "gs     0x0", was the headline once.
	{"cgo-segv", "SIGSEGV: segmentation violation"},
	{"cgo-abort", "SIGABRT: abort"},
	{"cgo-assert", "SIGABRT: abort"},
	{"cgo-trap", "SIGILL: illegal instruction"},
	{"cgo-bus", "SIGBUS: bus error"},
	{"sigquit", "SIGQUIT: quit"},
	// Not a crash, but as final: flag.Parse met the worker's role argument.
	{"flag", "flag provided but not defined: -procpool-worker"},
	// No crash report: the last line.
	{"log-fatal", "listen tcp :8080: bind: address already in use"},
}

// TestHeadlineOfRealCrashes runs Headline over the stderr of real programs
// dying in each way, whole and as the Forwarder keeps it after far more
// output than it holds.
func TestHeadlineOfRealCrashes(t *testing.T) {
	noise := strings.Repeat(strings.Repeat("n", 99)+"\n", 400) // 40 KB, more than the Forwarder keeps
	for _, tt := range realCrashes {
		t.Run(tt.file, func(t *testing.T) {
			report := crashReport(t, tt.file)
			assert.Equal(t, tt.want, anyPC(Headline(report)))

			f, _ := forward(t, noise+report)
			assert.Equal(t, tt.want, anyPC(Headline(f.Tail())), "the Forwarder's tail")
		})
	}
}

// anyPC hides the program counter in a headline's signal line, which
// differs with each build of the crasher.
func anyPC(headline string) string {
	return regexp.MustCompile(`pc=0x[0-9a-f]+\]`).ReplaceAllString(headline, "pc=…]")
}

func TestHeadline(t *testing.T) {
	cgoSegv := crashReport(t, "cgo-segv")
	_, registers, ok := strings.Cut(cgoSegv, "\n\nrax ")
	require.True(t, ok)
	registers = "rax " + registers

	tests := []struct {
		name   string
		stderr string
		want   string
	}{
		{"empty", "", ""},
		{"blank lines", "\n\n", ""},
		{"last line", "hello\nbye\n\n", "bye"},
		{"no final newline", "no newline at the end", "no newline at the end"},
		{"crlf", "panic: boom\r\n\r\ngoroutine 1 [running]:\r\n", "panic: boom"},
		{"after log lines", "log line\nfatal error: concurrent map writes\n\ngoroutine 7 [running]:\nmain.f()\n\t/x.go:1 +0x1\n", "fatal error: concurrent map writes"},
		{"the first of two", "panic: boom\n\ngoroutine 1 [running]:\npanic: not this one\n", "panic: boom"},
		{"signal line joined", "panic: x\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x1]\n", "panic: x [signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x1]"},
		{"signal line not next", "panic: x\n\n[signal SIGSEGV]\n", "panic: x"},
		{"lead line alone", "runtime: program exceeds 10000-thread limit\n", "runtime: program exceeds 10000-thread limit"},
		{"lead line with signal", "unexpected fault address 0x1\n[signal SIGBUS: bus error]\n", "unexpected fault address 0x1 [signal SIGBUS: bus error]"},
		{"headline after lead lines", "runtime: out of memory: cannot allocate 4096-byte block (3 in use)\nfatal error: out of memory\n", "fatal error: out of memory"},
		{"unknown signal name", "SIGRTMIN3: real-time signal\nPC=0x0\n", "SIGRTMIN3: real-time signal"},
		// A crash report whose first lines were lost: not its register dump.
		{"only a register dump", "signal arrived during cgo execution\n\n" + registers, "signal arrived during cgo execution"},
		{"a goroutine header last", "stuck\ngoroutine 1 [running]:\n\n", "stuck"},
		{"nothing but noise", "\ngoroutine 1 [running]:\n" + registers, "gs     0x0"},
		{"not a signal", "SIG: x\nSIGsegv: x\nSIGSEGV:x\nlast", "last"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Headline(tt.stderr))
		})
	}
}

func TestIsCrashStart(t *testing.T) {
	for line, want := range map[string]bool{
		"panic: boom":                      true,
		"fatal error: stack overflow":      true,
		"runtime: goroutine stack exceeds": true,
		"runtime/cgo: pthread_create failed: Resource temporarily unavailable": true,
		"SIGSEGV: segmentation violation":                                      true,
		"SIGABRT: abort":                                                       true,
		"SIGQUIT: quit":                                                        true,
		"unexpected fault address 0xdeadbeef":                                  true,
		"unexpected signal during runtime execution":                           true,
		"flag provided but not defined: -procpool-worker":                      true,

		"":                                  false,
		"hello":                             false,
		"\tpanic: boom":                     false, // a re-panic, inside a report
		"[signal SIGSEGV: segmentation]":    false,
		"goroutine 1 [running]:":            false,
		"rax    0x0":                        false,
		"SIGSEGV":                           false,
		"the task panicked: boom":           false,
		"runtime error: index out of range": false,
	} {
		assert.Equal(t, want, IsCrashStart(line), "%q", line)
	}
}

// TestEveryRealReportIsRecognised checks that the Forwarder keeps each real
// crash report from its first line: every report but the one of a plain
// exit starts with a line IsCrashStart recognises.
func TestEveryRealReportIsRecognised(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "crashes", "*.txt"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txt")
		first, _, _ := strings.Cut(crashReport(t, name), "\n")
		switch name {
		case "log-fatal":
			assert.False(t, IsCrashStart(first), "%s: %q", name, first)
		case "cgo-assert":
			// assert(3) speaks first, in a line of its own making.
			assert.False(t, IsCrashStart(first), "%s: %q", name, first)
		default:
			assert.True(t, IsCrashStart(first), "%s: %q", name, first)
		}
	}
}
