"""kvsize's predicted load against LMCache 0.5.6's own load path, run for real on this machine.

    python benchmarks/lmcache_load.py [--dir DIR] [--tokens 32000] [--chunks 256,2048] [--writers 1,4] [--repeats 3]

1. A scratch virtual environment (``--venv``, default ``~/.cache/kvsize-bench/lmcache-0.5.6``; never a dependency
   of kvsize) gets torch (CPU) and ``lmcache==0.5.6 --no-deps`` plus the pure-Python packages its import chain
   needs.
2. For each chunk size and writer count K (TP K, one rank per process, all started together), every rank builds
   LMCache's own ``LMCacheEngine`` (``LMCacheEngineBuilder``, ``MockGPUConnector``: no GPU copy) on the fs
   connector (``remote_url fs://localhost:1/DIR``: LMCache 0.5.6 needs a host and a port), stores the prompt,
   and waits; the driver fsyncs every file and drops it from the page cache (``posix_fadvise`` DONTNEED); then
   every rank runs ``engine.retrieve`` at once (token hashing, ``exists()`` per key,
   ``RemoteBackend.batched_get_blocking``, one ``FSConnector.get`` per key through aiofiles on asyncio's default
   thread pool). Measured: the first rank's start to the last rank's end. Repeated ``--repeats`` times.
3. kvsize predicts the same load from a ``kvsize probe`` of the same directory (levels up to the load's own
   concurrency, K x min(32, CPUs + 4)), with ``--host-cpus`` this machine's CPUs.

Prints, per chunk size and writer count, the measured seconds (median and spread), the prediction, and
predicted / measured. Target: every median within +/-15%.
"""

from __future__ import annotations

import argparse
import json
import os
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
    import json, os, sys, time
    import numpy
    import torch
    from lmcache.v1.cache_engine import LMCacheEngineBuilder
    from lmcache.v1.config import LMCacheEngineConfig
    from lmcache.v1.gpu_connector import MockGPUConnector
    from lmcache.v1.metadata import LMCacheMetadata

    root, chunk, tokens, rank, world, go, out = sys.argv[1:8]
    chunk, tokens, rank, world = int(chunk), int(tokens), int(rank), int(world)
    # The CPU buffer one rank's prompt needs (its memory objects), with room: 4 ranks x 8 GB would not fit in RAM.
    per_rank = tokens * %(layers)d * 2 * max(1, %(heads)d // world) * %(head)d * 2
    config = LMCacheEngineConfig.from_defaults(
        chunk_size=chunk, local_cpu=False, max_local_cpu_size=max(1.0, 1.25 * per_rank / 2**30),
        remote_url=f"fs://localhost:1/{root}",
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

    engine = LMCacheEngineBuilder.get_or_create(
        f"bench{rank}", config, meta, RandomKV(kv_shape=shape), lambda t, r: None, lambda o, r: o
    )
    engine.post_init()
    ids = torch.arange(tokens, dtype=torch.long) + 1000
    engine.store(ids)
    expected = tokens // chunk
    mine = f"@{world}@{rank}@"
    while sum(1 for name in os.listdir(root) if mine in name and name.endswith(".data")) < expected:
        time.sleep(0.02)
    open(out + ".stored", "w").close()
    while not os.path.exists(go):
        time.sleep(0.002)
    start = time.time()
    mask = engine.retrieve(ids)
    end = time.time()
    got = int(mask.sum()) if mask is not None else 0
    json.dump({"start": start, "end": end, "tokens": got}, open(out, "w"))
    LMCacheEngineBuilder.destroy(f"bench{rank}")
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


def drop_cache(root: Path) -> None:
    for entry in os.scandir(root):
        fd = os.open(entry.path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def one_load(python: Path, root: Path, chunk: int, tokens: int, writers: int, work: Path) -> float:
    """One cold load by ``writers`` ranks started together: first start to last end, seconds."""
    for entry in os.scandir(root):
        os.unlink(entry.path)
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
            [str(python), str(script), str(root), str(chunk), str(tokens), str(rank), str(writers), str(go), str(out)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank, out in enumerate(outs)
    ]
    deadline = time.monotonic() + 300
    while not all(Path(str(out) + ".stored").exists() for out in outs):
        if any(p.poll() not in (None, 0) for p in procs) or time.monotonic() > deadline:
            codes = [p.poll() for p in procs]
            for p in procs:
                p.kill()
            sys.exit(f"an LMCache rank failed (exits {codes}): " + "".join(p.communicate()[1][-1500:] for p in procs))
        time.sleep(0.05)
    drop_cache(root)
    go.touch()
    for p in procs:
        if p.wait(timeout=600):
            sys.exit(f"an LMCache rank failed (exit {p.returncode}): " + p.communicate()[1][-2000:])
    runs = [json.loads(out.read_text()) for out in outs]
    want = tokens - tokens % chunk
    if any(run["tokens"] != want for run in runs):
        sys.exit(f"LMCache retrieved {[r['tokens'] for r in runs]} tokens, expected {want} per rank")
    return max(r["end"] for r in runs) - min(r["start"] for r in runs)


def predict(root: Path, chunk: int, tokens: int, writers: int, cpus: int, work: Path) -> tuple[float, str]:
    """kvsize's load time from a probe of ``root`` (levels up to the load's in-flight count)."""
    in_flight = writers * min(32, cpus + 4)
    levels = sorted({1, max(1, in_flight // 2), in_flight, 2 * in_flight})
    profile = work / f"probe-{writers}.yaml"
    if not profile.exists():
        kvsize.probe(
            str(root),
            model=MODEL,
            tp=writers,
            chunk_sizes=[256, 2048],
            concurrency=levels,
            objects=256,
            max_bytes=4 * 2**30,  # sets about the size of the load itself (4.4 GiB)
            save_profile=profile,
            time_limit=900,
        )
    result = kvsize.size(
        MODEL, tp=writers, prompt=tokens, chunk_size=chunk, connector="fs", backend=[str(profile)], host_cpus=cpus
    )
    row = result.rows[0]
    assert row.load_seconds is not None and row.terms is not None
    return row.load_seconds, f"{row.load_bound}, {row.terms['concurrency']} in flight per writer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=None, help="the directory to load from (default: a temp dir)")
    parser.add_argument("--tokens", type=int, default=32_000)
    parser.add_argument("--chunks", default="256,2048")
    parser.add_argument("--writers", default="1,4")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--venv", type=Path, default=Path.home() / ".cache" / "kvsize-bench" / "lmcache-0.5.6")
    args = parser.parse_args()
    python = scratch_venv(args.venv)
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        work = Path(scratch)
        root = work / "store"
        root.mkdir()
        print(f"LMCache 0.5.6 fs connector, {MODEL}, {args.tokens:,}-token prompt, {cpus} CPUs, {work}")
        print(f"{'chunk':>6} {'writers':>7} {'measured s (median, spread)':>28} {'predicted s':>12} {'ratio':>6}  bound")
        for writers in (int(w) for w in args.writers.split(",")):
            for chunk in (int(c) for c in args.chunks.split(",")):
                times = [one_load(python, root, chunk, args.tokens, writers, work) for _ in range(args.repeats)]
                for entry in os.scandir(root):
                    os.unlink(entry.path)
                predicted, bound = predict(root, chunk, args.tokens, writers, cpus, work)
                median = statistics.median(times)
                spread = f"{min(times):.2f}-{max(times):.2f}"
                ratio = predicted / median
                print(f"{chunk:>6} {writers:>7} {median:>15.3f} ({spread:>10}) {predicted:>12.3f} {ratio:>6.2f}  {bound}")


if __name__ == "__main__":
    main()
