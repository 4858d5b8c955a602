"""The engine flags, from the registry: ``--engine`` and each engine's own settings (``EngineSettings.FLAGS``).

A command built with ``EngineCommand`` loads only the engine its command line selects (``--engine``, else the
default) and adds that engine's flags before parsing; ``--help`` loads every engine to list all their flags, and a
flag of another engine is refused by name (``--tier applies to --engine vllm or llmd-fs, not lmcache``). The
values given reach the command as the engine's settings (``given_settings``).
"""

from __future__ import annotations

import typing
from enum import Enum
from typing import Any

import typer
from typer import _click
from typer.core import TyperCommand, TyperOption
from typer.main import _get_param
from typer.models import ParamMeta

from kvsize.engines.registry import DEFAULT_ENGINE, ENGINE_NAMES, engine_for

if typing.TYPE_CHECKING:
    from kvsize.engines.base import EngineSettings

PANEL = "Offloading engine"
_META = "kvsize.engine_flags"
EngineChoice = Enum("EngineChoice", {name: name for name in ENGINE_NAMES}, type=str)  # type: ignore[misc]
"""``--engine``'s choices: the registry's names."""
ENGINE_HELP = "Offloading stack (default " + DEFAULT_ENGINE + "): " + ", ".join(ENGINE_NAMES) + ". See 'kvsize engines'."
HELP_FLAGS = ("-h", "--help")


def _param_name(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _selected(args: list[str]) -> str:
    """The engine the command line names (``--engine X`` / ``--engine=X``), else the default."""
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--engine" and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("--engine="):
            return arg.split("=", 1)[1]
    return DEFAULT_ENGINE


def _option(flag: str, field: Any, kind: str, help_text: str, owners: list[str]) -> TyperOption:
    """One engine flag as a typer option (sizes and durations stay text: ``given_settings`` parses them)."""
    annotation: Any = {"bool": bool, "int": int, "float": float, "size": str, "duration": str}.get(kind)
    if annotation is None:  # a choice: the field's Literal
        annotation = typing.Literal[tuple(str(arg) for arg in typing.get_args(field.annotation) if arg is not None)]
    decl = f"{flag}/--no-{flag[2:]}" if kind == "bool" else flag
    info = typer.Option(None, decl, help=f"--engine {' or '.join(owners)}: {help_text}", rich_help_panel=PANEL)
    option = _get_param(ParamMeta(name=_param_name(flag), default=info, annotation=annotation | None))
    assert isinstance(option, TyperOption)
    option.kvsize_engine_flag = flag  # type: ignore[attr-defined]
    return option


def engine_options(names: list[str]) -> list[TyperOption]:
    """The flags of the engines ``names`` (each flag once, naming every engine that takes it)."""
    flags: dict[str, tuple[Any, str, str, list[str]]] = {}
    for name in names:
        settings = engine_for(name).Settings
        for field_name, flag in settings.FLAGS.items():
            if flag.name in flags:
                flags[flag.name][3].append(name)
            else:
                flags[flag.name] = (settings.model_fields[field_name], flag.kind, flag.help, [name])
    return [_option(flag, field, kind, help_text, owners) for flag, (field, kind, help_text, owners) in flags.items()]


class EngineCommand(TyperCommand):
    """A command whose engine flags come from the registry: the selected engine's, or all of them for ``--help``."""

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        selected = _selected(args)
        before = args[: args.index("--")] if "--" in args else args
        helping = any(arg in HELP_FLAGS for arg in before)
        names = list(ENGINE_NAMES) if helping or selected not in ENGINE_NAMES else [selected]
        base = [param for param in self.params if not hasattr(param, "kvsize_engine_flag")]
        self.params = [*base, *engine_options(names)]
        if not helping and selected in ENGINE_NAMES:
            self._refuse_foreign(ctx, args, selected)
        return super().parse_args(ctx, args)

    def _refuse_foreign(self, ctx: _click.Context, args: list[str], selected: str) -> None:
        """A flag of another engine, named with the engines that take it (loads the other engines only then)."""
        known = {opt for param in self.params for opt in (*param.opts, *param.secondary_opts)}
        for arg in args:
            if arg == "--":
                return
            flag = arg.split("=", 1)[0]
            if not flag.startswith("--") or flag in known:
                continue
            for option in engine_options([name for name in ENGINE_NAMES if name != selected]):
                if flag in (*option.opts, *option.secondary_opts):
                    owners = option.help.split(":", 1)[0].removeprefix("--engine ") if option.help else "another engine"
                    raise _click.exceptions.UsageError(f"{flag} applies to --engine {owners}, not {selected}", ctx)

    def invoke(self, ctx: _click.Context) -> Any:
        given: dict[str, Any] = {}
        for param in self.params:
            flag = getattr(param, "kvsize_engine_flag", None)
            if flag is not None and param.name is not None:
                value = ctx.params.pop(param.name, None)
                if value is not None:
                    given[flag] = value
        ctx.meta[_META] = given
        return super().invoke(ctx)


def given_settings(engine: str) -> dict[str, Any]:
    """The settings of ``engine`` given on the command line, by field name, parsed (sizes to bytes, durations to
    seconds)."""
    from kvsize.units import parse_duration, parse_size

    given = _click.globals.get_current_context().meta.get(_META, {})
    settings = engine_for(engine).Settings
    out: dict[str, Any] = {}
    for field_name, flag in settings.FLAGS.items():
        if flag.name not in given:
            continue
        value = given[flag.name]
        if flag.kind == "size":
            value = parse_size(value, flag.name)
        elif flag.kind == "duration":
            value = parse_duration(value, flag.name)
        out[field_name] = value
    return out


def engine_settings(engine: Any) -> EngineSettings:
    """The selected engine's settings from its flags (only those given are set)."""
    from kvsize.engines.registry import settings_for
    from kvsize.errors import KvsizeError

    name = engine.value if isinstance(engine, Enum) else str(engine)
    try:
        return settings_for(name, **given_settings(name))
    except KvsizeError as error:
        flag = engine_for(name).Settings.FLAGS.get(error.field or "")
        if flag is None:
            raise
        # The setting named as its flag (`cpu_buffer_bytes` is --cpu-buffer), which the app writes as --flag.
        named = f"`{_param_name(flag.name)}`"
        raise type(error)(str(error).replace(f"`{error.field}`", named), field=_param_name(flag.name)) from None
