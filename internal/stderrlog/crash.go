package stderrlog

import "strings"

// A Go program that dies prints a crash report to stderr. Its first line is
// one of these, which name the failure (headlines):
//
//	panic: boom                               a panic nothing recovered
//	fatal error: concurrent map writes        the runtime gave up
//	runtime/cgo: pthread_create failed: ...   cgo's runtime gave up
//	SIGSEGV: segmentation violation           a signal in C code (cgo), or a SIGQUIT
//
// The runtime may say more before a headline, in lines that lead up to it:
//
//	runtime: goroutine stack exceeds 1000000000-byte limit
//	unexpected fault address 0xdeadbeef
//
// A "[signal SIGSEGV: ...]" line may follow a panic or fatal error; then
// come the goroutines' stacks, and after a signal the registers.
//
// One headline is not the runtime's, but as final: the flag package's, when
// a program parses its flags before procpool.Main and meets the worker's
// role argument; it prints its usage and exits.
//
//	flag provided but not defined: -procpool-worker

// headlinePrefixes start the lines that name the failure, besides the
// signal lines (isSignalLine).
var headlinePrefixes = []string{"panic: ", "fatal error: ", "runtime/cgo: ", "flag provided but not defined: "}

// leadPrefixes start the lines the runtime may print before a headline.
var leadPrefixes = []string{"runtime: ", "unexpected fault address", "unexpected signal"}

// IsCrashStart reports whether line can be the first line of a Go crash
// report.
func IsCrashStart(line string) bool {
	return isHeadline(line) || hasPrefix(line, leadPrefixes)
}

// Headline picks the line of a worker's stderr (a crash report, or the tail
// of what it printed) that says most about how it died: the first line that
// names the failure (a panic, fatal error, cgo failure, signal or flag
// error), with the "[signal ...]" line that may follow it; or else the
// first line the runtime prints before one; or else the last line that is
// neither blank nor part of a goroutine dump or a register dump; or else
// the last line.
func Headline(stderr string) string {
	lines := strings.Split(strings.TrimRight(stderr, "\r\n"), "\n")
	for i := range lines {
		lines[i] = strings.TrimSuffix(lines[i], "\r")
	}
	lead := -1
	for i, l := range lines {
		if isHeadline(l) {
			return withSignal(lines, i)
		}
		if lead < 0 && hasPrefix(l, leadPrefixes) {
			lead = i
		}
	}
	if lead >= 0 {
		return withSignal(lines, lead)
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if l := lines[i]; strings.TrimSpace(l) != "" && !isRegister(l) && !isGoroutineHeader(l) {
			return l
		}
	}
	return lines[len(lines)-1]
}

// withSignal returns lines[i], followed by the next line if that is the
// runtime's "[signal ...]" line.
func withSignal(lines []string, i int) string {
	if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "[signal ") {
		return lines[i] + " " + lines[i+1]
	}
	return lines[i]
}

func isHeadline(line string) bool {
	return hasPrefix(line, headlinePrefixes) || isSignalLine(line)
}

func hasPrefix(line string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	return false
}

// isSignalLine reports whether line is the runtime's report of a signal it
// did not expect: "SIGSEGV: segmentation violation", "SIGABRT: abort".
func isSignalLine(line string) bool {
	name, _, ok := strings.Cut(line, ": ")
	return ok && len(name) > len("SIG") && strings.HasPrefix(name, "SIG") && isUpperAlnum(name[len("SIG"):])
}

// isRegister reports whether line is one of a register dump's: "rax    0x0",
// "rflags 0x10246", "r0      0x0".
func isRegister(line string) bool {
	name, value, ok := strings.Cut(line, " ")
	value = strings.TrimLeft(value, " ")
	return ok && name != "" && name[0] >= 'a' && name[0] <= 'z' && isLowerAlnum(name) &&
		len(value) > 2 && strings.HasPrefix(value, "0x") && isHex(value[2:])
}

// isGoroutineHeader reports whether line starts a goroutine's stack in a
// dump: "goroutine 1 [running]:", "goroutine 1 gp=0xc000002380 m=0 mp=0x5b1580 [syscall]:".
func isGoroutineHeader(line string) bool {
	rest, ok := strings.CutPrefix(line, "goroutine ")
	return ok && rest != "" && rest[0] >= '0' && rest[0] <= '9' && strings.HasSuffix(rest, "]:")
}

func isUpperAlnum(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') }) < 0
}

func isLowerAlnum(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') }) < 0
}

func isHex(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') }) < 0
}
