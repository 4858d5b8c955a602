"""Feed every config kvsize emits to the engine's own configuration code, on CPU (not run in CI).

    python benchmarks/emit_roundtrip.py [--work DIR] [--engines lmcache,vllm,sglang,kvbm] [--find-links DIR ...]

For each engine, a scratch venv under DIR gets the engine's wheel with ``--no-deps`` and then only what its config
modules import (a module an import reports missing is installed, by its package name, and the probe runs again).
kvsize emits each engine x connector/tier twice: filled from the --emit-* flags (directories under DIR, host
localhost, a bucket and region) and with its placeholders left. Each is then read by the engine's own code:

- LMCache 0.5.6: ``LMCacheEngineConfig.from_file`` + ``update_config_from_env`` + ``validate``, the same settings
  from the ``LMCACHE_*`` form alone, then what its connector checks at start: ``parse_remote_url`` (fs, resp,
  valkey), the S3 adapter's ``s3_region`` and Host rules, ``MooncakeStoreConfig.load_from_lmcache_config``, GDS's
  ``get_fstype`` and ``gds_buffer_size`` assert, ``PathSharder(create_dirs=True)`` for local disk, and
  ``CreateStorageBackends``'s ``max_local_disk_size > 0``;
- vLLM 0.33: the ``vllm serve`` parser, ``create_engine_config``, ``build_offloading_config``,
  ``OffloadingSpecFactory.create_spec`` and, for cpu and fs, ``get_manager()`` (the /dev/shm region and the fs
  tier's directory; obj needs nixl and an endpoint);
- SGLang 0.5.23: ``prepare_server_args`` and the HiCache hooks ``resolve_once`` runs, the variables against
  ``srt/environ.py``, the mooncake extra-config through ``MooncakeStoreConfig``'s keys, the hf3fs file's required keys;
- kvbm 1.6.1: each exported variable against the strings its extension and Python read, and the connector module.

A filled config must be accepted; a placeholder the engine would create or accept silently must instead be
refused (the directory forms) or is reported as accepted-silently. Prints one line per case and a summary.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

import kvsize

SEED = "Qwen/Qwen3-4B-Instruct-2507"
WHEELS = {"lmcache": "lmcache==0.5.6", "vllm": "vllm==0.33.0", "sglang": "sglang==0.5.23", "kvbm": "kvbm==1.6.1"}
BASE_DEPS = {
    "lmcache": ["torch==2.13.0", "numpy<=2.2.6", "pyyaml"],
    "vllm": ["torch==2.13.0", "transformers>=5.16.1,<5.21.0"],
    "sglang": ["torch==2.13.0"],
}
MODULE_PACKAGES = {
    "yaml": "pyyaml", "zmq": "pyzmq", "PIL": "pillow", "google.protobuf": "protobuf", "cpuinfo": "py-cpuinfo",
    "sklearn": "scikit-learn", "cv2": "opencv-python-headless", "attr": "attrs", "dateutil": "python-dateutil",
    "jwt": "pyjwt", "msgspec": "msgspec", "blake3": "blake3", "cbor2": "cbor2", "openai_harmony": "openai-harmony",
    "mistral_common": "mistral-common", "pybase64": "pybase64", "partial_json_parser": "partial-json-parser",
    "gguf": "gguf", "llguidance": "llguidance", "xgrammar": "xgrammar", "outlines_core": "outlines-core",
    "compressed_tensors": "compressed-tensors", "opentelemetry": "opentelemetry-api", "prometheus_client":
    "prometheus-client", "setproctitle": "setproctitle", "uvloop": "uvloop", "sentencepiece": "sentencepiece",
    "tiktoken": "tiktoken", "lark": "lark", "diskcache": "diskcache", "depyf": "depyf", "einops": "einops",
    "ray": "ray", "triton": "triton", "IPython": "ipython", "orjson": "orjson", "pydantic_core": "pydantic-core",
    "torchvision": "torchvision", "sortedcontainers": "sortedcontainers", "awscrt": "awscrt",
}  # fmt: skip
MISSING = re.compile(r"No module named '([A-Za-z0-9_.]+)'")


def emitted_cases(work: Path) -> list[dict[str, Any]]:
    """Every engine x connector/tier kvsize emits, filled and with its placeholders, as text."""
    data = work / "data"
    filled = {
        "dir": str(data / "dir"),
        "bucket": "kvsize-roundtrip",
        "region": "us-east-1",
        "host": "localhost",
        "disk_bytes": 2**30,
    }
    cases = []
    plans = [("lmcache", "connector", c) for c in ("s3", "fs", "redis", "valkey", "resp", "mooncakestore", "local-disk",
                                                  "gds", "weka", "cpu")]  # fmt: skip
    plans += [("vllm", "tier", t) for t in ("cpu", "fs", "obj")]
    plans += [("sglang", "backend", b) for b in ("file", "mooncake", "nixl", "hf3fs")]
    plans += [("kvbm", "tier", "disk")]
    for engine, field, value in plans:
        chunk = {"lmcache": 1024, "vllm": 256, "sglang": 64, "kvbm": 16}[engine]
        settings = {"lmcache": kvsize.engines.LMCache, "vllm": kvsize.engines.Vllm, "sglang": kvsize.engines.Sglang,
                    "kvbm": kvsize.engines.Kvbm}[engine](**{field: value})  # fmt: skip
        result = kvsize.size(
            SEED, serving=kvsize.Serving(tp=4), engine=settings, workload=kvsize.Workload(prompt=20_000), chunk_sizes=[chunk]
        )
        for label, given in (("filled", kvsize.EmitOptions(**filled)), ("placeholders", None)):
            options = given if given is None else _used(engine, value, given)
            text, _ = kvsize.emit_config(result, chunk_size=chunk, emit_options=options)
            cases.append({"engine": engine, "what": value, "label": label, "text": text})
    return cases


def _used(engine: str, what: str, given: kvsize.EmitOptions) -> kvsize.EmitOptions:
    """Only the options the emitter takes (others would only warn)."""
    keep = {"lmcache": {"s3": ("bucket", "region"), "local-disk": ("dir", "disk_bytes"), "fs": ("dir",), "gds": ("dir",),
                        "weka": ("dir",), "cpu": ()}.get(what, ("host",)),
            "vllm": {"cpu": (), "fs": ("dir",), "obj": ("bucket", "region")}.get(what, ()),
            "sglang": {"mooncake": ("host",)}.get(what, ("dir",)), "kvbm": ("dir",)}[engine]  # fmt: skip
    return kvsize.EmitOptions(**{name: getattr(given, name) for name in keep})


def venv(work: Path, engine: str, find_links: list[str]) -> Path:
    """The engine's scratch venv: its wheel with --no-deps and the base packages its config code needs."""
    root = work / f"venv-{engine}"
    python = root / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
        pip(python, ["--no-deps", WHEELS[engine]], find_links)
        if BASE_DEPS.get(engine):
            pip(python, BASE_DEPS[engine], find_links)
    return python


