"""Ctrl-C and SIGTERM: the first one stops kvsize, any later one changes nothing, and clean-up is never cut short.

The ``kvsize`` command installs ``handler`` for both signals before anything else (``install``). The first signal
is recorded and, outside clean-up, raised where the program stands: ``KeyboardInterrupt`` for Ctrl-C, ``Terminated``
(a ``KeyboardInterrupt``, so that every clean-up written for Ctrl-C runs for SIGTERM too) for SIGTERM. Every later
signal is only ignored: a second and third Ctrl-C cannot interrupt the clean-up the first one started.

Work that must finish what it starts (the probe writes files, then removes them) runs in ``held()``: there the
first signal is only recorded, and the work asks ``requested()`` at safe points, stops, and cleans up whatever
happens. A library caller gets the same inside ``held()``: the handlers are installed for the block only, and its
own are put back after. ``finish`` ends the command: one line on stderr for a stop, exit 130 (Ctrl-C) or 143
(SIGTERM).
"""

from __future__ import annotations

import signal
import sys

TYPE_CHECKING = False  # the command imports this first: nothing here but signal and sys (mypy reads the name alike)
if TYPE_CHECKING:
    from types import FrameType, TracebackType

SIGNALS = (signal.SIGINT, signal.SIGTERM)
REASONS: dict[int, str] = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
EXIT_CODES: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as Ctrl-C is."""


class Interrupted(Exception):
    """Work stopped by Ctrl-C or SIGTERM after cleaning up; the message says what (if anything) is left."""

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _State:
    first: int | None = None
    """The first stop signal received, if any."""
    holding = 0
    """Above 0: signals are recorded, never raised (work in ``held()``, or the command ending)."""
    process = False
    """True when ``install`` made the handlers the process's own (the ``kvsize`` command)."""
    reported = False
    """True once the stop's one line is written."""


_state = _State()


def handler(signum: int, frame: FrameType | None) -> None:
    """Record the first stop signal and, outside held work, raise it; ignore every later one."""
    if _state.first is not None:
        return  # a stop is under way: its clean-up and its line must not be cut short
    _state.first = signum
    if _state.holding == 0:
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def install() -> None:
    """Make ``handler`` the process's handler of Ctrl-C and SIGTERM (the ``kvsize`` command, before anything else)."""
    for number in SIGNALS:
        signal.signal(number, handler)
    _state.process = True


def requested() -> int | None:
    """The stop signal received, if any (work in ``held()`` asks at safe points)."""
    return _state.first


def interrupted(what: str) -> Interrupted:
    """The ``Interrupted`` to raise for the stop received: 'stopped by Ctrl-C; ``what``'."""
    signum = _state.first if _state.first is not None else signal.SIGINT
    return Interrupted(f"stopped by {REASONS[signum]}; {what}", EXIT_CODES[signum])


class held:  # a context manager, read as a function: ``with held():``
    """Within the block, Ctrl-C and SIGTERM are recorded only: the work inside asks ``requested()``, stops at a safe
    point and cleans up; no signal can interrupt it. Outside the main thread (where no handler runs) it does nothing."""

    def __enter__(self) -> None:
        import threading

        self.active = threading.current_thread() is threading.main_thread()
        self.previous: dict[int, object] = {}
        if not self.active:
            return
        _state.holding += 1  # before the handlers change: a signal in between is recorded, never raised
        if not _state.process:
            self.previous = {number: signal.signal(number, handler) for number in SIGNALS}

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if not self.active:
            return
        for number, before in self.previous.items():
            signal.signal(number, before)  # type: ignore[arg-type]
        _state.holding -= 1
        if self.previous and _state.holding == 0:
            _state.first = None  # a library caller's: this stop was for the work in the block, now handled


def report(line: str) -> None:
    """Write the stop's one line (``kvsize: ...``) on stderr; ``finish`` then writes none."""
    _state.reported = True
    sys.stderr.write(f"kvsize: {line}\n")


def finish(code: str | int | None) -> None:
    """End the command with ``code``; after a stop, with its line (unless written) and exit 130 or 143. The command
    is over: a signal while the interpreter tears down changes nothing (Python would restore the default action,
    death by the signal, before its last clean-up)."""
    _state.holding += 1  # from here to the end, signals are only recorded
    if _state.first is not None:
        if not _state.reported:
            report(f"stopped by {REASONS[_state.first]}")
        code = EXIT_CODES[_state.first]
    for number in SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    sys.exit(code)
