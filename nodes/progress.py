"""Progress, latent previews and interruption for ltx_core's hooks.

`StepProgress` is ltx_core's `callback(step, total, denoised)`: one ComfyUI progress bar over every step of every
pass, with a latent preview of the middle latent frame through core's LTXV latent format (the same colours as
core's LTX-Video previews; `--preview-method` decides whether there is one). `check_interrupted` is ltx_core's
`cancel()` hook: ComfyUI's `/interrupt` flag, checked before every step and after every decode chunk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import comfy.latent_formats
import comfy.model_management as mm
import comfy.utils
import latent_preview
import torch

logger = logging.getLogger(__name__)


def show_text(text: str, node_id: str | None) -> None:
    """`text` under the node in the browser (and in the log); the log line alone when there is no server."""
    logger.info("LTX-Video: %s", text)
    try:
        from server import PromptServer

        if node_id is not None and PromptServer.instance is not None:
            PromptServer.instance.send_progress_text(text, node_id)
    except (ImportError, AttributeError) as error:  # no server (in-process use): the log line is enough
        logger.debug("no progress text: %s", error)


def check_interrupted() -> None:
    """Raise ComfyUI's InterruptProcessingException if the user pressed Cancel (or POSTed /interrupt)."""
    mm.throw_exception_if_processing_interrupted()


class StepProgress:
    """Progress bar (steps of all passes) with latent previews; ltx_core calls it after every step."""

    def __init__(self, node_id: str | None = None, on_step: Callable[[int, int], None] | None = None):
        self.node_id = node_id
        self.on_step = on_step
        self.bar: comfy.utils.ProgressBar | None = None
        self.previewer = latent_preview.get_previewer(mm.get_torch_device(), comfy.latent_formats.LTXV())
        self.steps = 0

    def preview(self, denoised: torch.Tensor):
        if self.previewer is None:
            return None
        middle = denoised.shape[2] // 2
        frame = denoised[:1, :, middle:middle + 1].detach().float()
        try:
            return self.previewer.decode_latent_to_preview_image("JPEG", frame)
        except Exception as error:  # a preview must never stop a generation
            logger.debug("latent preview failed: %s", error)
            return None

    def __call__(self, step: int, total: int, denoised: torch.Tensor) -> None:
        if self.bar is None:
            self.bar = comfy.utils.ProgressBar(total, node_id=self.node_id)
        self.steps += 1
        self.bar.update_absolute(step + 1, total, self.preview(denoised))
        if self.on_step is not None:
            self.on_step(step, total)