def pip(python: Path, packages: list[str], find_links: list[str]) -> None:
    links = [arg for link in find_links for arg in ("--find-links", link)]
    out = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *links, *packages], capture_output=True, text=True, timeout=3600
    )
    if out.returncode:
        raise RuntimeError(f"pip install {' '.join(packages)}: {out.stderr[-2000:]}")


def run_probe(python: Path, probe: str, cases: Path, find_links: list[str], installed: list[str]) -> list[dict[str, Any]]:
    """Run the engine's probe; install what its imports report missing (its package), and run again."""
    for _ in range(60):
        out = subprocess.run([str(python), probe, str(cases)], capture_output=True, text=True, timeout=3600)
        missing = MISSING.search(out.stderr)
        if out.returncode == 0 or not missing:
            if out.returncode:
                raise RuntimeError(out.stderr[-3000:])
            return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        module = missing.group(1)
        top = module if module in MODULE_PACKAGES else module.split(".")[0]
        package = MODULE_PACKAGES.get(top, top.replace("_", "-"))
        if package in installed:
            raise RuntimeError(f"{package} installed, and still: {out.stderr[-2000:]}")
        installed.append(package)
        pip(python, [package], find_links)
    raise RuntimeError("too many missing modules")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "kvsize-emit-roundtrip")
    parser.add_argument("--engines", default="lmcache,vllm,sglang,kvbm")
    parser.add_argument("--find-links", action="append", default=[], help="Local wheels to use before PyPI.")
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    cases = emitted_cases(work)
    model = work / "model"  # vLLM reads the sized model's config.json from a directory (no weights, no tokenizer)
    model.mkdir(exist_ok=True)
    config = Path(__file__).resolve().parents[1] / "tests" / "data" / "configs" / "Qwen__Qwen3-4B-Instruct-2507.json"
    (model / "config.json").write_text(config.read_text())
    here = Path(__file__).resolve().parent / "emit_roundtrip_probes"
    failures = 0
    for engine in args.engines.split(","):
        mine = [case for case in cases if case["engine"] == engine]
        file = work / f"cases-{engine}.json"
        file.write_text(json.dumps({"work": str(work), "cases": mine}))
        if engine == "kvbm":
            results = kvbm_probe(work, mine, args.find_links)
        else:
            python = venv(work, engine, args.find_links)
            results = run_probe(python, str(here / f"{engine}_probe.py"), file, args.find_links, [])
        for result in results:
            verdict = result["verdict"]
            failures += verdict.startswith("FAIL")
            print(f"{engine:8} {result['what']:14} {result['label']:13} {verdict}: {result['detail']}")
    print(f"{len(cases)} configs, {failures} not read as intended")
    return 1 if failures else 0


