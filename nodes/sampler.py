"""The sampler node: encoded prompts (+ conditions, upsampler, guidance settings) → LTX-Video latents.

`sample()` is shared with the one-node text-to-video. It adds no math of its own: it maps the node inputs to
`ltx_core.sample_long_video` (same result as `ltx_core.generate` on the same models and inputs when the video fits
one window) and plugs in the host: ComfyUI's memory management (each model loaded with an estimate right before
it is used), the progress bar with latent previews ("window k of n" under the node for long videos), and
interruption before every step.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import comfy.model_management as mm
from comfy_api.latest import io

from .. import ltx_core
from ..hosted import DEFAULT_STEPS
from ..ltx_core.models.grid import PIXELS_PER_LATENT
from ..ltx_core.sampling import check_recipe, refining_recipe, resolve_recipe
from ..ltx_core.windows import plan_windows
from .conditioning import extra_latent_frames, has_guide, resolve_conditions
from .inputs import (
    CATEGORY,
    check_number,
    conditions_input,
    encoded_prompt_inputs,
    guidance_input,
    hidden_unique_id,
    model_input,
    recipe_input,
    seed_input,
    size_inputs,
    step_cache_input,
    steps_input,
    upsampler_input,
    vae_input,
    windows_input,
)
from .long_video import WindowProgress, window_settings
from .lora import warn_unguided_ic_loras
from .memory import generation_loads
from .progress import StepProgress, check_interrupted, show_text
from .ranges import MAX_FRAME_RATE, MAX_FRAMES, MAX_SIZE, MAX_STEPS, MIN_FRAME_RATE, MIN_FRAMES, MIN_SIZE, MIN_STEPS
from .recipe_choices import AUTO_RECIPE, RECIPE_OPTIONS, UPSAMPLER_FILE, RecipeChoice, chosen_recipe
from .run_log import PassLog
from .sockets import LTXModel, LTXUpsampler, LTXVae, require_vae
from .text import prompt_context, prompt_contexts

logger = logging.getLogger(__name__)

LATENT_KEY = "ltx097"
"""Key of the `ltx_core.VideoLatents` in our LATENT dicts (the decode node crops with it)."""


def recipe_overrides(choice: RecipeChoice, guidance: dict | None, step_cache: float = 0.0) -> dict:
    """Guidance settings (and the step cache input) → `sample_video` overrides for this recipe (a base recipe reads
    `first_pass` as its pass)."""
    if guidance is not None and not isinstance(guidance, Mapping):
        raise ValueError(f"guidance={guidance!r} is not allowed (allowed: a dict of recipe settings, as the "
                         f"Guidance Settings node makes)")
    overrides = dict(guidance or {})
    if step_cache:
        overrides["step_cache_threshold"] = float(step_cache)
    if choice.multi_scale:
        return overrides
    first, second = overrides.pop("first_pass", None), overrides.pop("second_pass", None)
    if second and second != first:
        logger.warning("the %s recipe has one pass; the guidance settings for a second pass are not used",
                       choice.label)
    overrides.update(first or {})
    return overrides


def recipe_models(choice: RecipeChoice, steps: int | None, upsampler: LTXUpsampler | None
                  ) -> tuple[int | None, LTXUpsampler | None]:
    """The steps and upsampler the recipe uses: a multi-scale recipe needs the upsampler, a single-scale one leaves
    it out; a recipe with fixed timesteps leaves `steps` out."""
    if steps is not None and choice.fixed_steps:
        logger.info("the %s recipe runs fixed timesteps; steps=%d is not used", choice.label, steps)
        steps = None
    if choice.multi_scale and upsampler is None:
        raise ValueError(f"the {choice.label} recipe refines upsampled latents in a second pass and needs the "
                         f"spatial latent upsampler: put {UPSAMPLER_FILE} in models/latent_upscale_models and "
                         "connect an LTX-Video 0.9.7 Latent Upsampler Loader to the upsampler input (or choose a "
                         "single-scale recipe)")
    if not choice.multi_scale and upsampler is not None:
        logger.info("the %s recipe is single-scale; the upsampler is not used", choice.label)
        upsampler = None
    return steps, upsampler


def used_recipe(model: LTXModel, label: str, node_id: str | None) -> RecipeChoice:
    """The recipe `label` names (`auto`: the one the model's checkpoint was released with), shown under the node."""
    loras = [entry["path"] for entry in model.extra.get("loras", [])]
    choice, sentence = chosen_recipe(label, model.path, model.config, loras)
    show_text(sentence, node_id)
    return choice


def check_video_size(width: int, height: int, num_frames: int) -> None:
    if not MIN_SIZE <= width <= MAX_SIZE or not MIN_SIZE <= height <= MAX_SIZE:
        raise ValueError(f"{width}×{height} is out of range: width and height must lie in "
                         f"{MIN_SIZE}–{MAX_SIZE} pixels")
    if not MIN_FRAMES <= num_frames <= MAX_FRAMES:
        raise ValueError(f"num_frames={num_frames} is out of range ({MIN_FRAMES}–{MAX_FRAMES})")


def checkpoint_of(model: LTXModel, vae: LTXVae | None) -> SimpleNamespace:
    """What ltx_core needs of a checkpoint, from the (possibly LoRA-patched) model and the VAE."""
    return SimpleNamespace(transformer=model.transformer, vae=require_vae(vae).vae, config=model.config)


def sample(model: LTXModel, vae: LTXVae, positive: Any, negative: Any, *, recipe: str, width: int, height: int,
           num_frames: int, frame_rate: float, seed: int, steps: int | None = None,
           conditions: Sequence[ltx_core.Condition] | None = None, upsampler: LTXUpsampler | None = None,
           guidance: dict | None = None, windows: dict | None = None,
           node_id: str | None = None, step_cache: float = 0.0) -> ltx_core.VideoLatents:
    """Sample a video's latents (on ComfyUI's intermediate device); see the module docstring.

    Videos longer than one window run window by window (`windows`: Long Video Settings, default 121 frames with
    24 of overlap); each entry of `positive` is the prompt of one window, the last one repeating.
    """
    check_video_size(width, height, num_frames)
    choice = used_recipe(model, recipe, node_id)
    steps, upsampler = recipe_models(choice, steps, upsampler)
    checkpoint = checkpoint_of(model, vae)
    caption_channels = model.transformer_config.get("caption_channels")
    prompts = prompt_contexts(positive, "positive", caption_channels)
    negative_context, negative_mask = prompt_context(negative, "negative", caption_channels)
    window = window_settings(windows, num_frames)
    first_window = plan_windows(num_frames, window["window_frames"], window["overlap_frames"]).windows[0]
    items = resolve_conditions(conditions, num_frames)
    warn_unguided_ic_loras(model, has_guide(items))
    overrides = recipe_overrides(choice, guidance, step_cache)
    settings = resolve_recipe(choice.recipe, overrides)
    check_recipe(settings, int(model.transformer_config.get("num_layers", 0)))
    device = model.patcher.load_device
    passes = PassLog(generation_loads(model, vae, upsampler, settings, width=width, height=height,
                                      num_frames=first_window.num_frames,
                                      extra_frames=extra_latent_frames(items, first_window.num_frames)))
    try:
        video = ltx_core.sample_long_video(
            checkpoint, context=[c for c, _ in prompts], context_mask=[m for _, m in prompts],
            negative_context=negative_context, negative_context_mask=negative_mask, width=width, height=height,
            num_frames=num_frames, frame_rate=frame_rate, seed=seed, recipe=choice.recipe, steps=steps or None,
            conditions=items, upsampler=upsampler.upsampler if upsampler is not None else None,
            callback=StepProgress(node_id, passes.step), cancel=check_interrupted, device=device,
            on_model=passes.model, on_window=WindowProgress(node_id), **window, **overrides)
    except ltx_core.NonFiniteLatentsError as error:
        error.args = (f"{error} {model_facts(model)}",)
        raise
    return dataclasses.replace(video, latents=video.latents.to(mm.intermediate_device()))


def model_facts(model: LTXModel) -> str:
    """The model's file, dtypes and LoRAs: what to change when its latents turn NaN."""
    loras = model.extra.get("loras", [])
    attached = ", ".join(f"'{entry['path']}' at {entry['scale']:g}" for entry in loras) if loras else "none"
    dtype, compute = (str(d).replace("torch.", "") for d in (model.dtype, model.compute_dtype))
    return (f"Checkpoint '{os.path.basename(model.path)}', weights stored in {dtype}, computing in {compute}; "
            f"LoRAs attached: {attached}.")


def latent_video(samples: Any, what: str) -> ltx_core.VideoLatents:
    """The `VideoLatents` of one of our LATENTs (with its `samples`, which a core latent node may have replaced)."""
    video = samples.get(LATENT_KEY) if isinstance(samples, dict) else None
    if not isinstance(video, ltx_core.VideoLatents):
        raise ValueError(f"{what}: the input is not the LATENT of an LTX-Video 0.9.7 Sampler or Latent Upsample node")
    return dataclasses.replace(video, latents=samples["samples"])


def refine(model: LTXModel, vae: LTXVae, positive: Any, negative: Any, *, latent: dict, recipe: str, seed: int,
           denoise: float, steps: int | None = None, conditions: Sequence[ltx_core.Condition] | None = None,
           guidance: dict | None = None, node_id: str | None = None,
           step_cache: float = 0.0) -> ltx_core.VideoLatents:
    """Refine a sampled (e.g. temporally upsampled) LATENT with the recipe's refining pass from σ ≤ `denoise`:
    `ltx_core.refine_video` plugged into the host like `sample`. Size, frames and frame rate are the latent's."""
    video = latent_video(latent, "latent")
    choice = used_recipe(model, recipe, node_id)
    if steps is not None and choice.fixed_steps:
        steps = None
    caption_channels = model.transformer_config.get("caption_channels")
    prompts = prompt_contexts(positive, "positive", caption_channels)
    if len(prompts) > 1:
        logger.info("refining runs one pass over the whole video: the first of the %d prompts is used", len(prompts))
    negative_context, negative_mask = prompt_context(negative, "negative", caption_channels)
    items = resolve_conditions(conditions, video.num_frames)
    warn_unguided_ic_loras(model, has_guide(items))
    overrides = recipe_overrides(choice, guidance, step_cache)
    settings = refining_recipe(choice.recipe, overrides)
    check_recipe(settings, int(model.transformer_config.get("num_layers", 0)))
    _, _, _, rows, columns = video.latents.shape
    passes = PassLog(generation_loads(model, vae, None, settings, width=columns * PIXELS_PER_LATENT,
                                      height=rows * PIXELS_PER_LATENT, num_frames=video.num_frames,
                                      extra_frames=extra_latent_frames(items, video.num_frames)))
    context, mask = prompts[0]
    try:
        refined = ltx_core.refine_video(
            checkpoint_of(model, vae), video, context=context, context_mask=mask, negative_context=negative_context,
            negative_context_mask=negative_mask, seed=seed, recipe=choice.recipe, steps=steps, denoise=denoise,
            conditions=items, callback=StepProgress(node_id, passes.step), cancel=check_interrupted,
            device=model.patcher.load_device, on_model=passes.model, **overrides)
    except ltx_core.NonFiniteLatentsError as error:
        error.args = (f"{error} {model_facts(model)}",)
        raise
    return dataclasses.replace(refined, latents=refined.latents.to(mm.intermediate_device()))


def as_latent(video: ltx_core.VideoLatents) -> dict:
    """Core LATENT (`samples` = normalised `[B, 128, F, H, W]`, as core's LTXV uses) plus our crop information."""
    return {"samples": video.latents, LATENT_KEY: video}


class LTX097Sampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX097Sampler",
            display_name="LTX-Video 0.9.7 Sampler",
            category=f"{CATEGORY}/sampling",
            description=(
                "Generates a video's latents with an official LTX-Video recipe (by default the one the loaded "
                "checkpoint was released with, shown under the node), from encoded prompts and optional image/video "
                "conditions. "
                "Decode the LATENT with LTX-Video 0.9.7 Decode, which crops it to exactly the requested size and "
                "frame count. With latents on its latent input it refines them instead (e.g. after a temporal "
                "Latent Upsample)."
            ),
            inputs=[
                model_input(),
                vae_input("The video VAE from the same checkpoint (encodes the conditions)."),
                *encoded_prompt_inputs(),
                recipe_input(AUTO_RECIPE),
                *size_inputs(),
                steps_input(),
                seed_input(),
                upsampler_input(),
                conditions_input(),
                guidance_input(),
                step_cache_input(),
                windows_input(),
                io.Latent.Input("latent", optional=True,
                                tooltip="Latents to refine instead of generating (e.g. Sampler → Latent Upsample "
                                        "(temporal) → this): the recipe's refining pass (a multi-scale recipe's "
                                        "second pass, at the latents' size; no upsampler needed) noises them to its "
                                        "first σ with the seed's noise and denoises them, as the official second "
                                        "pass does. Size, frames and frame rate come from the latents."),
                io.Float.Input("denoise", default=1.0, min=0.01, max=1.0, step=0.01, optional=True,
                               tooltip="With latents to refine: the highest σ the refining pass starts from; it runs "
                                       "its steps at or below it. 1 = the recipe's own second pass (distilled: "
                                       "0.9094, 0.725, 0.4219; dev: the last 13 of 30 steps). A single-scale recipe "
                                       "starts at σ 1, which keeps nothing of the latents: lower it (e.g. 0.5)."),
            ],
            outputs=[io.Latent.Output(display_name="latent",
                                      tooltip="The video latents, with what the decode node needs to crop them.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, recipe: str = AUTO_RECIPE, steps: int = DEFAULT_STEPS,
                        frame_rate: float = 25.0) -> bool | str:
        rate = check_number("frame_rate", frame_rate, MIN_FRAME_RATE, MAX_FRAME_RATE)
        if rate is not True:
            return rate
        if recipe not in RECIPE_OPTIONS:
            return f"recipe '{recipe}' is not one of: {', '.join(RECIPE_OPTIONS)}"
        if not MIN_STEPS <= steps <= MAX_STEPS:
            return f"steps={steps} is out of range ({MIN_STEPS}–{MAX_STEPS})"
        return True

    @classmethod
    def execute(cls, model: LTXModel, vae: LTXVae, positive, negative, recipe: str = AUTO_RECIPE,
                width: int = 768, height: int = 512, num_frames: int = 97, frame_rate: float = 25.0,
                steps: int = DEFAULT_STEPS,
                seed: int = 0, upsampler: LTXUpsampler | None = None, conditions=None,
                guidance: dict | None = None, windows: dict | None = None,
                step_cache: float = 0.0, latent: dict | None = None, denoise: float = 1.0) -> io.NodeOutput:
        if latent is not None:
            if windows is not None:
                logger.info("refining latents runs one pass over the whole video; the window settings are not used")
            return io.NodeOutput(as_latent(refine(
                model, vae, positive, negative, latent=latent, recipe=recipe, seed=seed, denoise=denoise, steps=steps,
                conditions=conditions, guidance=guidance, node_id=hidden_unique_id(cls), step_cache=step_cache)))
        video = sample(model, vae, positive, negative, recipe=recipe, width=width, height=height,
                       num_frames=num_frames, frame_rate=frame_rate, seed=seed, steps=steps,
                       conditions=conditions, upsampler=upsampler, guidance=guidance, windows=windows,
                       node_id=hidden_unique_id(cls), step_cache=step_cache)
        return io.NodeOutput(as_latent(video))


NODES = [LTX097Sampler]
