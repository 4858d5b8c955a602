"""kvsize's predicted load against LMCache 0.5.6's own load path, run for real on this machine.

    python benchmarks/lmcache_load.py [--dir DIR] [--tokens 32000] [--chunks 256,2048] [--writers 1,4]
                                      [--repeats 3] [--connectors fs,redis] [--redis-tokens 4000]

1. A scratch virtual environment (``--venv``, default ``~/.cache/kvsize-bench/lmcache-0.5.6``; never a dependency
   of kvsize) gets torch (CPU) and ``lmcache==0.5.6 --no-deps`` plus the pure-Python packages its import chain
   needs.
2. For each connector, chunk size and writer count K (TP K, one rank per process, all started together), every
   rank builds LMCache's own ``LMCacheEngine`` (``LMCacheEngineBuilder``, ``MockGPUConnector``: no GPU copy; its
   objects filled with incompressible bytes) and stores the prompt: on the fs connector
   (``remote_url fs://localhost:1/DIR``: LMCache 0.5.6 needs a host and a port), or on the redis connector,
   against a ``redis-server`` of its own on loopback. Each rank loads the prompt once while it is still in memory:
   LMCache's CPU buffer, pinned and so resident on a GPU host, is a plain ``torch.empty`` here, and this touches
   it. On fs the driver then fsyncs every file and drops it from the page cache (``posix_fadvise`` DONTNEED).
   Then every rank runs ``engine.retrieve`` at once (token hashing, one
   blocking ``exists()`` per key, ``RemoteBackend.batched_get_blocking``: one get per key, through aiofiles on
   asyncio's default thread pool for fs, through the connector's 4-worker executor for redis). Measured: the first
   rank's start to the last rank's end. Each rank also reports the bytes it read from the disk (all of them, or
   the run stops: the page cache was not dropped), its CPU seconds and its lookup seconds. Then every rank runs
   the same load again at once, warm (from the page cache on fs, checked, or redis-server's memory): LMCache's
   own time with the storage out of the way. On fs, plain readers then read LMCache's own files cold in LMCache's
   shape (``PLAIN_READER``: one process per rank, an asyncio loop with the same thread pool, every get at once,
   header then bytes into a buffer set up when the ranks start): the same reads without LMCache.
3. Right after each load, a ``kvsize probe`` of the same store, its sets shaped like that load (the same objects,
   read at the load's own requests in flight: K x min(32, CPUs + 4) on fs, K x 4 on redis), and
   ``kvsize MODEL --backend PROFILE`` (``--host-cpus`` this machine's on fs) predict it. The disk's speed here
   drifts over minutes, so each load is paired with its own prediction.

Prints, per connector, chunk size and writer count, the measured seconds (median and spread), the median
prediction, predicted / measured, each pair's ratio, LMCache's CPU seconds (every rank) and lookup seconds (the
slowest rank's ``exists()`` calls), the warm load's seconds and CPU seconds, and on fs the plain readers' seconds
and CPU seconds with predicted / plain (medians). Target: every median within +/-15%.
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
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kvsize
from kvsize.storage.targets import FS_HEADER_BYTES

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
    mine = f"@{world}@{rank}@"
    if connector == "fs":
        stored = lambda: sum(1 for name in os.listdir(target) if mine in name and name.endswith(".data"))
    else:
        import redis
        client = redis.Redis(port=int(target))
        # the metadata key is written last, and it is what a lookup checks
        stored = lambda: sum(1 for _ in client.scan_iter(match=f"*{mine}*metadata", count=10000))
    ids = torch.arange(tokens, dtype=torch.long) + 1000
    engine.store(ids)
    expected = tokens // chunk
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
    # On a GPU host LMCache's CPU buffer is pinned, so resident from the start; here it is a plain torch.empty,
    # whose pages are first touched by whatever writes them. Load the prompt once now, while its files are still in
    # the page cache, so that the timed load writes into resident pages, as it would on a serving host.
    mask = engine.retrieve(ids)
    if mask is None or int(mask.sum()) != expected * chunk:
        sys.exit("the first load, from the page cache, did not load the prompt")
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
    # Then the same load again, every rank at once, from memory (the page cache on fs, redis-server's memory): what
    # LMCache itself takes when the storage costs next to nothing.
    open(out + ".cold", "w").close()
    while not os.path.exists(go + ".warm"):
        time.sleep(0.002)
    before, cpu = disk_bytes(), cpu_seconds()
    run["warm_start"] = time.time()
    mask = engine.retrieve(ids)
    run["warm_end"] = time.time()
    run["warm_cpu_s"] = cpu_seconds() - cpu
    run["warm_disk_bytes"] = disk_bytes() - before
    run["warm_tokens"] = int(mask.sum()) if mask is not None else 0
    with open(out, "w") as result:
        json.dump(run, result)
    # No LMCacheEngineBuilder.destroy: with the redis connector it hangs (RedisConnector.close awaits its
    # AsyncPQExecutor's shutdown on the event loop that shutdown needs), and the process ends here anyway.
    os._exit(0)
    """
) % {"layers": LAYERS, "heads": KV_HEADS, "head": HEAD, "model": MODEL}


