"""The ``kvsize`` typer app: routing ``kvsize MODEL`` to ``size``, and one error line for every failure.

Library errors name parameters in backticks (`chunk_sizes`); here each becomes the flag that sets it
(--chunk-sizes), so a command-line user reads flags and a library user reads parameters.
"""

import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import typer
from typer import _click
from typer.core import TyperGroup

from kvsize.errors import KvsizeError, shown

DEFAULT_COMMAND = "size"
GROUP_FLAGS = ("--help", "-h", "--version", "--install-completion", "--show-completion")
_PARAMETER = re.compile(r"`([a-z][a-z0-9_]*)`")


def as_flags(message: str) -> str:
    """A library message with its `parameter` names written as the command's --flags."""
    return _PARAMETER.sub(lambda match: "--" + match.group(1).replace("_", "-"), message)


class DefaultCommandGroup(TyperGroup):
    """Routes ``kvsize MODEL ...`` to the ``size`` command beside the named subcommands,
    and turns every usage or input error into one line on stderr with exit code 2."""

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in GROUP_FLAGS:
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        standalone = standalone_mode
        try:
            # Not standalone: typer returns an Exit's code instead of exiting, and
            # re-raises click errors so they are printed here, on one line.
            result = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except _click.exceptions.NoArgsIsHelpError:
            sys.exit(2)  # the help was printed: no model given
        except _click.exceptions.UsageError as error:
            command = error.ctx.command_path if error.ctx is not None else "kvsize"
            _fail(f"{_plain(error.format_message())} (see '{command} --help')")
        except KvsizeError as error:
            _fail(as_flags(str(error)))
        except ValueError as error:  # pydantic's ValidationError: a value of the wrong type reached the library
            _fail(_first_problem(error))
        except _click.exceptions.ClickException as error:
            _fail(error.format_message())
        except typer.Abort:
            sys.stderr.write("kvsize: aborted\n")
            sys.exit(130)
        except RecursionError:
            _fail("the input is nested too deeply for kvsize to read; check the file you gave")
        except OSError as error:  # a path the process cannot reach (permissions, a vanished mount)
            where = f" {error.filename}" if error.filename else ""
            _fail(f"cannot access{where}: {error.strerror or error}; check the path and its permissions")
        except Exception as error:  # a bug: one line, never a traceback (exit 70, so tests tell it from bad input)
            sys.stderr.write(
                f"kvsize: internal error: {type(error).__name__}: {shown(str(error), 120)}; "
                "this is a kvsize bug, please report it with the command line\n"
            )
            sys.exit(70)
        if standalone:
            sys.exit(result if isinstance(result, int) else 0)
        return result


_CHOICE = re.compile(
    r"^Invalid value for '(?P<flag>[^']+)': (?:Value error, )?(?P<value>'.*') is not one of (?P<choices>.*?)\.?$"
)


def _plain(message: str) -> str:
    """A parser's message in kvsize's words: an invalid choice as ``unknown --x 'v': use one of a, b``."""
    match = _CHOICE.match(message)
    if match is None:
        return message.replace("Value error, ", "")
    choices = match.group("choices").replace("'", "")
    return f"unknown {match.group('flag')} {match.group('value')}: use one of {choices}"


def _first_problem(error: ValueError) -> str:
    problems = error.errors() if hasattr(error, "errors") else []
    if not problems:
        return str(error)
    where = ".".join(str(part) for part in problems[0]["loc"])
    return f"{where}: {problems[0]['msg']}" if where else str(problems[0]["msg"])


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"kvsize: error: {KvsizeError(message)}\n")
    sys.exit(2)


app = typer.Typer(
    cls=DefaultCommandGroup,
    add_completion=False,
    no_args_is_help=True,
    help="Size LMCache KV-cache offloading for a model: per-token bytes, objects per chunk size, and more.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from kvsize import __version__

        sys.stdout.write(f"kvsize {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Size LMCache KV-cache offloading: `kvsize MODEL --tp 4 --prompt 100k`."""


catalog_app = typer.Typer(help="Manage catalog files of your own.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")


def warn(*warnings: str) -> None:
    """Warnings go to stderr, one line each, flags named as flags."""
    for warning in warnings:
        sys.stderr.write(f"kvsize: warning: {as_flags(warning)}\n")
