"""Hub access through the real huggingface_hub client, against a local server that speaks the Hub's protocol.

The client reads its HF_* variables at import, so every case runs kvsize in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CONFIGS, reference_models
from tests.hub_server import FakeHub, serve

QWEN = (CONFIGS / "Qwen__Qwen3-4B-Instruct-2507.json").read_bytes()
TINY = (
    b'{"model_type": "llama", "num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 2, '
    b'"hidden_size": 512, "torch_dtype": "bfloat16"}'
)

# Runs the real CLI, then reports which heavy modules the run imported.
RUNNER = (
    "import sys, atexit\n"
    "heavy = ('transformers', 'huggingface_hub')\n"
    "atexit.register(lambda: sys.stderr.write('IMPORTED:' + ','.join(m for m in heavy if m in sys.modules) + '\\n'))\n"
    "from kvsize.cli import main\n"
    "sys.argv = ['kvsize', *sys.argv[1:]]\n"
    "main()\n"
)
# The same, with every way of opening a socket made to fail loudly.
NO_SOCKETS = (
    "import socket\n"
    "def refuse(*args, **kwargs):\n"
    "    raise RuntimeError('a socket was opened')\n"
    "class Refused(socket.socket):\n"
    "    def __init__(self, *args, **kwargs):\n"
    "        refuse()\n"
    "socket.socket = Refused\n"
    "socket.create_connection = refuse\n"
    "socket.getaddrinfo = refuse\n"
) + RUNNER


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    fake = FakeHub()
    fake.add("acme/qwen", QWEN)
    fake.add("acme/tiny", TINY)
    fake.add("acme/gated", TINY, gated_token="hf_test_token")
    fake.add("acme/slow", TINY)
    fake.add("acme/broken", b"{this is not json")
    fake.add(
        "acme/custom",
        b'{"model_type": "acme_arch", "num_hidden_layers": 4, "num_attention_heads": 8, '
        b'"num_key_value_heads": 4, "head_dim": 64, "torch_dtype": "float16"}',
    )
    fake.repos["acme/empty"] = fake.add("acme/empty", b"{}").__class__(files={"README.md": b"hi"}, commit="e" * 40)
    with serve(fake):
        yield fake


class Kvsize:
    def __init__(self, hub: FakeHub, tmp_path: Path) -> None:
        self.hub = hub
        self.env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "KVSIZE_"))}
        self.env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf"), KVSIZE_CACHE=str(tmp_path / "kvsize"))

    def __call__(self, *args: str, script: str = RUNNER, **env: str) -> subprocess.CompletedProcess[str]:
        self.hub.requests.clear()
        return subprocess.run(
            [sys.executable, "-c", script, *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture
def kvsize_cli(hub: FakeHub, tmp_path: Path) -> Kvsize:
    return Kvsize(hub, tmp_path)


def imported(result: subprocess.CompletedProcess[str]) -> set[str]:
    line = next(line for line in result.stderr.splitlines() if line.startswith("IMPORTED:"))
    return {name for name in line.removeprefix("IMPORTED:").split(",") if name}


def errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("kvsize: error:")]


def test_hub_model_gives_the_seed_numbers(kvsize_cli, hub):
    result = kvsize_cli("acme/qwen", "--tp", "4", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["bytes_per_token"], data["rows"][0]["objects"], data["rows"][3]["objects"]) == (147_456, 1_560, 192)
    assert data["source"] == f"{hub.url}/acme/qwen at {hub.repos['acme/qwen'].commit}"
    assert ("GET", "/acme/qwen/resolve/main/config.json") in hub.requests
    assert not any("/api/" in path for _, path in hub.requests)  # config.json only, no other calls
    assert (Path(kvsize_cli.env["HF_HOME"]) / "hub" / "models--acme--qwen").is_dir()  # the client's cache, in HF_HOME
    assert imported(result) == {"huggingface_hub"}  # a first run of a known type: defaults from the table, no transformers


def test_second_online_run_makes_one_revision_check_and_skips_transformers(kvsize_cli, hub):
    assert kvsize_cli("acme/qwen").returncode == 0
    second = kvsize_cli("acme/qwen", "--tp", "4")
    assert second.returncode == 0, second.stderr
    assert hub.requests == [("HEAD", "/acme/qwen/resolve/main/config.json")]
    assert imported(second) == {"huggingface_hub"}


def test_offline_after_one_fetch_opens_no_socket_and_imports_no_client(kvsize_cli, hub):
    assert kvsize_cli("acme/qwen").returncode == 0
    for offline in ({"HF_HUB_OFFLINE": "1"}, {}):
        args = ("acme/qwen", "--tp", "4", "--format", "json", *(() if offline else ("--offline",)))
        result = kvsize_cli(*args, script=NO_SOCKETS, **offline)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["bytes_per_token"] == 147_456
        assert hub.requests == []
        assert imported(result) == set()


def test_no_socket_guard_really_guards(kvsize_cli):
    result = kvsize_cli("acme/qwen", script=NO_SOCKETS)  # online and not cached: must try the network
    assert result.returncode != 0
    assert "a socket was opened" in result.stderr


def test_offline_with_nothing_cached(kvsize_cli, hub):
    result = kvsize_cli("acme/qwen", HF_HUB_OFFLINE="1")
    assert result.returncode == 2
    assert len(errors(result)) == 1
    assert errors(result)[0].startswith(
        "kvsize: error: unknown model 'acme/qwen': not in the catalog, and from the Hub: acme/qwen at revision "
        "'main' is not in the cache and kvsize is offline (HF_HUB_OFFLINE or --offline): run it once online, or "
        "give a local config.json"
    )
    assert hub.requests == []


def test_commit_pinned_revision_needs_no_network_once_cached(kvsize_cli, hub):
    commit = hub.repos["acme/qwen"].commit
    assert kvsize_cli("acme/qwen", "--revision", commit).returncode == 0
    again = kvsize_cli("acme/qwen", "--revision", commit, "--format", "json")
    assert again.returncode == 0
    assert hub.requests == []
    assert json.loads(again.stdout)["bytes_per_token"] == 147_456


def test_gated_repo_needs_a_token(kvsize_cli):
    result = kvsize_cli("acme/gated")
    assert result.returncode == 2
    assert "acme/gated is a gated repo" in result.stderr and "set HF_TOKEN" in result.stderr
    assert len(errors(result)) == 1 and "Traceback" not in result.stderr
    with_token = kvsize_cli("acme/gated", "--format", "json", HF_TOKEN="hf_test_token")
    assert with_token.returncode == 0, with_token.stderr
    assert json.loads(with_token.stdout)["bytes_per_token"] == 2 * 2 * 2 * 64 * 2


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("acme/missing",), {}, "no repo acme/missing on"),
        (("acme/qwen", "--revision", "v9"), {}, "acme/qwen has no revision 'v9'"),
        (("acme/empty",), {}, "acme/empty has no config.json at revision 'main'"),
        (("acme/broken",), {}, "config.json is not valid JSON"),
    ],
)
def test_hub_errors_are_one_line(kvsize_cli, args, env, message):
    result = kvsize_cli(*args, **env)
    assert result.returncode == 2, result.stderr
    assert len(errors(result)) == 1 and message in errors(result)[0], result.stderr
    assert "Traceback" not in result.stderr


def test_slow_hub_answers_a_cached_model_from_the_cache(kvsize_cli, hub):
    assert kvsize_cli("acme/slow").returncode == 0
    hub.repos["acme/slow"].delay_s = 6.0  # slower than HF_HUB_ETAG_TIMEOUT
    started = time.monotonic()
    result = kvsize_cli("acme/slow", "--format", "json", HF_HUB_ETAG_TIMEOUT="1")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["bytes_per_token"] == 2 * 2 * 2 * 64 * 2
    assert elapsed < 5.0  # the client gave up on the revision check after 1 s and used its cache
    assert imported(result) == {"huggingface_hub"}


def test_unreachable_endpoint(kvsize_cli, tmp_path):
    started = time.monotonic()
    result = kvsize_cli("acme/qwen", HF_ENDPOINT="http://127.0.0.1:9")  # discard port: nothing listens
    assert time.monotonic() - started < 5  # no 25 s of client retries
    assert "Retrying" not in result.stderr and len(errors(result)) == 1
    assert result.returncode == 2
    assert "cannot reach http://127.0.0.1:9 (ConnectError); check the network or HF_ENDPOINT" in errors(result)[0]


@pytest.mark.parametrize("value", ["nan", "1e400", "9" * 40, "-3", "\udcff"])
def test_client_timeout_variables_it_cannot_read(kvsize_cli, value):
    result = kvsize_cli("acme/qwen", HF_ENDPOINT="http://127.0.0.1:9", HF_HUB_ETAG_TIMEOUT=value)
    assert result.returncode == 2 and len(errors(result)) == 1
    assert "HF_HUB_ETAG_TIMEOUT=" in errors(result)[0] and "is not a whole number of seconds" in errors(result)[0]


def test_unknown_model_type_is_sized_from_raw_fields(kvsize_cli):
    result = kvsize_cli("acme/custom", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["bytes_per_token"] == 4 * 2 * 4 * 64 * 2
    assert any("does not know model_type 'acme_arch'" in w for w in data["warnings"])


def test_catalog_add_from_the_hub(kvsize_cli, hub, tmp_path):
    catalog = tmp_path / "mine.yaml"
    added = kvsize_cli("catalog", "add", "acme/qwen", "--catalog", str(catalog))
    assert added.returncode == 0, added.stderr
    text = catalog.read_text()
    assert f"revision: {hub.repos['acme/qwen'].commit}" in text
    from_catalog = kvsize_cli("acme/qwen", "--catalog", str(catalog), "--format", "json", HF_HUB_OFFLINE="1")
    assert from_catalog.returncode == 0, from_catalog.stderr
    assert json.loads(from_catalog.stdout)["source"] == f"catalog {catalog}: acme/qwen"
    assert json.loads(from_catalog.stdout)["bytes_per_token"] == 147_456


def test_inspect_a_hub_model(kvsize_cli, hub):
    result = kvsize_cli("inspect", "acme/qwen", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["revision"] == hub.repos["acme/qwen"].commit
    assert data["fields"]["kv heads"]["origin"].startswith(f"{hub.url}/acme/qwen at ")


def test_every_reference_config_through_the_hub_matches_its_catalog_entry(tmp_path):
    """All 32 reference configs, served by the local Hub under their own names, size like the catalog."""
    fake = FakeHub()
    for name in reference_models():
        fake.add(name, (CONFIGS / (name.replace("/", "__", 1) + ".json")).read_bytes())
    script = (
        "import json, sys, kvsize\n"
        "out = {}\n"
        "for name in sys.argv[1:]:\n"
        "    hub = kvsize.resolve_model(name, revision='main')\n"
        "    catalog = kvsize.resolve_model(name)\n"
        "    opts = kvsize.EngineOptions()\n"
        "    a = kvsize.plan_sweep(hub, opts, 100_000)\n"
        "    b = kvsize.plan_sweep(catalog, opts, 100_000)\n"
        "    same = a.rows == b.rows and a.layout.bytes_per_token == b.layout.bytes_per_token\n"
        "    out[name] = [same, hub.source.split(' at ')[0], a.layout.bytes_per_token]\n"
        "print(json.dumps(out))\n"
    )
    with serve(fake):
        env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "KVSIZE_"))}
        env.update(HF_ENDPOINT=fake.url, HF_HOME=str(tmp_path / "hf"), KVSIZE_CACHE=str(tmp_path / "kv"))
        result = subprocess.run(
            [sys.executable, "-c", script, *reference_models()], env=env, capture_output=True, text=True, timeout=300, check=False
        )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert sorted(out) == reference_models()
    for name, (same, source, _) in out.items():
        assert same, name
        assert source == f"{fake.url}/{name}"


def test_spec_cache_from_another_transformers_is_normalised_again(kvsize_cli, hub, tmp_path):
    assert kvsize_cli("acme/qwen").returncode == 0
    entries = list((tmp_path / "kvsize").rglob("commits/*.json"))
    assert len(entries) == 1
    entry = json.loads(entries[0].read_text())
    entry["filled_by"] = "0.0.1"
    entries[0].write_text(json.dumps(entry))
    again = kvsize_cli("acme/qwen")
    assert again.returncode == 0
    # normalised again, from the defaults table (a known type needs no transformers import)
    assert imported(again) == {"huggingface_hub"}
    assert json.loads(entries[0].read_text())["filled_by"].startswith("kvsize table of transformers ")
