"""Long videos: the recipe's passes run window by window, each window continuing the end of the one before.

Window k+1 is conditioned (strength 1, frame 0) on the last `overlap/8` latent frames of window k, taken straight
from window k's latents at each pass's size (no decode and re-encode: that would add a VAE round trip and a CRF
compression at every seam, and cost a VAE encode per window). Every window after the first is matched to the
first window's per-channel statistics (AdaIN, `temporal_adain_factor`) against the slow drift in colour and
contrast, and its overlap is cross-faded into the video so there is no seam. Finished windows wait on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..arguments import is_number
from ..decoding import VideoLatents
from ..models.grid import FRAMES_PER_LATENT
from ..sampling import Callback, Condition, MediaItems, ModelHook, PassRunner, adain, check_guide_start, prepare
from .plan import (
    DEFAULT_OVERLAP_FRAMES,
    DEFAULT_WINDOW_FRAMES,
    Window,
    WindowPlan,
    plan_windows,
    route_conditions,
    window_prompts,
)

DEFAULT_TEMPORAL_ADAIN_FACTOR = 0.5
# on_window(index, count) before each window runs (0-based)
WindowHook = Callable[[int, int], None]
Tensors = torch.Tensor | Sequence[torch.Tensor]


def _as_list(value: Tensors) -> list[torch.Tensor]:
    return [value] if torch.is_tensor(value) else list(value)


def _check_factor(factor: float) -> None:
    if not is_number(factor, 0.0, 1.0):
        raise ValueError(f"temporal_adain_factor={factor!r} is not allowed (allowed: 0–1; 0 = off, 1 = the first "
                         f"window's statistics exactly)")


def _check_videos(conditions: Sequence[Condition]) -> None:
    for index, item in enumerate(conditions):
        if item.guide:
            check_guide_start(item.start_frame, item.media.shape[0], f"conditions[{index}] (a guide)")
        elif item.media.ndim == 4 and item.media.shape[0] > 1 and item.start_frame % FRAMES_PER_LATENT:
            raise ValueError(f"conditions[{index}]: a video after frame 0 must start at a multiple of 8, not "
                             f"{item.start_frame}")


def cross_fade(video: torch.Tensor, window: Window, latents: torch.Tensor) -> None:
    """Write a window's latents into the whole video's, fading linearly from the previous window over the overlap."""
    start, overlap = window.start, window.overlap
    if overlap:
        weights = torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)
        previous = video[:, :, start:start + overlap].float()
        faded = torch.lerp(previous, latents[:, :, :overlap].float(), weights[None, None, :, None, None])
        video[:, :, start:start + overlap] = faded.to(video.dtype)
    video[:, :, start + overlap:start + window.length] = latents[:, :, overlap:]


class _WindowSampler:
    """What the windows of one long video share, and the state carried from one window to the next."""

    def __init__(self, plan: WindowPlan, runners: list[PassRunner], passes: list[list], shapes: list[list[tuple]],
                 settings: dict, upsampler, adain_factor: float, device: torch.device):
        self.plan, self.runners, self.passes, self.shapes = plan, runners, passes, shapes
        self.settings, self.upsampler, self.adain_factor, self.device = settings, upsampler, adain_factor, device
        self.references: list[torch.Tensor] = []
        self.tails: list[torch.Tensor] = []

    def _settle(self, window: Window, pass_index: int, latents: torch.Tensor) -> torch.Tensor:
        """AdaIN to the first window's statistics of this pass; keep the end for the next window."""
        if window.index == 0:
            self.references.append(latents.cpu())
        elif self.adain_factor:
            latents = adain(latents, self.references[pass_index].to(latents.device), self.adain_factor)
        overlap = self.plan.overlap_frames // FRAMES_PER_LATENT
        if pass_index < len(self.tails):
            self.tails[pass_index] = latents[:, :, -overlap:].cpu()
        else:
            self.tails.append(latents[:, :, -overlap:].cpu())
        return latents

    def _carried(self, window: Window, pass_index: int) -> list[tuple[torch.Tensor, int, float]]:
        if not window.overlap:
            return []
        return [(self.tails[pass_index].to(self.device), 0, 1.0)]

    def run(self, window: Window, media: MediaItems) -> torch.Tensor:
        """Sample one window; returns its last pass's latents (AdaIN applied)."""
        runner, plans, shapes = self.runners[window.index], self.passes[window.index], self.shapes[window.index]
        carried = [self._carried(window, index) for index in range(len(plans))]
        latents = runner.run_pass(plans[0], shapes[0], media.conditions, latent_items=carried[0],
                                  guide_items=media.guides)
        latents = self._settle(window, 0, latents)
        if len(plans) > 1:
            upsampled = runner.upsample(self.upsampler, latents, self.settings["adain_factor"])
            latents = runner.run_pass(plans[1], shapes[1], media.conditions, init_latents=upsampled,
                                      latent_items=carried[1], guide_items=media.guides)
            latents = self._settle(window, 1, latents)
        return latents


