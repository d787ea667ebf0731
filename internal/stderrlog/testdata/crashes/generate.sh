#!/bin/sh
# Regenerates the crash reports in this directory: each file is the stderr
# of ../crasher dying in the way its name says (built with -trimpath, so the
# paths in the traces name packages, not this machine's directories). The
# thread-limit reports need prlimit, and setpriv when run as root (root
# ignores the limit). Addresses and PCs differ from run to run; the tests
# look only at the lines that name the failure. The reports here came from
# go1.26.8 on linux/amd64.
set -u
cd "$(dirname "$0")"
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
chmod 755 "$bin"
go build -trimpath -o "$bin/crasher" ../crasher || exit 1
CGO_ENABLED=0 go build -trimpath -o "$bin/crasher-nocgo" ../crasher || exit 1

for how in panic panic-error nil-deref fault-address stack-overflow concurrent-map-writes sigquit \
	cgo-segv cgo-abort cgo-assert cgo-trap cgo-bus flag log-fatal; do
	"$bin/crasher" "$how" >/dev/null 2>"$how.txt"
done
GOTRACEBACK=crash "$bin/crasher" panic >/dev/null 2>panic-gotraceback-crash.txt
# A 20 MB address space, as TestWorkerThatCannotStart sets.
(ulimit -v 20000; exec "$bin/crasher-nocgo" panic) >/dev/null 2>address-space.txt

nproc() {
	if [ "$(id -u)" = 0 ]; then
		setpriv --reuid=65534 --regid=65534 --clear-groups prlimit --nproc=1 -- "$@"
	else
		prlimit --nproc=1 -- "$@"
	fi
}
nproc "$bin/crasher" threads >/dev/null 2>threads-cgo.txt
nproc "$bin/crasher-nocgo" threads >/dev/null 2>threads.txt
exit 0
