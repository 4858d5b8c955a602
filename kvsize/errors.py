"""The one error type kvsize raises for input it cannot size."""

from __future__ import annotations


class KvsizeError(ValueError):
    """Bad input: a value, a config or a model that kvsize cannot size.

    The message is one line that names what is wrong and how to fix it. The CLI
    prints it on stderr and exits with code 2.
    """

    exit_code = 2

    def __init__(self, message: str) -> None:
        # One line, always: a multi-line message from a library is folded.
        super().__init__(" ".join(message.split()))
