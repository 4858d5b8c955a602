"""``--emit sglang``: SGLang 0.5.23's server flags and environment for HiCache's L3 at one page size, complete for
its backend (``BACKEND_KEYS``).

From the sglang 0.5.23 wheel: the flags are ``arg_groups/fields/memory.py``'s (``--enable-hierarchical-cache`` is
required: without it ``--hicache-storage-backend`` is parsed and ignored); each backend reads its own settings:

- ``file`` (``mem_cache/hicache_storage.py`` ``HiCacheFile.__init__``): ``SGLANG_HICACHE_FILE_BACKEND_STORAGE_DIR``
  (it wins over ``--file-storage-path``; empty gives ``/tmp/hicache``), created with ``os.makedirs``;
- ``mooncake`` (``storage/mooncake_store/mooncake_store.py`` ``_load_config``): the extra-config's
  ``master_server_address`` (else ``SGLANG_HICACHE_MOONCAKE_CONFIG_PATH``, else ``MOONCAKE_MASTER``; none:
  ValueError), ``local_hostname``, ``metadata_server``, ``protocol`` (default rdma), ``global_segment_size`` (bytes
  for the whole instance, default 4 GiB);
- ``nixl`` (``storage/nixl/nixl_utils.py``): ``SGLANG_HICACHE_NIXL_BACKEND_STORAGE_DIR`` (default
  ``/tmp/hicache_storage``, created on every rank) and ``SGLANG_HICACHE_NIXL_BACKEND_PLUGIN`` (default auto);
- ``hf3fs`` (``storage/hf3fs/storage_hf3fs.py``): a JSON file named by ``SGLANG_HICACHE_HF3FS_CONFIG_PATH``
  with ``file_path_prefix``, ``file_size`` (bytes per rank), ``numjobs`` and ``entries`` required (unset: a 1 TiB
  ``/data/hicache.<rank>.bin`` per rank, silently); ``metadata_server_url`` for MLA.

Neither the nixl nor the hf3fs key carries the PP rank, so stages of one TP rank overwrite each other's pages:
kvsize refuses to emit them with PP > 1.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from kvsize.engines.base import per_writer_bytes
from kvsize.engines.emit_options import HOST, LOCAL_DIR, PORT, SHARED_DIR, EmitOptions, Key, unfilled
from kvsize.engines.stack_settings import model_argument, prompts_per_instance, unused
from kvsize.errors import KvsizeError
from kvsize.quoting import comment, env_assignment, shell_line
from kvsize.units import format_iec

if TYPE_CHECKING:
    from kvsize.engines.base import SweepRow
    from kvsize.plan import Sweep
    from kvsize.storage import TimeOptions

MOONCAKE_SEGMENT_BYTES = 4 * 2**30
"""SGLang's default ``global_segment_size`` ("4gb" = 4 GiB for the instance, ``mooncake_store.py``)."""
MOONCAKE_MASTER_PORT = 50051
HF3FS_CONFIG = "hf3fs_config.json"
_MOONCAKE = "sglang/srt/mem_cache/storage/mooncake_store/mooncake_store.py MooncakeStore._load_config"
_HF3FS = "sglang/srt/mem_cache/storage/hf3fs/storage_hf3fs.py HiCacheHF3FS.from_env_config"
BACKEND_KEYS: dict[str, tuple[Key, ...]] = {
    "file": (
        Key(
            "env.SGLANG_HICACHE_FILE_BACKEND_STORAGE_DIR",
            "{shared_dir}",
            True,
            "sglang/srt/mem_cache/hicache_storage.py HiCacheFile.__init__",
            "the directory; unset: /tmp/hicache",
        ),
    ),
    "mooncake": (
        Key(
            "extra.master_server_address",
            "{host}:" + str(MOONCAKE_MASTER_PORT),
            True,
            _MOONCAKE,
            "mooncake_master's address; unreachable: setup fails at start (after about 90 s)",
        ),
        Key("extra.local_hostname", "{host}", True, _MOONCAKE, "this node's address (MOONCAKE_LOCAL_HOSTNAME wins)"),
        Key("extra.protocol", "tcp", True, _MOONCAKE, "default rdma, which needs RDMA NICs"),
        Key("extra.metadata_server", "P2PHANDSHAKE", False, _MOONCAKE, "default P2PHANDSHAKE"),
        Key(
            "extra.global_segment_size",
            "{segment_bytes}",
            False,
            _MOONCAKE,
            "bytes the instance gives the store (split over its ranks); default 4 GiB",
            number=True,
        ),
    ),
    "nixl": (
        Key(
            "env.SGLANG_HICACHE_NIXL_BACKEND_STORAGE_DIR",
            "{local_dir}",
            True,
            "sglang/srt/mem_cache/storage/nixl/nixl_utils.py NixlFileManager",
            "unset: /tmp/hicache_storage",
        ),
        Key(
            "env.SGLANG_HICACHE_NIXL_BACKEND_PLUGIN",
            "POSIX",
            False,
            "sglang/srt/mem_cache/storage/nixl/nixl_utils.py NixlBackendConfig",
            "default auto (3FS, POSIX, GDS_MT, GDS, OBJ)",
        ),
    ),
    "hf3fs": (
        Key("env.SGLANG_HICACHE_HF3FS_CONFIG_PATH", HF3FS_CONFIG, True, _HF3FS, "unset: silent defaults"),
        Key("hf3fs.file_path_prefix", "{shared_dir}/hicache", True, _HF3FS, "the 3FS path the rank files start with"),
        Key("hf3fs.file_size", "{file_bytes}", True, _HF3FS, "bytes per rank", number=True),
        Key("hf3fs.numjobs", 16, True, _HF3FS, "required"),
        Key("hf3fs.entries", 8, True, _HF3FS, "required"),
    ),
}
"""Per backend, what it reads: ``env.NAME`` a variable, ``extra.NAME`` a key of
``--hicache-storage-backend-extra-config``, ``hf3fs.NAME`` a key of the hf3fs JSON file."""
USES = {"file": ("dir",), "mooncake": ("host",), "nixl": ("dir",), "hf3fs": ("dir",)}


