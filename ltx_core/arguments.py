"""What counts as a whole number and as a number in an argument, for every check that words its own refusal.

Python's `bool` is an `int` (`isinstance(True, int)`), so a JSON `true` or a ticked box would pass for 1, and
`NaN` passes no comparison, so `not low <= nan <= high` must be asked the right way round. Callers keep their own
sentence (the field, the value, what is allowed); these only answer yes or no. Plain Python, for `nodes/` too.
"""

from __future__ import annotations

import math
from typing import Any


def is_whole(value: Any, low: int | None = None, high: int | None = None) -> bool:
    """An `int` that is not a bool, at least `low` and at most `high` when they are given."""
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def is_number(value: Any, low: float | None = None, high: float | None = None, *,
              finite: bool = True) -> bool:
    """An `int` or `float` that is not a bool, finite unless `finite=False`, in `low`–`high` when they are given."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    if finite and not math.isfinite(value):
        return False
    return (low is None or value >= low) and (high is None or value <= high)
