#!/usr/bin/env python3
"""The Python peers of procpool's benchmark: multiprocessing.Pool and
concurrent.futures.ProcessPoolExecutor, fork start method, on the same
functions and the same sizes as the Go side.

cmd/bench runs this script with one argument, a JSON object of the sizes
(see pythonConfig in cmd/bench/python.go), and reads one JSON
object from its stdout: {"python": version, "results": [...]}, each result
holding the raw figure of every run. Progress goes to stderr.

It can be run by hand too:
    python3 cmd/bench/python/pool_bench.py '{"workers":[2],"runs":1}'
"""

import concurrent.futures as cf
import ctypes
import json
import multiprocessing as mp
import os
import resource
import select
import signal
import subprocess
import sys
import time

DEFAULTS = {
    "workers": [1, 2],
    "runs": 3,
    "calls": 1000,
    "chunks": [
        {"label": "1", "chunksize": 1, "pool_items": 20000, "ppe_items": 5000},
        {"label": "default", "chunksize": 0, "pool_items": 1000000, "ppe_items": 0},
    ],
    "payloads": [{"label": "1MiB", "block_size": 1 << 20, "blocks": 200}],
    # The payload-memory figure (see cmd/bench/memory.go): no blocks skips it.
    "memory": {"blocks": 512, "block_size": 1 << 20, "workers": 2},
    # The scaling section (see cmd/bench/scaling.go): no workers skips it.
    "scaling": {"workers": [], "calls": 500, "map_items": 10000, "sleeps_per_worker": 20, "sleep_ms": 10},
}


def noop(x):
    """The trivial task: the same as the Go side's bench.noop."""
    return x


def echo(b):
    """The payload task: returns the bytes it was given."""
    return b


def length(b):
    """The payload-memory task, as bench.length: the length of its bytes."""
    return len(b)


def whoami(pause_us):
    """Returns the worker's pid after a short pause, as bench.whoami does."""
    time.sleep(pause_us / 1e6)
    return os.getpid()


def sleep_pid(ms):
    """Sleeps ms milliseconds and returns the worker's pid, as bench.sleep does."""
    time.sleep(ms / 1e3)
    return os.getpid()


def die_with_parent():
    """Asks the kernel to SIGKILL this process when its parent ends
    (PR_SET_PDEATHSIG), so that nothing outlives a killed benchmark: a
    recovery child runs in a session of its own, out of reach of the kill
    of this script's process group, and its Pool workers are its children.
    """
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent ended before prctl
        os._exit(1)