PLAIN_READER = textwrap.dedent(
    """
    # One rank's share of LMCache's own files, read without LMCache in the same shape: one asyncio loop with a
    # thread pool of the fs connector's size, every get started at once (as RemoteBackend.batched_get_blocking does),
    # each file opened, its header read, then its bytes into its own slice of one buffer. The buffer is set up and
    # touched when LMCache's ranks start, as theirs is.
    import asyncio, json, os, resource, sys, time
    from concurrent.futures import ThreadPoolExecutor

    root, mine, threads, header, room, ready, go, out = sys.argv[1:9]
    threads, header, room = int(threads), int(header), int(room)
    arena = bytearray(room)
    arena[::4096] = bytes(len(range(0, room, 4096)))
    pool = ThreadPoolExecutor(threads)
    for _ in range(threads):
        pool.submit(time.sleep, 0.01)
    loop = asyncio.new_event_loop()
    loop.set_default_executor(pool)
    open(ready, "w").close()

    async def get(path, target):
        f = await loop.run_in_executor(None, open, path, "rb")
        try:
            if await loop.run_in_executor(None, f.readinto, bytearray(header)) != header:
                raise SystemExit(f"short header read: {path}")
            if await loop.run_in_executor(None, f.readinto, target) != len(target):
                raise SystemExit(f"short read: {path}")
        finally:
            await loop.run_in_executor(None, f.close)

    def disk_bytes():
        with open("/proc/self/io") as io:
            return next(int(line.split()[1]) for line in io if line.startswith("read_bytes:"))

    while not os.path.exists(go):
        time.sleep(0.002)
    paths = sorted(os.path.join(root, n) for n in os.listdir(root) if mine in n and n.endswith(".data"))
    sizes = [os.path.getsize(path) - header for path in paths]
    if sum(sizes) > room:
        raise SystemExit(f"{sum(sizes)} B of files, room for {room}")
    view, slices, at = memoryview(arena), [], 0
    for size in sizes:
        slices.append(view[at:at + size])
        at += size

    async def load():
        await asyncio.gather(*(get(path, target) for path, target in zip(paths, slices)))

    usage, before = resource.getrusage(resource.RUSAGE_SELF), disk_bytes()
    cpu, start = usage.ru_utime + usage.ru_stime, time.time()
    loop.run_until_complete(load())
    end = time.time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    run = {"start": start, "end": end, "cpu_s": usage.ru_utime + usage.ru_stime - cpu, "disk_bytes": disk_bytes() - before}
    with open(out, "w") as result:
        json.dump(run, result)
    """
)


class PlainReaders:
    """``PLAIN_READER`` processes, one per rank, started beside LMCache's ranks and run on their files after them."""

    def __init__(self, store: FsStore, writers: int, room: int, work: Path) -> None:
        self.store, self.go = store, work / "plain-go"
        self.go.unlink(missing_ok=True)
        self.outs = [work / f"plain{rank}.json" for rank in range(writers)]
        for out in self.outs:
            for stale in (out, Path(str(out) + ".ready")):
                stale.unlink(missing_ok=True)
        fixed = [str(store.per_writer), str(FS_HEADER_BYTES), str(room)]
        self.procs = [
            subprocess.Popen([sys.executable, "-c", PLAIN_READER, str(store.root), f"@{writers}@{rank}@", *fixed, *files])
            for rank, out in enumerate(self.outs)
            for files in [[str(out) + ".ready", str(self.go), str(out)]]
        ]

    def run(self) -> tuple[float, float]:
        """Drop the page cache, read every file once: (first start to last end, CPU seconds of every reader)."""
        while not all(Path(str(out) + ".ready").exists() for out in self.outs):
            if any(p.poll() is not None for p in self.procs):
                sys.exit("a plain reader failed before reading")
            time.sleep(0.01)
        self.store.before_load()
        self.go.touch()
        if any(p.wait(timeout=600) for p in self.procs):
            sys.exit("a plain reader failed")
        runs = [json.loads(out.read_text()) for out in self.outs]
        self.store.check(runs, "the plain readers")
        return max(r["end"] for r in runs) - min(r["start"] for r in runs), sum(r["cpu_s"] for r in runs)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


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

    def check(self, runs: list[dict[str, float]], reader: str = "LMCache") -> None:
        stored = sum(entry.stat().st_size for entry in os.scandir(self.root))
        from_disk = sum(run["disk_bytes"] for run in runs)
        if from_disk < 0.95 * stored:  # the load must come from the disk, not the page cache
            sys.exit(f"{reader} read {from_disk:,} B from the disk of {stored:,} B stored: the page cache was not dropped")
        again = sum(run.get("warm_disk_bytes", 0) for run in runs)
        if again > 0.05 * stored:  # the warm load must come from memory
            sys.exit(f"LMCache's warm load read {again:,} B of {stored:,} B from the disk: too little memory for the page cache")

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

    def check(self, runs: list[dict[str, float]], reader: str = "LMCache") -> None:
        pass

    def close(self) -> None:
        self.server.terminate()
        self.server.wait(timeout=30)


