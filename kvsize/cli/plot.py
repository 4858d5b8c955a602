"""``--plot``: load time (and load + recompute) against chunk size, one line per backend; for a replay, hit rate
against storage capacity and requests per second over time.

matplotlib is an optional extra: ``pip install 'kvsize[plot]'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kvsize.errors import KvsizeError
from kvsize.plan import Sweep
from kvsize.storage import StoragePlan


def plot_plans(sweep: Sweep, plans: list[StoragePlan], path: Path) -> None:
    if path.suffix.lower() not in (".png", ".svg"):
        raise KvsizeError(f"--plot {path}: give a .png or .svg file name")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise KvsizeError("--plot needs matplotlib: pip install 'kvsize[plot]'") from None

    chunks = [row.chunk_tokens for row in sweep.rows]
    figure, axis = plt.subplots(figsize=(10, 4.5), dpi=120)
    for plan in plans:
        loads = [t.load_seconds for t in plan.timings]
        (line,) = axis.plot(chunks, loads, marker="o", label=f"{plan.backend.name}: load")
        costs = [t.cost_seconds for t in plan.timings if t.cost_seconds is not None]
        if len(costs) == len(chunks):
            axis.plot(chunks, costs, linestyle="--", color=line.get_color(), label=f"{plan.backend.name}: load + recompute")
        if plan.full_recompute_seconds is not None:
            axis.axhline(
                plan.full_recompute_seconds,
                color=line.get_color(),
                linewidth=1,
                linestyle="-.",
                label=f"{plan.backend.name}: recompute every prompt ({plan.full_recompute_seconds:.2f} s)",
            )
        if plan.recommendation:
            picked = next(t for t in plan.timings if t.chunk_tokens == plan.recommendation.chunk_tokens)
            axis.scatter(
                [picked.chunk_tokens], [picked.load_seconds], s=160, facecolors="none", edgecolors=line.get_color(), linewidths=2
            )
    timeout = plans[0].options.blocking_timeout_s
    axis.axhline(timeout, color="red", linewidth=1, linestyle=":", label=f"blocking timeout {timeout:g} s")
    axis.set_xscale("log", base=2)
    values = [t.load_seconds for plan in plans for t in plan.timings if t.load_seconds > 0] + [timeout]
    values += [plan.full_recompute_seconds for plan in plans if plan.full_recompute_seconds]
    if max(values) / min(values) > 20:  # backends orders of magnitude apart: keep each line readable
        from matplotlib.ticker import FuncFormatter

        axis.set_yscale("log")
        plain = FuncFormatter(lambda value, _position: f"{value:g}")
        axis.yaxis.set_major_formatter(plain)
        axis.yaxis.set_minor_formatter(plain)
    axis.set_xticks(chunks, [f"{c:,}" for c in chunks])
    axis.set_xlabel("chunk size (tokens)")
    axis.set_ylabel("seconds")
    layout = sweep.layout
    prompts = plans[0].options.concurrent_prompts
    axis.set_title(
        f"{sweep.spec.name}, TP {layout.options.tp}, {sweep.prompt_tokens:,}-token prompt, {prompts} at once", fontsize=10
    )
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    figure.tight_layout()
    try:
        figure.savefig(path)
    except OSError as error:
        raise KvsizeError(f"cannot write --plot {path}: {error.strerror}") from None
    finally:
        plt.close(figure)


def plot_replay(result: Any, path: Path) -> None:
    """Two panels: the share of unlimited storage's hits against storage capacity, per chunk size; and storage
    requests per second over the trace's clock, for the recommended chunk size (else the first)."""
    if path.suffix.lower() not in (".png", ".svg"):
        raise KvsizeError(f"--plot {path}: give a .png or .svg file name")
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=120)
    for chunk, points in sorted(result.curves.items()):
        if points:
            left.plot([b / 2**40 for b, _ in points], [share * 100 for _, share in points], label=f"chunk {chunk:,}")
    left.set_xlabel("storage capacity (TiB, LRU)")
    left.set_ylabel("% of unlimited storage's hit tokens")
    left.axhline(90, color="grey", linewidth=0.8, linestyle=":")
    left.axhline(99, color="grey", linewidth=0.8, linestyle=":")
    left.grid(True, alpha=0.3)
    left.legend(fontsize=8)
    chunk = result.recommended_chunk_tokens or (result.rows[0].chunk_tokens if result.rows else None)
    series = result.series.get(chunk, {})
    seconds = sorted(series)
    right.plot(seconds, [series[s][0] for s in seconds], linewidth=0.8, label="reads/s")
    right.plot(seconds, [series[s][1] for s in seconds], linewidth=0.8, label="writes/s")
    limit = result.rows[0].read_request_limit if result.rows else None
    if limit:
        right.axhline(limit, color="red", linewidth=1, linestyle=":", label=f"published read cap {limit:,.0f}/s")
    right.set_xlabel("second of the trace")
    right.set_ylabel(f"storage requests per second (chunk {chunk:,})" if chunk else "storage requests per second")
    right.grid(True, alpha=0.3)
    right.legend(fontsize=8)
    figure.suptitle(f"{result.model}: {result.trace.requests:,} requests, engine {result.offload_engine}", fontsize=10)
    figure.tight_layout()
    _save(plt, figure, path)


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise KvsizeError("--plot needs matplotlib: pip install 'kvsize[plot]'") from None
    return plt


def _save(plt: Any, figure: Any, path: Path) -> None:
    try:
        figure.savefig(path)
    except OSError as error:
        raise KvsizeError(f"cannot write --plot {path}: {error.strerror}") from None
    finally:
        plt.close(figure)
