"""First-block step cache: skip the deep blocks on steps where the first block barely changed.

Between nearby denoising steps the transformer's deep blocks often add almost the same residual. At each step the
first block runs; when its residual (output − input) differs from the one of the last fully computed step by less
than `threshold` (mean absolute difference over mean absolute value), the residual the remaining blocks added
then is reused instead of running them. Nothing is fitted per model. Each guidance branch (uncond, cond,
perturbed) keeps its own cache, since their predictions move differently; the first and last steps of a pass are
always computed, and at most `max_reuse` steps in a row reuse a cache, so errors cannot pile up unchecked.

A cache lives for one pass: the sampling `PassRunner` makes a new one for every pass (of every window of a long
video) and hands it to `denoise`, so nothing leaks between passes, windows or runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

DEFAULT_MAX_REUSE = 3

# first(x) → output of the first block; rest(h, rows) → output of the remaining blocks for those batch rows
FirstBlock = Callable[[torch.Tensor], torch.Tensor]
RemainingBlocks = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


def relative_change(new: torch.Tensor, old: torch.Tensor) -> float:
    """Mean |new − old| over mean |old|, in float32 (inf when `old` is all zeros)."""
    new, old = new.float(), old.float()
    scale = old.abs().mean().item()
    if scale == 0.0:
        return float("inf")
    return (new - old).abs().mean().item() / scale


@dataclass
class _BranchState:
    first_residual: torch.Tensor | None = None  # first block's residual at the last fully computed step
    rest_residual: torch.Tensor | None = None  # what the remaining blocks added at that step
    reused_in_a_row: int = 0


@dataclass
class StepCache:
    """The cache of one pass; `computed` / `reused` count forwards per branch (logged after the pass, read by tests
    and benchmarks)."""

    threshold: float
    num_steps: int
    max_reuse: int = DEFAULT_MAX_REUSE
    step: int = 0
    states: dict[str, _BranchState] = field(default_factory=dict)
    computed: dict[str, int] = field(default_factory=dict)
    reused: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.threshold >= 0:  # NaN too
            raise ValueError(f"step cache threshold={self.threshold} must be 0 (off) or more")
        if self.max_reuse < 1:
            raise ValueError(f"step cache max_reuse={self.max_reuse} must be at least 1")

    def at_step(self, step: int) -> None:
        self.step = step

    def may_reuse(self, branch: str) -> bool:
        state = self.states.get(branch)
        return (0 < self.step < self.num_steps - 1 and state is not None and state.first_residual is not None
                and state.reused_in_a_row < self.max_reuse)

    def for_branches(self, branches: Sequence[str], rows_per_branch: int) -> BranchCache:
        """The view the transformer uses for one forward whose batch holds `branches` one after another."""
        return BranchCache(self, tuple(branches), rows_per_branch)

    def _count(self, table: dict[str, int], branch: str) -> None:
        table[branch] = table.get(branch, 0) + 1


@dataclass
class BranchCache:
    """One forward's view of a `StepCache`: which batch rows belong to which guidance branch."""

    cache: StepCache
    branches: tuple[str, ...]
    rows_per_branch: int

    def run(self, x: torch.Tensor, first: FirstBlock, rest: RemainingBlocks) -> torch.Tensor:
        """The blocks' output for `x` `[B, N, D]`, running the remaining blocks only for branches that need it."""
        cache, n = self.cache, self.rows_per_branch
        hidden = first(x)
        out = torch.empty_like(hidden)
        compute: list[int] = []
        for index, branch in enumerate(self.branches):
            rows = slice(index * n, (index + 1) * n)
            residual = hidden[rows] - x[rows]
            state = cache.states.setdefault(branch, _BranchState())
            if cache.may_reuse(branch) and relative_change(residual, state.first_residual) < cache.threshold:
                out[rows] = hidden[rows] + state.rest_residual
                state.reused_in_a_row += 1
                cache._count(cache.reused, branch)
            else:
                state.first_residual = residual
                compute.append(index)
        if not compute:
            return out
        if len(compute) == len(self.branches):
            rows, computed = None, rest(hidden, None)
        else:
            rows = torch.cat([torch.arange(i * n, (i + 1) * n) for i in compute]).to(x.device)
            computed = rest(hidden[rows], rows)
        for position, index in enumerate(compute):
            branch, source = self.branches[index], slice(position * n, (position + 1) * n)
            target = slice(index * n, (index + 1) * n)
            out[target] = computed[source]
            state = cache.states[branch]
            state.rest_residual = computed[source] - hidden[target]
            state.reused_in_a_row = 0
            cache._count(cache.computed, branch)
        return out
