// Package procfs reads facts about processes from the operating system: the
// resident memory of a process, from /proc on Linux, from proc_info on macOS
// and from the kern.proc sysctl on FreeBSD. Elsewhere it reports that it
// cannot.
package procfs
