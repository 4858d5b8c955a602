"""The ``kvsize`` command: parse the flags, make one library call, render the result. No arithmetic here.

One module per command group: ``size`` (``kvsize MODEL``), ``deploy`` (check, capacity), ``probe``, ``replay``,
``catalog`` (models, inspect, catalog add), ``engines``; ``options`` declares every option once; ``render`` and
``reports`` format results; ``output`` prints them for a terminal or a pipe.

Importing this package is cheap (the commands load on first use of ``app``), so that ``main`` runs, and takes
Ctrl-C and SIGTERM in hand, before the heavy imports do.
"""

from __future__ import annotations

import importlib

from kvsize import stopping

TYPE_CHECKING = False  # not typing's: that import alone costs more than this package (mypy reads the name alike)
if TYPE_CHECKING:
    from typing import Any

    from kvsize.cli import catalog, deploy, engines, probe, replay, size
    from kvsize.cli.app import app

__all__ = ["app", "catalog", "deploy", "engines", "main", "probe", "replay", "size"]
COMMANDS = ("catalog", "deploy", "engines", "probe", "replay", "size")


def _app() -> Any:
    """The typer app with every command registered."""
    for command in COMMANDS:
        importlib.import_module(f"kvsize.cli.{command}")
    typer_app = importlib.import_module("kvsize.cli.app").app
    globals()["app"] = typer_app  # importing the submodule kvsize.cli.app bound its name here: the app it is
    return typer_app


def __getattr__(name: str) -> Any:
    if name == "app":
        return _app()
    if name in COMMANDS:
        _app()
        return importlib.import_module(f"kvsize.cli.{name}")
    raise AttributeError(f"module 'kvsize.cli' has no attribute {name!r}")


def main() -> None:
    """Console entry point. Ctrl-C at any moment (the imports included) ends with one line and exit 130, SIGTERM
    with exit 143 (``kvsize.stopping``), never a traceback."""
    code: str | int | None = 0
    try:
        try:
            stopping.install()
            from kvsize.cli.output import safe_output

            safe_output()
            _app()()
        except SystemExit as done:
            code = done.code
    except KeyboardInterrupt:
        code = 130
    stopping.finish(code)
