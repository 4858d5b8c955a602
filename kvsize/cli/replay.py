"""``kvsize replay MODEL TRACE``: parse the flags, call ``kvsize.replay``, render (a progress bar on a terminal)."""

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from kvsize.cli import options as o
from kvsize.cli.app import app, warn
from kvsize.cli.engine_flags import EngineCommand, engine_settings

TIERS = "Tiers below the GPU"
WORKLOAD = "Workload without a trace (generated)"
Trace = Annotated[
    Path | None,
    typer.Argument(
        help="A request trace: JSONL in Mooncake's format (timestamp, input_length, output_length, hash_ids). "
        "Without one, a trace is generated from the workload flags."
    ),
]
Size = Annotated[str | None, typer.Option(help="Bytes, e.g. 64GiB.")]


def _option(*names: str, help_text: str, panel: str) -> Any:
    return typer.Option(*names, help=help_text, rich_help_panel=panel)


class Progress:
    """A progress bar on stderr, on a terminal only, once the replay has taken more than a second."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.bar: Any = None
        self.task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            if time.monotonic() - self.start < 1 or not sys.stderr.isatty():
                return
            from rich.console import Console
            from rich.progress import Progress as Bar

            self.bar = Bar(console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("replaying the trace", total=max(1, total))
        self.bar.update(self.task, completed=done, total=max(1, total))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _lengths(text: str | None) -> Any:
    """``8k`` or ``2k:3,8k:1``: lengths with weights."""
    from kvsize.errors import KvsizeError, finite
    from kvsize.units import parse_count

    if text is None:
        return None
    pairs = []
    for item in text.split(",")[:65]:
        length, _, weight = item.partition(":")
        try:
            share = float(weight) if weight else 1.0
        except ValueError:
            raise KvsizeError(f"--prompt-lengths: weight {weight!r} is not a number; write 2k:3,8k:1") from None
        pairs.append((parse_count(length, "--prompt-lengths"), finite(share, "--prompt-lengths weight", low=0, low_open=True)))
    return pairs


def _tokens(text: str | None, flag: str) -> int | None:
    """A token count that may be 0."""
    from kvsize.units import parse_count

    if text is None:
        return None
    return 0 if text.strip() == "0" else parse_count(text, flag)


def _trace(trace: Path | None, given: dict[str, Any], emit: Path | None, block: int) -> Any:
    """The trace file, or the generated trace (written to ``emit`` first when asked)."""
    from kvsize.errors import KvsizeError
    from kvsize.traces.synthetic import SyntheticTrace, write_trace

    flags = {name: value for name, value in given.items() if value is not None}
    if trace is not None:
        if flags or emit is not None:
            name = next(iter(flags), "emit_trace")
            raise KvsizeError(f"`{name}` generates a trace: give TRACE or the workload flags, not both", field=name)
        return trace
    if not flags:
        raise KvsizeError("give a TRACE file, or the workload flags to generate one (e.g. --requests 1000 --rate 2)")
    generated = SyntheticTrace(**flags)
    if emit is not None:
        write_trace(generated, emit, block)
    return generated


@app.command("replay", cls=EngineCommand)
def replay(
    model: o.Model,
    trace: Trace = None,
    tp: o.Tp = 1,
    pp: o.Pp = 1,
    kv_dtype: o.KvDtype = o.KvDtypeChoice.auto,
    engine: o.Engine = o.DEFAULT_ENGINE_CHOICE,
    chunk_sizes: o.ChunkSizes = None,
    trace_block: Annotated[int, typer.Option("--trace-block", help="Tokens per block of the trace's hash_ids.")] = 512,
    cpu_tier: Annotated[
        str | None,
        _option(
            "--cpu-tier",
            help_text="A CPU tier, e.g. 64GiB (LMCache max_local_cpu_size per rank; vLLM cpu_bytes_to_use).",
            panel=TIERS,
        ),
    ] = None,
    storage_capacity: Annotated[
        str | None,
        _option(
            "--storage", "--storage-capacity", help_text="Storage capacity, e.g. 10TiB (LRU); default unlimited.", panel=TIERS
        ),
    ] = None,
    gpu: o.Gpu = None,
    gpu_memory: o.GpuMemory = None,
    gpu_memory_utilization: o.GpuMemoryUtilization = None,
    kv_cache_memory_bytes: o.KvCacheMemoryBytes = None,
    backend: Annotated[
        str | None,
        typer.Option("--backend", "-b", help="Time every request's load on a preset or profile YAML.", rich_help_panel=o.TIME),
    ] = None,
    latency: o.Latency = None,
    stream_bandwidth: o.StreamBandwidth = None,
    aggregate_bandwidth: o.AggregateBandwidth = None,
    concurrency: o.Concurrency = None,
    max_requests_per_s: o.MaxRequests = None,
    part_size: o.PartSize = None,
    concurrent_prompts: o.ConcurrentPrompts = 1,
    host_cpus: o.HostCpus = None,
    prefill_tps: o.PrefillTps = None,
    mfu: o.Mfu = 0.4,
    requests: Annotated[
        int | None, _option("--requests", help_text="Requests to generate (default 1000).", panel=WORKLOAD)
    ] = None,
    rate: Annotated[float | None, _option("--rate", help_text="Requests per second (default 1).", panel=WORKLOAD)] = None,
    prompt_lengths: Annotated[
        str | None,
        _option("--prompt-lengths", help_text="Each turn's new tokens: 8k, or with weights 2k:3,8k:1.", panel=WORKLOAD),
    ] = None,
    shared_prefix: Annotated[
        str | None,
        _option("--shared-prefix", help_text="Tokens every conversation starts with (a system prompt).", panel=WORKLOAD),
    ] = None,
    turns: Annotated[int | None, _option("--turns", help_text="Requests per conversation (default 1).", panel=WORKLOAD)] = None,
    output_tokens: Annotated[
        str | None,
        _option("--output-tokens", help_text="Tokens of each answer, carried by the next turn (default 500).", panel=WORKLOAD),
    ] = None,
    seed: Annotated[int | None, _option("--seed", help_text="The generator's seed (default 0).", panel=WORKLOAD)] = None,
    emit_trace: Annotated[
        Path | None, _option("--emit-trace", help_text="Write the generated trace to this new file (JSONL).", panel=WORKLOAD)
    ] = None,
    output: Annotated[o.ReportFormat, typer.Option("--format", "-f", help="Output format.")] = o.ReportFormat.table,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Draw hit rate against storage capacity and requests/s over time into FILE.png or .svg."),
    ] = None,
    catalog: o.Catalog = None,
    revision: o.Revision = None,
    offline: o.Offline = False,
    vllm_version: o.VllmVersion = "0.33.0",
) -> None:
    """Replay a request trace over the tiers (GPU memory, CPU, storage) at each chunk size: hits per tier, objects and
    bytes per second, the storage a hit rate needs; with --backend, load times and a pick."""
    from kvsize.calls.args import Workload
    from kvsize.calls.replaying import Replay
    from kvsize.calls.replaying import replay as replay_call
    from kvsize.engines.base import Serving
    from kvsize.units import parse_int_list, parse_size

    generated = {
        "requests": requests,
        "rate": rate,
        "prompt_lengths": _lengths(prompt_lengths),
        "shared_prefix": _tokens(shared_prefix, "--shared-prefix"),
        "turns": turns,
        "output_tokens": _tokens(output_tokens, "--output-tokens"),
        "seed": seed,
    }
    bar = Progress()
    try:
        result = replay_call(
            model,
            _trace(trace, generated, emit_trace, trace_block),
            serving=Serving(tp=tp, pp=pp, kv_dtype=kv_dtype.value, vllm_version=vllm_version),
            engine=engine_settings(engine),
            workload=Workload(concurrent_prompts=concurrent_prompts, prefill_tps=prefill_tps, mfu=mfu, host_cpus=host_cpus),
            storage=o.storage(
                [backend] if backend else None,
                latency,
                stream_bandwidth,
                aggregate_bandwidth,
                concurrency,
                max_requests_per_s,
                part_size,
            ),
            gpu=o.gpu(gpu, gpu_memory, gpu_memory_utilization, kv_cache_memory_bytes),
            options=Replay(
                trace_block=trace_block,
                cpu_tier=parse_size(cpu_tier, "--cpu-tier") if cpu_tier else None,
                storage_capacity=parse_size(storage_capacity, "--storage") if storage_capacity else None,
            ),
            chunk_sizes=parse_int_list(chunk_sizes, "--chunk-sizes") if chunk_sizes is not None else None,
            catalog=catalog,
            revision=revision,
            offline=offline,
            progress=bar,
        )
    finally:
        bar.close()
    _render(result, output, plot)


def _render(result: Any, output: o.ReportFormat, plot: Path | None) -> None:
    from kvsize.cli.replay_render import print_replay, replay_markdown

    if plot is not None:
        from kvsize.cli.plot import plot_replay

        plot_replay(result, plot)
    warn(*result.warnings)
    if output is o.ReportFormat.json:
        sys.stdout.write(json.dumps(result.model_dump(mode="json"), indent=2) + "\n")
    elif output is o.ReportFormat.markdown:
        sys.stdout.write(replay_markdown(result))
    else:
        print_replay(result)