Store = FsStore | RedisStore


@dataclass(frozen=True)
class Load:
    """One load by every rank at once: cold (from the store) and warm (the same load again, from memory)."""

    seconds: float  # cold: the first rank's start to the last rank's end
    cpu_s: float  # cold: every rank's CPU seconds
    lookup_s: float  # cold: the slowest rank's exists() seconds
    warm_seconds: float
    warm_cpu_s: float
    plain: tuple[float, float] | None  # fs: LMCache's files read again cold by plain readers (seconds, CPU seconds)


def one_load(python: Path, store: Store, chunk: int, tokens: int, writers: int, work: Path) -> Load:
    """One cold load by ``writers`` ranks started together, then the same load warm."""
    store.clear()
    go = work / "go"
    go.unlink(missing_ok=True)
    Path(str(go) + ".warm").unlink(missing_ok=True)
    outs = [work / f"rank{rank}.json" for rank in range(writers)]
    for out in outs:
        for stale in (out, Path(str(out) + ".stored"), Path(str(out) + ".cold")):
            stale.unlink(missing_ok=True)
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
    room = (tokens // chunk) * LAYERS * 2 * max(1, KV_HEADS // writers) * HEAD * 2 * chunk
    readers = PlainReaders(store, writers, room, work) if isinstance(store, FsStore) else None
    try:
        return timed(procs, outs, go, store, chunk, tokens, readers)
    finally:
        if readers:
            readers.stop()


def timed(
    procs: list[subprocess.Popen[str]],
    outs: list[Path],
    go: Path,
    store: Store,
    chunk: int,
    tokens: int,
    readers: PlainReaders | None,
) -> Load:
    """The load of ranks started by ``one_load``, once every rank has stored the prompt: cold, warm, then the same
    files by the plain readers (fs)."""
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
    while not all(Path(str(out) + ".cold").exists() for out in outs):
        if any(p.poll() not in (None, 0) for p in procs):
            break  # the wait below reports it
        time.sleep(0.01)
    Path(str(go) + ".warm").touch()
    for p in procs:
        if p.wait(timeout=600):
            sys.exit(f"an LMCache rank failed (exit {p.returncode}): " + p.communicate()[1][-2000:])
    runs = [json.loads(out.read_text()) for out in outs]
    want = tokens - tokens % chunk
    if any(run[key] != want for run in runs for key in ("tokens", "warm_tokens")):
        got = [(r["tokens"], r["warm_tokens"]) for r in runs]
        sys.exit(f"LMCache retrieved {got} tokens (cold, warm), expected {want} per rank")
    store.check(runs)
    plain = readers.run() if readers else None
    store.clear()
    return Load(
        seconds=float(max(r["end"] for r in runs) - min(r["start"] for r in runs)),
        cpu_s=float(sum(r["cpu_s"] for r in runs)),
        lookup_s=float(max(r["lookup_s"] for r in runs)),
        warm_seconds=float(max(r["warm_end"] for r in runs) - min(r["warm_start"] for r in runs)),
        warm_cpu_s=float(sum(r["warm_cpu_s"] for r in runs)),
        plain=plain,
    )


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
                        loads: list[Load] = []
                        predictions: list[float] = []
                        try:
                            for index in range(args.repeats):  # each load, then the probe that predicts it
                                loads.append(one_load(python, store, chunk, tokens, writers, work))
                                predicted, bound = predict(store, chunk, tokens, writers, work, index)
                                predictions.append(predicted)
                        except Unstored as error:
                            store.clear()
                            print(f"{store.name:>5} {chunk:>6} {writers:>7}  not loadable: {error}", flush=True)
                            continue
                        times = [load.seconds for load in loads]
                        median, predicted = statistics.median(times), statistics.median(predictions)
                        spread = f"{min(times):.2f}-{max(times):.2f}"
                        pairs = sorted(p / t for p, t in zip(predictions, times, strict=True))
                        plains = [load.plain for load in loads if load.plain is not None]
                        plain = ""
                        if plains:
                            plain_s = statistics.median(p[0] for p in plains)
                            plain = (
                                f"; plain readers {plain_s:.3f} s (CPU {statistics.median(p[1] for p in plains):.2f} s), "
                                f"predicted / plain {predicted / plain_s:.2f}"
                            )
                        print(
                            f"{store.name:>5} {chunk:>6} {writers:>7} {median:>15.3f} ({spread:>10}) {predicted:>12.3f} "
                            f"{predicted / median:>6.2f}  {bound}; pairs {' '.join(f'{r:.2f}' for r in pairs)}; "
                            f"LMCache CPU {statistics.median(load.cpu_s for load in loads):.2f} s, "
                            f"lookups {statistics.median(load.lookup_s for load in loads):.3f} s; "
                            f"warm {statistics.median(load.warm_seconds for load in loads):.3f} s "
                            f"(CPU {statistics.median(load.warm_cpu_s for load in loads):.2f} s){plain}",
                            flush=True,
                        )
            finally:
                store.close()


if __name__ == "__main__":
    main()
