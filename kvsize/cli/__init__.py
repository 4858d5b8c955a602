"""The ``kvsize`` command: parse the flags, make one library call, render the result. No arithmetic here.

One module per command group: ``size`` (``kvsize MODEL``), ``deploy`` (check, capacity), ``probe``, ``replay``,
``catalog`` (models, inspect, catalog add), ``engines``; ``options`` declares every option once; ``render`` and
``reports`` format results; ``output`` prints them for a terminal or a pipe.
"""

from __future__ import annotations

from kvsize.cli import catalog, deploy, engines, probe, replay, size
from kvsize.cli.app import app

__all__ = ["app", "catalog", "deploy", "engines", "main", "probe", "replay", "size"]


def main() -> None:
    """Console entry point."""
    app()
