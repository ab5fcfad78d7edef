"""One line per phase and sampling step of a generation, for listeners such as the HTTP API's request logs.

The nodes call `emit("pass 1: step 3/8")`; `add_listener(fn)` receives every line (on ComfyUI's worker thread).
No ComfyUI imports: the API registers its listener from the pack's `__init__`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

_listeners: list[Callable[[str], None]] = []


def add_listener(listener: Callable[[str], None]) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def emit(message: str) -> None:
    logger.debug("%s", message)
    for listener in list(_listeners):
        try:
            listener(message)
        except Exception:  # a listener must never stop a generation
            logger.exception("run log listener failed")


class PassLog:
    """Names the phases from ltx_core's hooks: `on_model` ("vae" / "transformer" / "upsampler") and steps."""

    def __init__(self, on_model: Callable[[str], None] | None = None):
        self.on_model = on_model
        self.passes = 0

    def model(self, name: str) -> None:
        if name == "transformer":
            self.passes += 1
            emit(f"pass {self.passes}: denoising")
        elif name == "upsampler":
            emit("upsample: 2× latent upsampler")
        elif name == "vae" and self.passes == 0:
            emit("encode: conditioning media (VAE)")
        if self.on_model is not None:
            self.on_model(name)

    def step(self, step: int, total: int) -> None:
        emit(f"pass {max(self.passes, 1)}: step {step + 1}/{total}")