def backend_settings(backend: str, fill: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The backend's settings from ``BACKEND_KEYS``, filled from ``fill``, by where they go (env, extra, hf3fs)."""
    found: dict[str, dict[str, Any]] = {"env": {}, "extra": {}, "hf3fs": {}}
    for item in BACKEND_KEYS[backend]:
        where, name = item.key.split(".", 1)
        found[where][name] = item.value(fill)
    return found


def _fill(sweep: Sweep, row: SweepRow, prompts: int, margin: float, given: EmitOptions) -> dict[str, Any]:
    per_rank = per_writer_bytes(row, sweep.layout)
    return {
        "shared_dir": given.directory(SHARED_DIR),
        "local_dir": given.directory(LOCAL_DIR),
        "host": given.host or HOST,
        "segment_bytes": max(MOONCAKE_SEGMENT_BYTES, math.ceil(row.total_bytes * prompts * margin)),
        "file_bytes": max(1, math.ceil(per_rank * prompts * margin)),
    }


def sglang_flags(
    sweep: Sweep, row: SweepRow, options: TimeOptions | None, margin: float, given: EmitOptions | None = None
) -> tuple[str, list[str]]:
    """The ``sglang.launch_server`` flags (and environment) that store pages of ``row``'s size in HiCache's L3, and
    warnings."""
    given = given or EmitOptions()
    layout = sweep.layout
    backend = layout.connector.name
    if backend in ("nixl", "hf3fs") and layout.options.pp > 1:
        raise KvsizeError(
            f"`emit` sglang: SGLang 0.5.23's {backend} backend keys pages without the PP rank, so the stages of one TP "
            f"rank overwrite each other's pages; use `pp` 1, or the file or mooncake backend",
            field="pp",
        )
    page = row.chunk_tokens
    prompts = prompts_per_instance(options)
    fill = _fill(sweep, row, prompts, margin, given)
    settings = backend_settings(backend, fill)
    if backend == "hf3fs" and sweep.spec.use_mla:  # MLA shares pages across ranks through the metadata server
        settings["hf3fs"]["metadata_server_url"] = f"http://{fill['host']}:{PORT}"
    command = ["python", "-m", "sglang.launch_server", "--model-path", model_argument(sweep)]
    command += ["--tp-size", str(layout.options.tp), "--pp-size", str(layout.options.pp), "--page-size", str(page)]
    command += ["--enable-hierarchical-cache", "--hicache-storage-backend", backend, "--hicache-mem-layout", "page_first"]
    command += ["--hicache-storage-prefetch-policy", "timeout"]
    if settings["extra"]:
        command += ["--hicache-storage-backend-extra-config", json.dumps(settings["extra"], separators=(",", ":"))]
    lines = [
        comment(
            f"SGLang HiCache settings from kvsize for {sweep.spec.name}, TP {layout.options.tp} x PP {layout.options.pp}, "
            f"{sweep.prompt_tokens:,}-token prompts, backend {backend}."
        ),
        comment(
            f"--page-size {page:,}: {row.objects:,} objects of {format_iec(row.object_bytes)} per prompt. The page is also "
            "the GPU attention page: check the attention backend supports it."
        ),
        *[comment(line) for line in _notes(backend, fill, settings)],
    ]
    if settings["hf3fs"]:
        lines.append(shell_line(["printf", "%s\\n", json.dumps(settings["hf3fs"])], stdout=HF3FS_CONFIG))
    lines += [f"export {env_assignment(name, str(value))}" for name, value in settings["env"].items()]
    lines.append(shell_line(command))
    return "\n".join(lines) + "\n", unused(given, USES[backend], f"SGLang's {backend} backend")


def _notes(backend: str, fill: dict[str, Any], settings: dict[str, dict[str, Any]]) -> list[str]:
    notes = []
    if backend == "mooncake":
        notes.append(
            f"global_segment_size {fill['segment_bytes']:,} B: the instance's objects for its prompts x margin (at least "
            "SGLang's 4 GiB), split over its ranks; a mooncake_master must run at master_server_address, and "
            "local_hostname is this node's address."
        )
    if backend == "hf3fs":
        notes.append(
            f"{HF3FS_CONFIG}: SGLang's hf3fs backend reads only the file SGLANG_HICACHE_HF3FS_CONFIG_PATH names (start "
            f"the server where it is written); file_size {fill['file_bytes']:,} B per rank: one rank's pages x margin."
        )
    if backend == "nixl":
        notes.append("SGLANG_HICACHE_NIXL_BACKEND_PLUGIN=POSIX: NIXL's file plugin on the directory (auto would pick).")
    left = sorted(set(unfilled(settings)))
    if left:
        notes.append(
            f"Replace {', '.join(left)} (a directory's whole /dev/null/<...> value: SGLang cannot create it, so it fails "
            "at start), or give --emit-dir / --emit-host."
        )
    return notes
