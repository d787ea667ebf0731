#!/usr/bin/env bash
# cpubench.sh OLD NEW [COUNT]: compares two test binaries of pkg/procpool
# (go test -c -o OLD ./pkg/procpool at one commit, NEW at another) by the CPU
# time each benchmark op costs, the parent's and its workers' together
# (perf stat -e task-clock), runs interleaved, COUNT (default 6) each, and
# prints benchstat's comparison. CPU time is far steadier than wall time on
# a shared machine. Needs perf (linux-perf) and benchstat
# (go install golang.org/x/perf/cmd/benchstat@latest).
set -euo pipefail
old=$1 new=$2 n=${3:-6}
out=$(mktemp -d)
run() { # binary, benchmark regexp, iterations, label
  local ns
  ns=$(perf stat -x, -e task-clock "$1" -test.run '^$' -test.bench "$2" -test.benchtime "${3}x" -test.count 1 2>&1 >/dev/null |
    awk -F, '/task-clock/{printf "%.0f", $1*1e6}')
  echo "Benchmark$4 $3 $((ns / $3)) cpu-ns/op"
}
for _ in $(seq "$n"); do
  for side in old new; do
    bin=$old; [ "$side" = new ] && bin=$new
    {
      run "$bin" 'SubmitGet$' 20000 SubmitGet
      run "$bin" 'Map$/chunksize=default' 20 MapDefault
      run "$bin" 'Map$/chunksize=1' 10 MapChunk1
      run "$bin" 'Payload/size=1024' 5 Payload1MiB
      run "$bin" 'Payload/size=64' 50 Payload64KiB
    } >>"$out/$side"
  done
done
benchstat "$out/old" "$out/new"