def rss_mib(pid):
    """Resident memory of a process, from /proc, in MiB. With fork, pages
    still shared with the parent count in full, as ps shows them."""
    with open(f"/proc/{pid}/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def log(*args):
    print("python:", *args, file=sys.stderr, flush=True)


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Results:
    def __init__(self):
        self.items = []

    def add(self, workload, impl, workers, runs, n=0, chunk="", chunksize=0, note="", skipped="", block_size=0):
        self.items.append({
            "workload": workload, "impl": impl, "workers": workers, "runs": runs,
            "n": n, "chunk": chunk, "chunksize": chunksize, "note": note, "skipped": skipped,
            "block_size": block_size,
        })


def default_pool_chunksize(n, workers):
    """multiprocessing.Pool.map's default: ceil(n / (4 * workers))."""
    chunksize, extra = divmod(n, workers * 4)
    return chunksize + 1 if extra else chunksize


def bench_startup(ctx, cfg, k, res):
    """Pool / executor creation to the first result, a fresh one each run,
    and an idle Pool worker's resident memory."""
    pool_t, ppe_t, rss = [], [], []
    for _ in range(cfg["runs"]):
        start = time.perf_counter()
        p = ctx.Pool(k)
        p.apply(noop, (1,))
        pool_t.append((time.perf_counter() - start) * 1e3)
        rss.append(sorted(rss_mib(w.pid) for w in p._pool)[len(p._pool) // 2])
        p.close()
        p.join()
        start = time.perf_counter()
        ex = cf.ProcessPoolExecutor(k, mp_context=ctx)
        ex.submit(noop, 1).result()
        ppe_t.append((time.perf_counter() - start) * 1e3)
        ex.shutdown()
    res.add("startup", "pool", k, pool_t, note="Pool() to first apply result")
    res.add("startup", "ppe", k, ppe_t, note="executor to first result")
    res.add("rss", "pool", k, rss, note="forked: shared pages count")


def bench_recovery(cfg, k, res, workload="recovery"):
    """SIGKILL of an idle Pool worker to a result from its replacement.

    Each run is a fresh Pool in a child process of its own session: an idle
    Pool worker waits for tasks holding the task queue's lock, and a worker
    killed while holding it leaves the lock taken for good, so the Pool
    hangs, and so does its terminate(). The child says when its Pool is up;
    a run that has no answer within RECOVERY_TIMEOUT (and 20 ms a worker)
    of the kill counts as hung, and the child's whole process group is
    killed.
    """
    runs, hung = [], 0
    for _ in range(cfg["runs"]):
        child = subprocess.Popen([sys.executable, __file__, "--recovery", str(k)],
                                 stdout=subprocess.PIPE, start_new_session=True)
        try:
            if read_line(child.stdout, SETUP_TIMEOUT) != "ready":
                raise RuntimeError(f"recovery child with {k} workers did not start")
            # A replacement takes longer to come round in a bigger Pool:
            # each round of calls is k long.
            line = read_line(child.stdout, RECOVERY_TIMEOUT + 0.02 * k)
            if line is None:
                hung += 1
            else:
                runs.append(float(line))
        finally:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.wait()
    why = "the victim held the task queue's lock"
    if hung == len(runs) + hung:
        res.add(workload, "pool", k, [], skipped=f"hung in every run ({why})")
    else:
        note = "SIGKILL to a result from the new pid"
        if hung:
            note += f"; hung in {hung} of {hung + len(runs)} runs ({why})"
        res.add(workload, "pool", k, runs, note=note)
    if workload == "recovery":
        res.add(workload, "ppe", k, [], skipped="a dead worker breaks the executor (BrokenProcessPool)")


RECOVERY_TIMEOUT = 1.0
SETUP_TIMEOUT = 120.0


def read_line(pipe, timeout):
    """Reads one line from a child's pipe, or returns None after timeout
    seconds without one. It reads the descriptor byte by byte, so that no
    buffer hides a line from select."""
    deadline = time.monotonic() + timeout
    fd, line = pipe.fileno(), b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        b = os.read(fd, 1)
        if not b:
            return None
        if b == b"\n":
            return line.decode().strip()
        line += b


def recovery_child(k):
    """One recovery run (see bench_recovery): prints "ready" once its Pool
    is up, then the time in ms from the kill to a replacement's result."""
    die_with_parent()
    ctx = mp.get_context("fork")
    p = ctx.Pool(k, initializer=die_with_parent)
    p.map(whoami, [0] * (10 * k))
    old = {w.pid for w in p._pool}
    print("ready", flush=True)
    start = time.perf_counter()
    os.kill(p._pool[0].pid, signal.SIGKILL)
    while True:
        fs = [p.apply_async(whoami, (50,)) for _ in range(k)]
        for f in fs:
            if f.get() not in old:
                print((time.perf_counter() - start) * 1e3, flush=True)
                os._exit(0)  # the parent kills the pool's processes


def bench_pool(ctx, cfg, k, res):
    with ctx.Pool(k) as p:
        p.map(noop, range(10000))  # warm up
        calls = cfg["calls"]
        runs = []
        for run in range(cfg["runs"] + 1):
            t = timed(lambda: [p.apply(noop, (i,)) for i in range(calls)])
            if run:
                runs.append(t / calls * 1e6)
        res.add("roundtrip", "pool", k, runs, n=calls)

        for c in cfg["chunks"]:
            n = c["pool_items"]
            cs = c["chunksize"] or None
            runs = []
            for _ in range(cfg["runs"]):
                t = timed(lambda: p.map(noop, range(n), chunksize=cs))
                runs.append(n / t)
            size = c["chunksize"] or default_pool_chunksize(n, k)
            res.add("map", "pool", k, runs, n=n, chunk=c["label"], chunksize=size)

        bench_payloads(lambda blocks: p.map(echo, blocks, chunksize=1), cfg, k, res, "pool")


def bench_ppe(ctx, cfg, k, res):
    with cf.ProcessPoolExecutor(k, mp_context=ctx) as ex:
        list(ex.map(noop, range(1000), chunksize=100))  # warm up
        calls = cfg["calls"]
        runs = []
        for run in range(cfg["runs"] + 1):
            t = timed(lambda: [ex.submit(noop, i).result() for i in range(calls)])
            if run:
                runs.append(t / calls * 1e6)
        res.add("roundtrip", "ppe", k, runs, n=calls)

        for c in cfg["chunks"]:
            n = c["ppe_items"]
            if not n:
                res.add("map", "ppe", k, [], chunk=c["label"], chunksize=1,
                        skipped="its default chunksize is 1: see chunksize 1")
                continue
            cs = c["chunksize"] or 1
            runs = []
            for _ in range(cfg["runs"]):
                t = timed(lambda: list(ex.map(noop, range(n), chunksize=cs)))
                runs.append(n / t)
            res.add("map", "ppe", k, runs, n=n, chunk=c["label"], chunksize=cs)

        bench_payloads(lambda blocks: list(ex.map(echo, blocks, chunksize=1)), cfg, k, res, "ppe")


def bench_payloads(map_blocks, cfg, k, res, impl):
    """The payload workload at each block size: map_blocks echoes a list of
    blocks at chunksize 1, one block a message, as procpool's 1 MiB chunk
    limit makes them from 1 MiB up. The blocks are distinct: pickle would
    send one block repeated in a chunk only once. The first run of each
    size warms up, and is not counted."""
    for pc in cfg["payloads"]:
        size = pc["block_size"]
        blocks = [bytes([i % 251]) * size for i in range(pc["blocks"])]
        runs = []
        for run in range(cfg["runs"] + 1):
            t = timed(lambda: map_blocks(blocks))
            if run:
                runs.append(len(blocks) * size / 1e6 / t)
        del blocks
        res.add("payload", impl, k, runs, n=pc["blocks"], chunk=pc["label"], chunksize=1,
                block_size=size, note="pickled both ways, chunksize 1")


def bench_memory(cfg, res):
    """The parent's peak resident memory growth during a map of distinct
    blocks to their lengths at chunksize 1, Pool.map and ProcessPoolExecutor.map,
    each run in a fresh python3 (see memory_child), whose peak nothing else
    has raised."""
    m = cfg["memory"]
    for impl in ("pool", "ppe"):
        runs, note = [], ""
        for _ in range(cfg["runs"]):
            out = subprocess.run(
                [sys.executable, __file__, "--memory", impl, json.dumps(m)],
                stdout=subprocess.PIPE, check=True, timeout=MEMORY_TIMEOUT).stdout
            r = json.loads(out)
            runs.append((r["after"] - r["before"]) / (1 << 20))
            note = "input {:.0f} MiB; peak RSS {:.0f} → {:.0f} MiB (last run)".format(
                r["input"] / (1 << 20), r["before"] / (1 << 20), r["after"] / (1 << 20))
        res.add("map_memory", impl, m["workers"], runs, n=m["blocks"], chunksize=1,
                block_size=m["block_size"], note=note)


MEMORY_TIMEOUT = 300.0


def peak_bytes():
    """This process's peak resident memory: VmHWM where /proc has it, as the
    Go side reads it, else ru_maxrss (KiB on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) << 10
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak << 10


def memory_child(impl, m):
    """One run of bench_memory: starts its pool while small and warms it up,
    allocates the input, resets its peak (Linux's clear_refs), maps, and
    prints the input's size and its peak before and after, in bytes."""
    die_with_parent()
    ctx = mp.get_context("fork")
    workers, size = m["workers"], m["block_size"]
    # Its workers die with it too, should it fail.
    if impl == "pool":
        pool = ctx.Pool(workers, initializer=die_with_parent)
        run = lambda blocks: pool.map(length, blocks, chunksize=1)
        close = lambda: (pool.close(), pool.join())
    else:
        ex = cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=die_with_parent)
        run = lambda blocks: list(ex.map(length, blocks, chunksize=1))
        close = ex.shutdown
    run([bytes(size)] * workers)
    blocks = [bytes([i % 251]) * size for i in range(m["blocks"])]
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    before = peak_bytes()
    total = sum(run(blocks))
    after = peak_bytes()
    if total != len(blocks) * size:
        raise RuntimeError(f"memory: wrong result: {total} bytes of {len(blocks) * size}")
    print(json.dumps({"input": len(blocks) * size, "before": before, "after": after}), flush=True)
    close()


def bench_scaling(ctx, cfg, res):
    """The scaling section: the same work at many more workers than CPUs.

    Per worker count, one Pool serves every run's round trips, Maps at
    chunksize 1 and sleeps, and is terminated, timed, after its runs; each
    run starts and closes a fresh Pool for the start-up and close figures,
    and a recovery child for the replacement of a killed worker.
    """
    sc = cfg["scaling"]
    for k in sc["workers"]:
        log(f"scaling, {k} workers: Pool")
        p = ctx.Pool(k)
        try:
            p.map(noop, range(2000), chunksize=1)  # warm up
            p.map(sleep_pid, [sc["sleep_ms"]] * k, chunksize=1)
            calls = sc["calls"]
            runs = []
            for run in range(cfg["runs"] + 1):
                t = timed(lambda: [p.apply(noop, (i,)) for i in range(calls)])
                if run:
                    runs.append(t / calls * 1e6)
            res.add("scale_roundtrip", "pool", k, runs, n=calls)

            n = sc["map_items"]
            runs = []
            for _ in range(cfg["runs"]):
                t = timed(lambda: p.map(noop, range(n), chunksize=1))
                runs.append(n / t)
            res.add("scale_map", "pool", k, runs, n=n, chunk="1", chunksize=1)

            n = sc["sleeps_per_worker"] * k
            runs, busiest = [], 0
            for _ in range(cfg["runs"]):
                start = time.perf_counter()
                pids = p.map(sleep_pid, [sc["sleep_ms"]] * n, chunksize=1)
                runs.append((time.perf_counter() - start) * 1e3)
                busiest = max(busiest, max(pids.count(pid) for pid in set(pids)))
            res.add("scale_sleep", "pool", k, runs, n=n, chunk="1", chunksize=1,
                    note=f"busiest worker: {busiest} sleeps in a run (an even spread: {sc['sleeps_per_worker']})")

            t = timed(lambda: (p.terminate(), p.join()))
            res.add("scale_terminate", "pool", k, [t * 1e3],
                    note="once per run set: the shared Pool after its runs")
        finally:
            p.terminate()
            p.join()

        log(f"scaling, {k} workers: start-up and close")
        up, closed = [], []
        for _ in range(cfg["runs"]):
            start = time.perf_counter()
            q = ctx.Pool(k)
            try:
                q.apply(noop, (1,))
                up.append((time.perf_counter() - start) * 1e3)
                closed.append(timed(lambda: (q.close(), q.join())) * 1e3)
            finally:
                q.terminate()
                q.join()
        res.add("scale_startup", "pool", k, up, note="Pool() to first apply result")
        res.add("scale_close", "pool", k, closed, note="a fresh Pool, idle after one call")

        log(f"scaling, {k} workers: recovery")
        bench_recovery(cfg, k, res, workload="scale_respawn")


def main():
    if sys.argv[1:2] == ["--recovery"]:
        recovery_child(int(sys.argv[2]))
        return
    if sys.argv[1:2] == ["--memory"]:
        memory_child(sys.argv[2], json.loads(sys.argv[3]))
        return
    cfg = dict(DEFAULTS)
    if len(sys.argv) > 1:
        cfg.update(json.loads(sys.argv[1]))
    ctx = mp.get_context("fork")
    res = Results()
    # Start-up first, while this process is small: forked workers share its
    # pages, and their resident memory counts them.
    for k in cfg["workers"]:
        log(f"{k} worker(s): start-up")
        bench_startup(ctx, cfg, k, res)
    for k in cfg["workers"]:
        log(f"{k} worker(s): multiprocessing.Pool")
        bench_pool(ctx, cfg, k, res)
        log(f"{k} worker(s): ProcessPoolExecutor")
        bench_ppe(ctx, cfg, k, res)
        log(f"{k} worker(s): Pool recovery")
        bench_recovery(cfg, k, res)
    if cfg["memory"]["blocks"]:
        log(f"payload memory, {cfg['memory']['workers']} workers: Pool.map, ProcessPoolExecutor.map")
        bench_memory(cfg, res)
    if cfg["scaling"]["workers"]:
        bench_scaling(ctx, cfg, res)
    json.dump({"python": sys.version.split()[0], "results": res.items}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
