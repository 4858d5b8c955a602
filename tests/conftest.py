from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kvsize.cli import app

DATA = Path(__file__).parent / "data"
CONFIGS = DATA / "configs"
SHARED_CONFIGS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "configs"


def reference_models() -> list[str]:
    """Catalog names of the reference configs (``ORG__NAME.json``)."""
    return sorted(f.stem.replace("__", "/", 1) for f in CONFIGS.glob("*.json"))


def reference_config(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CONFIGS / (name.replace("/", "__", 1) + ".json")).read_text())
    return data


class Result:
    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr


@pytest.fixture(autouse=True)
def isolated_caches(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test reaches the real Hub or writes to the user's caches: offline, with caches of its own."""
    root = tmp_path_factory.mktemp("caches")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(root / "hf"))
    monkeypatch.setenv("KVSIZE_CACHE", str(root / "kvsize"))
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch):
    """Run ``kvsize ARGS`` in-process through the real typer app."""
    monkeypatch.delenv("KVSIZE_CATALOG", raising=False)

    def _run(*args: str, env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
        return Result(result.exit_code, result.stdout, result.stderr)

    return _run


@pytest.fixture
def run_json(run):
    def _run(*args: str) -> dict[str, Any]:
        result = run(*args, "--format", "json")
        assert result.exit_code == 0, result.stderr
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    return _run


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a minimal config.json into a fresh directory and return the directory."""

    def _write(config: dict[str, Any], name: str = "model") -> Path:
        directory = tmp_path / name
        directory.mkdir()
        (directory / "config.json").write_text(json.dumps(config))
        return directory

    return _write
