"""kvsize's predicted load against LMCache 0.5.6's own load path, run for real on this machine.

    python benchmarks/lmcache_load.py [--dir DIR] [--tokens 32000] [--chunks 256,2048] [--writers 1,4]
                                      [--repeats 3] [--connectors fs,redis] [--redis-tokens 8000]

1. A scratch virtual environment (``--venv``, default ``~/.cache/kvsize-bench/lmcache-0.5.6``; never a dependency
   of kvsize) gets torch (CPU) and ``lmcache==0.5.6 --no-deps`` plus the pure-Python packages its import chain
   needs.
2. For each connector, chunk size and writer count K (TP K, one rank per process, all started together), every
   rank builds LMCache's own ``LMCacheEngine`` (``LMCacheEngineBuilder``, ``MockGPUConnector``: no GPU copy; its
   objects filled with incompressible bytes) and stores the prompt: on the fs connector
   (``remote_url fs://localhost:1/DIR``: LMCache 0.5.6 needs a host and a port), after which the driver fsyncs
   every file and drops it from the page cache (``posix_fadvise`` DONTNEED), or on the redis connector, against a
   ``redis-server`` of its own on loopback. Then every rank runs ``engine.retrieve`` at once (token hashing, one
   blocking ``exists()`` per key, ``RemoteBackend.batched_get_blocking``: one get per key, through aiofiles on
   asyncio's default thread pool for fs, through the connector's 4-worker executor for redis). Measured: the first
   rank's start to the last rank's end. Each rank also reports the bytes it read from the disk (all of them, or
   the run stops: the page cache was not dropped), its CPU seconds and its lookup seconds.
3. Right after each load, a ``kvsize probe`` of the same store, its sets shaped like that load (the same objects,
   read at the load's own requests in flight: K x min(32, CPUs + 4) on fs, K x 4 on redis), and
   ``kvsize MODEL --backend PROFILE`` (``--host-cpus`` this machine's on fs) predict it. The disk's speed here
   drifts over minutes, so each load is paired with its own prediction.

Prints, per connector, chunk size and writer count, the measured seconds (median and spread), the median
prediction, predicted / measured, each pair's ratio, and LMCache's CPU seconds (every rank) and lookup seconds (the slowest
rank's ``exists()`` calls), medians. Target: every median within +/-15%.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kvsize

MODEL = "Qwen/Qwen3-4B-Instruct-2507"
LAYERS, KV_HEADS, HEAD = 36, 8, 128
TORCH = "torch==2.13.0"
IMPORT_CHAIN = [
    *("numpy", "prometheus_client", "pyyaml", "aiofiles", "aiofile", "msgspec", "psutil", "sortedcontainers"),
    *("cachetools", "py-cpuinfo", "pyzmq", "redis", "safetensors", "aiohttp", "requests", "numba"),
    *("transformers", "cryptography"),
]

WORKER = textwrap.dedent(
    """
    import json, os, resource, sys, time
    import numpy
    import torch
    from lmcache.v1.cache_engine import LMCacheEngineBuilder
    from lmcache.v1.config import LMCacheEngineConfig
    from lmcache.v1.gpu_connector import MockGPUConnector
    from lmcache.v1.metadata import LMCacheMetadata

    connector, target, chunk, tokens, rank, world, go, out = sys.argv[1:9]
    chunk, tokens, rank, world = int(chunk), int(tokens), int(rank), int(world)
    # The CPU buffer one rank's prompt needs (its memory objects), with room: 4 ranks x 8 GB would not fit in RAM.
    per_rank = tokens * %(layers)d * 2 * max(1, %(heads)d // world) * %(head)d * 2
    config = LMCacheEngineConfig.from_defaults(
        chunk_size=chunk, local_cpu=False, max_local_cpu_size=max(1.0, 1.25 * per_rank / 2**30),
        remote_url=f"fs://localhost:1/{target}" if connector == "fs" else f"redis://localhost:{target}",
        remote_serde="naive", save_unfull_chunk=False,
    )
    shape = (%(layers)d, 2, chunk, max(1, %(heads)d // world), %(head)d)
    meta = LMCacheMetadata(model_name="%(model)s", world_size=world, local_world_size=world, worker_id=rank,
                           local_worker_id=rank, kv_dtype=torch.bfloat16, kv_shape=shape, role="worker")


    class RandomKV(MockGPUConnector):
        # LMCache's mock stores zeros, which a thin-provisioned or deduplicating disk reads back faster than KV:
        # fill each object with incompressible bytes instead, as a real GPU copy would.
        noise = numpy.frombuffer(os.urandom(shape[0] * shape[1] * chunk * shape[3] * shape[4] * 2), dtype=numpy.uint8)

        def from_gpu(self, memory_obj, start, end, **kwargs):
            target = numpy.frombuffer(memory_obj.byte_array, dtype=numpy.uint8)
            size = min(len(target), len(self.noise))
            target[:size] = self.noise[:size]

        def batched_from_gpu(self, memory_objs, starts, ends, **kwargs):
            for memory_obj, start, end in zip(memory_objs, starts, ends):
                self.from_gpu(memory_obj, start, end)

    from lmcache.v1.storage_backend.remote_backend import RemoteBackend

    lookups = []  # (seconds, keys) of each batched_contains: one blocking exists() per key, in order
    contains = RemoteBackend.batched_contains

    def timed_contains(self, keys, pin=False):
        began = time.perf_counter()
        try:
            return contains(self, keys, pin)
        finally:
            lookups.append(time.perf_counter() - began)

    RemoteBackend.batched_contains = timed_contains
    engine = LMCacheEngineBuilder.get_or_create(
        f"bench{rank}", config, meta, RandomKV(kv_shape=shape), lambda t, r: None, lambda o, r: o
    )
    engine.post_init()
    ids = torch.arange(tokens, dtype=torch.long) + 1000
    engine.store(ids)
    expected = tokens // chunk
    mine = f"@{world}@{rank}@"
    if connector == "fs":
        stored = lambda: sum(1 for name in os.listdir(target) if mine in name and name.endswith(".data"))
    else:
        import redis
        client = redis.Redis(port=int(target))
        # the metadata key is written last, and it is what a lookup checks
        stored = lambda: sum(1 for _ in client.scan_iter(match=f"*{mine}*metadata", count=10000))
    count, since = stored(), time.monotonic()
    while count < expected:
        time.sleep(0.02)
        now = stored()
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since > 20:  # the store gave up on some chunks
            with open(out, "w") as result:
                json.dump({"stored": count, "expected": expected}, result)
            os._exit(3)
    open(out + ".stored", "w").close()
    while not os.path.exists(go):
        time.sleep(0.002)
    def disk_bytes():
        # Bytes this process (all its threads) caused to be read from the block device.
        for line in open("/proc/self/io"):
            if line.startswith("read_bytes:"):
                return int(line.split()[1])
        return -1

    def cpu_seconds():
        usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this rank
        return usage.ru_utime + usage.ru_stime

    lookups.clear()
    before, cpu = disk_bytes(), cpu_seconds()
    start = time.time()
    mask = engine.retrieve(ids)
    end = time.time()
    got = int(mask.sum()) if mask is not None else 0
    run = {"start": start, "end": end, "tokens": got, "disk_bytes": disk_bytes() - before, "cpu_s": cpu_seconds() - cpu,
           "lookup_s": sum(lookups)}
    with open(out, "w") as result:
        json.dump(run, result)
    # No LMCacheEngineBuilder.destroy: with the redis connector it hangs (RedisConnector.close awaits its
    # AsyncPQExecutor's shutdown on the event loop that shutdown needs), and the process ends here anyway.
    os._exit(0)
    """
) % {"layers": LAYERS, "heads": KV_HEADS, "head": HEAD, "model": MODEL}


def scratch_venv(path: Path) -> Path:
    """The scratch environment's python, built once (a stamp file marks it complete)."""
    python = path / "bin" / "python"
    stamp = path / ".kvsize-bench-ready"
    if stamp.exists():
        return python
    print(f"building {path} (torch, lmcache 0.5.6 --no-deps, its import chain) ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, TORCH], check=True)
    subprocess.run([*pip, "--no-deps", "lmcache==0.5.6"], check=True)
    subprocess.run([*pip, *IMPORT_CHAIN], check=True)
    subprocess.run([str(python), "-c", "import lmcache.v1.cache_engine"], check=True, capture_output=True)
    stamp.write_text("ok\n")
    return python


class Unstored(Exception):
    """LMCache's store left some of a prompt's chunks out (its redis batched put times out on large objects)."""


class FsStore:
    """LMCache's fs connector on a directory: the page cache is dropped between store and load."""

    name = "fs"

    def __init__(self, root: Path, cpus: int) -> None:
        self.root, self.cpus = root, cpus
        self.arg = str(root)
        self.probe_target = str(root)
        self.per_writer = min(32, cpus + 4)  # asyncio's default thread pool (aiofiles)
        self.size_options: dict[str, object] = {"connector": "fs", "host_cpus": cpus}

    def clear(self) -> None:
        for entry in os.scandir(self.root):
            os.unlink(entry.path)

    def before_load(self) -> None:
        for entry in os.scandir(self.root):
            fd = os.open(entry.path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)

    def check(self, runs: list[dict[str, float]]) -> None:
        stored = sum(entry.stat().st_size for entry in os.scandir(self.root))
        from_disk = sum(run["disk_bytes"] for run in runs)
        if from_disk < 0.95 * stored:  # the load must come from the disk, not the page cache
            sys.exit(f"LMCache read {from_disk:,} B from the disk of {stored:,} B stored: the page cache was not dropped")

    def close(self) -> None:
        self.clear()


class RedisStore:
    """LMCache's redis connector on a redis-server of its own on loopback (no persistence)."""

    name = "redis"

    def __init__(self, work: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while (
            subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True).stdout.strip() != "PONG"
        ):
            if time.monotonic() > deadline or self.server.poll() is not None:
                sys.exit("redis-server did not start")
            time.sleep(0.1)
        self.arg = str(self.port)
        self.probe_target = f"redis://127.0.0.1:{self.port}"
        self.per_writer = 4  # the connector's AsyncPQExecutor workers
        self.size_options: dict[str, object] = {"connector": "redis"}

    def clear(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "flushall"], check=True, capture_output=True)

    def before_load(self) -> None:
        pass

    def check(self, runs: list[dict[str, float]]) -> None:
        pass

    def close(self) -> None:
        self.server.terminate()
        self.server.wait(timeout=30)


Store = FsStore | RedisStore


def one_load(python: Path, store: Store, chunk: int, tokens: int, writers: int, work: Path) -> tuple[float, float, float]:
    """One cold load by ``writers`` ranks started together: (first start to last end, CPU seconds of every rank,
    the slowest rank's lookup seconds)."""
    store.clear()
    go = work / "go"
    go.unlink(missing_ok=True)
    outs = [work / f"rank{rank}.json" for rank in range(writers)]
    for out in outs:
        out.unlink(missing_ok=True)
        Path(str(out) + ".stored").unlink(missing_ok=True)
    script = work / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONHASHSEED": "0", "LMCACHE_LOG_LEVEL": "ERROR"}
    procs = [
        subprocess.Popen(
            [str(python), str(script), store.name, store.arg, *map(str, (chunk, tokens, rank, writers, go, out))],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank, out in enumerate(outs)
    ]
    deadline = time.monotonic() + 300
    while not all(Path(str(out) + ".stored").exists() for out in outs):
        if any(p.poll() == 3 for p in procs):  # a rank's store left chunks out
            for p in procs:
                p.kill()
                p.wait()
            lost = [json.loads(out.read_text()) for out, p in zip(outs, procs, strict=True) if p.returncode == 3]
            raise Unstored(f"LMCache stored {lost[0]['stored']} of {lost[0]['expected']} chunks on a rank")
        if any(p.poll() not in (None, 0) for p in procs) or time.monotonic() > deadline:
            codes = [p.poll() for p in procs]
            for p in procs:
                p.kill()
            sys.exit(f"an LMCache rank failed (exits {codes}): " + "".join(p.communicate()[1][-1500:] for p in procs))
        time.sleep(0.05)
    store.before_load()
    go.touch()
    for p in procs:
        if p.wait(timeout=600):
            sys.exit(f"an LMCache rank failed (exit {p.returncode}): " + p.communicate()[1][-2000:])
    runs = [json.loads(out.read_text()) for out in outs]
    want = tokens - tokens % chunk
    if any(run["tokens"] != want for run in runs):
        sys.exit(f"LMCache retrieved {[r['tokens'] for r in runs]} tokens, expected {want} per rank")
    store.check(runs)
    store.clear()
    seconds = float(max(r["end"] for r in runs) - min(r["start"] for r in runs))
    return seconds, float(sum(r["cpu_s"] for r in runs)), float(max(r["lookup_s"] for r in runs))


def predict(store: Store, chunk: int, tokens: int, writers: int, work: Path, index: int) -> tuple[float, str]:
    """kvsize's load time from a probe of the same store run just after one load, its sets shaped like that load:
    the same object size and count, read at the load's own requests in flight (plus a 1/16-size object and level 1,
    which the fit of L and b needs). This disk's speed drifts over minutes, so each load gets its own probe."""
    per_rank = tokens // chunk
    profile = work / f"probe-{store.name}-{writers}-{chunk}-{index}.yaml"
    report = kvsize.probe(
        store.probe_target,
        model=MODEL,
        tp=writers,
        chunk_sizes=[chunk // 16, chunk],
        concurrency=[1, writers * store.per_writer],
        objects=writers * per_rank,
        max_bytes=writers * per_rank * LAYERS * 2 * max(1, KV_HEADS // writers) * HEAD * 2 * chunk,
        save_profile=profile,
        time_limit=900,
    )
    if not report.complete:
        sys.exit(f"the probe of {store.probe_target} did not finish: {report.notes}")
    result = kvsize.size(MODEL, tp=writers, prompt=tokens, chunk_size=chunk, backend=[str(profile)], **store.size_options)  # type: ignore[arg-type]
    row = result.rows[0]
    assert row.load_seconds is not None and row.terms is not None
    return row.load_seconds, f"{row.load_bound}, {row.terms['concurrency']} in flight per writer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=None, help="the directory to load from (default: a temp dir)")
    parser.add_argument("--tokens", type=int, default=32_000)
    parser.add_argument(
        "--redis-tokens",
        type=int,
        default=4_000,
        help="the prompt on redis (LMCache puts every chunk at once: at 8,000 and 32,000 tokens writes timed out here)",
    )
    parser.add_argument("--chunks", default="256,2048")
    parser.add_argument("--writers", default="1,4")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connectors", default="fs,redis", help="fs, redis (needs redis-server and redis-cli on PATH), or both")
    parser.add_argument("--venv", type=Path, default=Path.home() / ".cache" / "kvsize-bench" / "lmcache-0.5.6")
    args = parser.parse_args()
    connectors = args.connectors.split(",")
    if not set(connectors) <= {"fs", "redis"}:
        parser.error("--connectors: give fs, redis or fs,redis")
    if "redis" in connectors and not (shutil.which("redis-server") and shutil.which("redis-cli")):
        parser.error("--connectors redis needs redis-server and redis-cli on PATH (Debian: apt install redis-server)")
    python = scratch_venv(args.venv)
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        work = Path(scratch)
        print(f"LMCache 0.5.6, {MODEL}, {args.tokens:,}-token prompt ({args.redis_tokens:,} on redis), {cpus} CPUs, {work}")
        header = f"{'store':>5} {'chunk':>6} {'writers':>7} {'measured s (median, spread)':>28} {'predicted s':>12}"
        print(f"{header} {'ratio':>6}  bound")
        for name in connectors:
            if name == "fs":
                (work / "store").mkdir()
                store: Store = FsStore(work / "store", cpus)
            else:
                store = RedisStore(work)
            try:
                tokens = args.tokens if name == "fs" else args.redis_tokens
                for writers in (int(w) for w in args.writers.split(",")):
                    for chunk in (int(c) for c in args.chunks.split(",")):
                        times, predictions, cpu, lookups = [], [], [], []
                        try:
                            for index in range(args.repeats):  # each load, then the probe that predicts it
                                seconds, used, looked = one_load(python, store, chunk, tokens, writers, work)
                                times.append(seconds)
                                cpu.append(used)
                                lookups.append(looked)
                                predicted, bound = predict(store, chunk, tokens, writers, work, index)
                                predictions.append(predicted)
                        except Unstored as error:
                            store.clear()
                            print(f"{store.name:>5} {chunk:>6} {writers:>7}  not loadable: {error}", flush=True)
                            continue
                        median, predicted = statistics.median(times), statistics.median(predictions)
                        spread = f"{min(times):.2f}-{max(times):.2f}"
                        pairs = sorted(p / t for p, t in zip(predictions, times, strict=True))
                        print(
                            f"{store.name:>5} {chunk:>6} {writers:>7} {median:>15.3f} ({spread:>10}) {predicted:>12.3f} "
                            f"{predicted / median:>6.2f}  {bound}; pairs {' '.join(f'{r:.2f}' for r in pairs)}; "
                            f"LMCache CPU {statistics.median(cpu):.2f} s, lookups {statistics.median(lookups):.3f} s",
                            flush=True,
                        )
            finally:
                store.close()


if __name__ == "__main__":
    main()