def sample_long_video(checkpoint, *, context: Tensors, context_mask: Tensors, negative_context: torch.Tensor,
                      negative_context_mask: torch.Tensor, width: int, height: int, num_frames: int,
                      frame_rate: float, seed: int, recipe: str | Mapping[str, Any] = "0.9.7-dev",
                      steps: int | None = None, conditions: Sequence[Condition] = (), upsampler=None,
                      window_frames: int = DEFAULT_WINDOW_FRAMES, overlap_frames: int = DEFAULT_OVERLAP_FRAMES,
                      temporal_adain_factor: float = DEFAULT_TEMPORAL_ADAIN_FACTOR,
                      callback: Callback | None = None, cancel: Callable[[], None] | None = None,
                      rng: str = "default", device: torch.device | None = None,
                      on_model: ModelHook | None = None, on_window: WindowHook | None = None,
                      **overrides) -> VideoLatents:
    """`sample_video` for any length: overlapping windows of `window_frames` (8k+1) sharing `overlap_frames` (8k).

    `context` / `context_mask` are one prompt or a list, one per window (the last repeats; more prompts than
    windows is an error). `conditions` use frames of the whole video. `callback(step, total, latents)` counts the
    steps of all windows; `on_window(index, count)` runs before each. A video that fits one window gives exactly
    `sample_video`'s latents. The latents come back on the CPU.
    """
    plan = plan_windows(num_frames, window_frames, overlap_frames)
    contexts, masks = _as_list(context), _as_list(context_mask)
    if len(contexts) != len(masks):
        raise ValueError(f"{len(contexts)} prompt(s) but {len(masks)} mask(s): give one mask per prompt")
    prompt_of = window_prompts(plan, len(contexts))
    _check_factor(temporal_adain_factor)
    _check_videos(conditions)
    prepared = prepare(checkpoint, contexts=contexts, context_masks=masks, negative_context=negative_context,
                       negative_context_mask=negative_context_mask, width=width, height=height,
                       num_frames=num_frames, frame_rate=frame_rate, seed=seed, recipe=recipe, steps=steps,
                       conditions=conditions, upsampler=upsampler, rng=rng, device=device, overrides=overrides,
                       part_frames=[window.num_frames for window in plan.windows])
    settings, shapes, device = prepared.settings, prepared.shapes, prepared.device
    routed = route_conditions(plan, conditions)
    runners, plans = [], []
    for window, window_shapes in zip(plan.windows, shapes):
        runner = PassRunner(checkpoint, prepared.prompts[prompt_of[window.index]], settings, frame_rate,
                            prepared.randomness, device, cancel=cancel, on_model=on_model)
        plans.append(runner.plan(list(zip(prepared.pass_settings, window_shapes))))
        runners.append(runner)
    total = sum(runner.total_steps for runner in runners)
    done = 0
    for runner, window_plans in zip(runners, plans):  # one step count over all windows
        runner.step_offset, runner.total_steps, runner.callback = done, total, callback
        done += sum(len(p.timesteps) for p in window_plans)
    sampler = _WindowSampler(plan, runners, plans, shapes, settings, upsampler, float(temporal_adain_factor), device)
    video: torch.Tensor | None = None
    with torch.no_grad():
        for window in plan.windows:
            if on_window is not None:
                on_window(window.index, len(plan.windows))
            media_items = prepared.media_items(routed[window.index], width, height, window.num_frames)
            latents = sampler.run(window, media_items).cpu()
            if video is None:
                video = latents.new_empty(*latents.shape[:2], plan.latent_frames, *latents.shape[3:])
            cross_fade(video, window, latents)
    return prepared.video_latents(video, width=width, height=height, num_frames=num_frames, frame_rate=frame_rate,
                                  seed=seed, rng=rng)
