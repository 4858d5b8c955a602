"""Run inside a venv holding sglang 0.5.23: read each emitted launch line with SGLang's own code (emit_roundtrip.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import sglang
from sglang.srt.arg_groups.arg_utils import record_fields
from sglang.srt.arg_groups.hicache_hook import handle_hicache, handle_hicache_ratio_default
from sglang.srt.server_args import prepare_server_args

SOURCES = "".join(path.read_text() for path in (Path(sglang.__file__).parent / "srt").rglob("*.py"))
HF3FS = (Path(sglang.__file__).parent / "srt" / "mem_cache" / "storage" / "hf3fs" / "storage_hf3fs.py").read_text()
MOONCAKE = (Path(sglang.__file__).parent / "srt" / "mem_cache" / "storage" / "mooncake_store" / "mooncake_store.py").read_text()


def run_shell(text, where):
    """What sh does with the emitted lines, the server replaced by a printer: its environment and arguments."""
    script = text.replace(
        "python -m sglang.launch_server", "python3 -c 'import json,os,sys; print(json.dumps([dict(os.environ), sys.argv[1:]]))'"
    )
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True, cwd=where)
    return json.loads(out.stdout.splitlines()[-1])


def main():
    data = json.loads(Path(sys.argv[1]).read_text())
    where = Path(data["work"]) / "sglang-cwd"
    where.mkdir(exist_ok=True)
    for case in data["cases"]:
        backend = case["what"]
        env, argv = run_shell(case["text"], where)
        try:
            args = prepare_server_args(argv)
            args._raw_input = {f.name: getattr(args, f.name) for f in record_fields(type(args))}
            args._resolved_overrides = []
            handle_hicache_ratio_default(args)
            handle_hicache(args)
            assert args.enable_hierarchical_cache and args.hicache_storage_backend == backend
            emitted = {k: v for k, v in env.items() if k.startswith("SGLANG_HICACHE")}
            unknown = [k for k in emitted if f'"{k}"' not in SOURCES and f"{k} = Env" not in SOURCES]
            assert not unknown, f"read nowhere in sglang/srt: {unknown}"
            detail = f"page {args.page_size}, layout {args.hicache_mem_layout}, variables {sorted(emitted)}"
            if backend == "mooncake":
                extra = json.loads(args.hicache_storage_backend_extra_config)
                assert all(f'"{key}"' in MOONCAKE for key in extra), extra
                detail += f", extra-config {sorted(extra)}"
            if backend == "hf3fs":
                config = json.loads((where / env["SGLANG_HICACHE_HF3FS_CONFIG_PATH"]).read_text())
                for key in ("file_path_prefix", "file_size", "numjobs", "entries"):
                    assert key in config and f'"{key}"' in HF3FS, key
                detail += f", hf3fs file {sorted(config)}"
            directory = next((v for k, v in emitted.items() if k.endswith("STORAGE_DIR")), None)
            failed = None
            try:
                if directory is not None:
                    os.makedirs(directory, exist_ok=True)  # HiCacheFile / NixlFileManager: os.makedirs
                if backend == "hf3fs":  # the usrbio client opens f"{file_path_prefix}.{rank}.bin" with O_CREAT
                    os.makedirs(os.path.dirname(config["file_path_prefix"]), exist_ok=True)
                    os.close(os.open(config["file_path_prefix"] + ".0.bin", os.O_RDWR | os.O_CREAT))
            except OSError as error:
                failed = f"{type(error).__name__}: {error}"
        except Exception as error:
            print(
                json.dumps(
                    {
                        "what": backend,
                        "label": case["label"],
                        "verdict": "FAIL",
                        "detail": f"{type(error).__name__}: {error}"[:200],
                    }
                )
            )
            continue
        if case["label"] == "filled":
            verdict = "FAIL" if failed else "accepted"
        else:
            verdict = "refused" if failed else "accepted"
            detail = failed or detail + " (placeholders only in addresses: Mooncake's setup fails on them, by code)"

        print(json.dumps({"what": backend, "label": case["label"], "verdict": verdict, "detail": (failed or detail)[:200]}))


main()
