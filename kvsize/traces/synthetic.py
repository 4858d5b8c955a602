"""A trace for users with none: conversations of several turns over a shared system prompt, arriving at a rate,
generated in the trace format (seeded: the same arguments give the same trace, line for line).

- Conversations start as a Poisson process of ``rate / turns`` per second, so requests arrive at about ``rate``;
  a conversation's next turn comes an exponential gap later, of mean ``turns / rate`` seconds.
- Turn 1's prompt is the shared prefix plus a user message whose length is drawn from ``prompt_lengths`` (one
  length, or lengths with weights); turn k's prompt is turn k - 1's prompt, its answer (``output_tokens``) and a new
  message drawn the same way.
- Blocks (``trace_block`` tokens) get chained hashes as Mooncake's do: a block inside the shared prefix is the same in
  every conversation; a whole block past it is its conversation's, the same in every later turn; a partial last
  block is that prompt's alone.
"""

from __future__ import annotations

import heapq
import json
import math
import random
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field, field_validator

from kvsize.engines.options import Checked
from kvsize.errors import KvsizeError, shown
from kvsize.traces.reader import MAX_TOKENS, Request

MAX_REQUESTS = 10_000_000
"""Most requests generated (a conversation index and a block index fit the hashes' 53 bits)."""
MAX_LENGTHS = 64


class SyntheticTrace(Checked):
    """A generated workload: ``kvsize.SyntheticTrace(requests=1000, rate=2.0, prompt_lengths=((2000, 3), (8000, 1)),
    shared_prefix=1000, turns=4)``."""

    requests: int = Field(default=1000, ge=1, le=MAX_REQUESTS)
    """Requests in the trace."""
    rate: float = Field(default=1.0, gt=0, le=1e6)
    """Requests per second, on average."""
    prompt_lengths: tuple[tuple[int, float], ...] = ((8000, 1.0),)
    """Each turn's new message: ``(tokens, weight)`` pairs, drawn with those weights."""
    shared_prefix: int = Field(default=0, ge=0, le=MAX_TOKENS, json_schema_extra={"unit": "tokens"})
    """Tokens every conversation starts with (a system prompt)."""
    turns: int = Field(default=1, ge=1, le=10_000)
    """Requests per conversation."""
    output_tokens: int = Field(default=500, ge=0, le=MAX_TOKENS, json_schema_extra={"unit": "tokens"})
    """Tokens of each answer, which the next turn's prompt carries."""
    seed: int = Field(default=0, ge=0, le=2**63)
    """The random generator's seed."""

    @field_validator("prompt_lengths", mode="before")
    @classmethod
    def _lengths(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            value = ((value, 1.0),)
        if not isinstance(value, (list, tuple)) or not value or len(value) > MAX_LENGTHS:
            raise KvsizeError(
                f"`prompt_lengths` must be 1 to {MAX_LENGTHS} (tokens, weight) pairs, got {shown(value)}", field="prompt_lengths"
            )
        pairs = []
        for item in value:
            tokens, weight = (item, 1.0) if isinstance(item, int) and not isinstance(item, bool) else tuple(item)
            if isinstance(tokens, bool) or not isinstance(tokens, int) or not 1 <= tokens <= MAX_TOKENS:
                raise KvsizeError(f"`prompt_lengths`: a length must be 1 to {MAX_TOKENS:,} tokens, got {shown(tokens)}")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
                raise KvsizeError(f"`prompt_lengths`: a weight must be a finite number more than 0, got {shown(weight)}")
            pairs.append((tokens, float(weight)))
        return tuple(pairs)

    def generate(self, trace_block: int = 512) -> Iterator[Request]:
        """The trace's requests in time order (ties in the order they were drawn), without holding the trace."""
        rng = random.Random(self.seed)
        lengths, weights = [tokens for tokens, _ in self.prompt_lengths], [weight for _, weight in self.prompt_lengths]
        conversations, mean_gap = -(-self.requests // self.turns), self.turns / self.rate
        pending: list[tuple[float, int, int, int, int]] = []  # (ms, draw order, conversation, turn, input length)
        started, drawn, number, next_start = 0, 0, 0, 0.0
        while number < self.requests:
            if started < conversations and (not pending or next_start * 1000 <= pending[0][0]):
                length = min(MAX_TOKENS, self.shared_prefix + rng.choices(lengths, weights)[0])
                heapq.heappush(pending, (round(next_start * 1000, 3), drawn, started, 0, length))
                started, drawn = started + 1, drawn + 1
                next_start += rng.expovariate(1 / mean_gap)
                continue
            when, _, conversation, turn, length = heapq.heappop(pending)
            number += 1
            yield Request(when, length, self.output_tokens, self._hashes(number, conversation, length, trace_block), number)
            if turn + 1 < self.turns and conversation * self.turns + turn + 1 < self.requests:
                gap = rng.expovariate(1 / mean_gap) * 1000
                grown = min(MAX_TOKENS, length + self.output_tokens + rng.choices(lengths, weights)[0])
                heapq.heappush(pending, (round(when + gap, 3), drawn, conversation, turn + 1, grown))
                drawn += 1

    def _hashes(self, number: int, conversation: int, length: int, trace_block: int) -> list[int]:
        """Chained block hashes as whole numbers below 2**53: a block inside the shared prefix is ``3k``, the same in
        every conversation; a conversation's whole block ``3 (c x 2**21 + k) + 1``, the same in its later turns; a
        prompt's partial last block ``3 n + 2``, its own."""
        blocks, hashes = -(-length // trace_block), []
        for k in range(blocks):
            end = (k + 1) * trace_block
            if end <= self.shared_prefix:
                hashes.append(3 * k)
            elif end <= length:
                hashes.append(3 * ((conversation << 21) + k) + 1)
            else:
                hashes.append(3 * number + 2)
        return hashes

    def lines(self, trace_block: int = 512) -> Iterator[str]:
        """The trace as JSON lines, in the format ``kvsize replay`` reads."""
        for request in self.generate(trace_block):
            timestamp = int(request.timestamp_ms) if request.timestamp_ms.is_integer() else request.timestamp_ms
            yield json.dumps(
                {
                    "timestamp": timestamp,
                    "input_length": request.input_length,
                    "output_length": request.output_length,
                    "hash_ids": request.hash_ids,
                }
            )


def write_trace(trace: SyntheticTrace, path: Path, trace_block: int = 512) -> int:
    """Write ``trace`` to ``path`` (a new file: an existing one is refused), returning the requests written."""
    try:
        with path.open("x", encoding="utf-8") as handle:
            count = 0
            for line in trace.lines(trace_block):
                handle.write(line + "\n")
                count += 1
    except FileExistsError:
        raise KvsizeError(f"`emit_trace` {path} exists; give a new file name", field="emit_trace") from None
    except OSError as error:
        raise KvsizeError(f"cannot write `emit_trace` {path}: {error.strerror or error}", field="emit_trace") from None
    return count
