"""Run inside a venv holding lmcache 0.5.6: read each emitted config with LMCache's own code (see emit_roundtrip.py)."""

import json
import os
import shlex
import sys
import tempfile
from pathlib import Path

import yaml
from lmcache.v1.config import LMCacheEngineConfig
from lmcache.v1.storage_backend.connector import parse_remote_url
from lmcache.v1.storage_backend.connector.mooncakestore_connector import MooncakeStoreConfig
from lmcache.v1.storage_backend.gds_backend import get_fstype
from lmcache.v1.storage_backend.path_sharder import PathSharder

KEYS = (
    "chunk_size",
    "max_local_cpu_size",
    "blocking_timeout_secs",
    "remote_url",
    "remote_serde",
    "local_disk",
    "max_local_disk_size",
    "gds_path",
    "gds_buffer_size",
    "extra_config",
    "save_unfull_chunk",
)


def load(path, env):
    for key in [k for k in os.environ if k.startswith("LMCACHE_")]:
        del os.environ[key]
    os.environ.update(env)
    try:
        if path is None:
            config = LMCacheEngineConfig.from_env()
        else:
            config = LMCacheEngineConfig.from_file(path)
            config.update_config_from_env()
        config.validate()
        return config
    finally:
        for key in env:
            del os.environ[key]


def env_form(text):
    tail = text[text.rindex("# The same as environment variables") :].splitlines()[1:]
    return dict(shlex.split(line[2:])[0].split("=", 1) for line in tail)


def connector_checks(what, config):
    """What the connector's own code does at start with these settings: a list of failures (empty: it starts)."""
    failed = []
    url = config.remote_url or ""
    extra = config.extra_config or {}
    try:
        if what in ("fs", "resp", "valkey"):
            parsed = parse_remote_url(url)
            if what == "fs":
                for path in parsed.path.split(","):
                    os.makedirs(path, exist_ok=True)  # FSConnector.__init__: Path(path).mkdir(parents=True)
        if what == "s3":
            assert extra.get("s3_region") is not None, "s3_region is required"  # s3_adapter.py
            host = url.removeprefix("s3://")
            assert "." in host and "/" not in host, f"Host {host!r} is not a bucket host"
        if what == "mooncakestore":
            setup = MooncakeStoreConfig.load_from_lmcache_config(config).setup_config
            for key in ("local_hostname", "metadata_server", "master_server_address"):
                assert setup.get(key), f"{key} missing"
        if what in ("gds", "weka"):
            assert config.gds_buffer_size is not None, "gds_buffer_size"  # GdsBackend.initialize_allocator
            get_fstype(config.gds_path)
        if what == "local-disk":
            assert config.max_local_disk_size > 0, "max_local_disk_size"  # CreateStorageBackends
            PathSharder(raw_csv=config.local_disk, strategy="by_gpu", dst_device="cpu", create_dirs=True)
    except Exception as error:  # every class of failure LMCache can meet at start
        failed.append(f"{type(error).__name__}: {error}")
    return failed


def main():
    data = json.loads(Path(sys.argv[1]).read_text())
    for case in data["cases"]:
        text = case["text"]
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as file:
            file.write(text)
        intended = yaml.safe_load(text)
        try:
            from_file = load(file.name, {})
            from_env = load(None, env_form(text))
        except Exception as error:
            print(json.dumps({**case, "text": None, "verdict": "FAIL", "detail": f"config: {type(error).__name__}: {error}"}))
            continue
        same = [k for k in KEYS if getattr(from_file, k) != getattr(from_env, k)]
        read = {k: getattr(from_file, k) for k in intended if hasattr(from_file, k)}
        wrong = [
            k for k, v in intended.items() if k in read and read[k] != v and not (isinstance(v, int) and read[k] == float(v))
        ]
        failed = connector_checks(case["what"], from_file)
        holders = "<" in json.dumps(intended)
        # A placeholder LMCache cannot convert is read as None (config_base.py _apply_env_converter_safely): that
        # setting then fails at start (max_local_disk_size: TypeError in CreateStorageBackends), which is the point.
        wrong = [k for k in wrong if not (read[k] is None and "<" in json.dumps(intended[k]))]
        if case["label"] == "filled" or not holders:
            ok = not same and not wrong and not failed and not holders
            verdict, detail = ("accepted" if ok else "FAIL"), f"file and env read alike; {len(read)} keys as written"
            detail += "" if ok else f"; differ {same}, misread {wrong}, start fails {failed}"
        else:
            verdict = "refused" if failed else "accepted-silently"
            detail = failed[0] if failed else "LMCache starts with the placeholder (kvsize warns; check refuses it)"
            if same or wrong:
                verdict, detail = "FAIL", f"differ {same}, misread {wrong}"
        print(json.dumps({"what": case["what"], "label": case["label"], "verdict": verdict, "detail": detail[:200]}))


main()