def kvbm_probe(work: Path, cases: list[dict[str, Any]], find_links: list[str]) -> list[dict[str, Any]]:
    """kvbm 1.6.1: the wheel's own strings (its Rust extension and Python) name every exported variable, and its
    vLLM connector module is where the emitted line points."""
    import zipfile

    wheel_dir = work / "kvbm-wheel"
    if not list(wheel_dir.glob("kvbm-1.6.1-*.whl")):
        links = [arg for link in find_links for arg in ("--find-links", link)]
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", *links, "-d", str(wheel_dir),
                        WHEELS["kvbm"]], check=True)  # fmt: skip
    (wheel,) = wheel_dir.glob("kvbm-1.6.1-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        strings = b"".join(archive.read(name) for name in names if name.endswith((".so", ".py")))
    results = []
    for case in cases:
        exported = dict(shlex.split(line)[1].split("=", 1) for line in case["text"].splitlines() if line.startswith("export "))
        unread = [name for name in exported if name.encode() not in strings]
        (line,) = [line for line in case["text"].splitlines() if line.startswith("vllm serve")]
        config = json.loads(shlex.split(line)[-1])
        module = config["kv_connector_module_path"].replace(".", "/")
        has_module = any(name.startswith(module) for name in names)
        ok = not unread and has_module and config["kv_connector"].encode() in strings
        directory = exported.get("DYN_KVBM_DISK_CACHE_DIR", "")
        detail = f"{len(exported)} variables all read by kvbm 1.6.1, DynamoConnector in {module}" if ok else f"unread {unread}"
        verdict = "accepted" if ok else "FAIL"
        if case["label"] == "placeholders":
            verdict = "refused" if directory.startswith("/dev/null/") and ok else "FAIL"
            detail += "; the disk directory is under /dev/null, which KVBM cannot create"
        results.append({"what": case["what"], "label": case["label"], "verdict": verdict, "detail": detail})
    return results


if __name__ == "__main__":
    yaml.safe_load("{}")  # the probes' cases are YAML and JSON
    raise SystemExit(main())
