"""What the nodes' schemas share: the menu category, the inputs several nodes take (one factory each, so the same
input reads the same everywhere), and the `validate_inputs` answer for number widgets."""

from __future__ import annotations

from typing import Any

from ..ltx_core.arguments import is_number

CATEGORY = "LTX-Video 0.9.7"


def check_number(name: str, value: Any, low: float, high: float) -> bool | str:
    """`validate_inputs` answer for a number widget: True, or the sentence that refuses the prompt (HTTP 400).

    ComfyUI's own min/max check lets NaN through (every comparison with NaN is false) and is skipped for the
    inputs a node validates itself, so nodes that validate a number check its range here. `None` is what ComfyUI
    passes for a linked input: its value is not known yet and is checked when the node runs.
    """
    if value is None:
        return True
    if not is_number(value, low, high):
        return f"{name}={value!r} is not allowed (allowed: a number in {low:g}–{high:g})"
    return True
