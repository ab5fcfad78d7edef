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
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Mapping, Optional, Sequence, Union

import comfy.model_management as mm
from comfy_api.latest import io

from .. import ltx_core
from ..hosted import DEFAULT_STEPS, MAX_SEED
from ..ltx_core.sampling import check_recipe, max_branches, pass_shapes, recipe_passes, resolve_recipe
from ..ltx_core.windows import plan_windows
from .common import (CATEGORY, LTXModel, LTXModelType, LTXUpsampler, LTXUpsamplerType, LTXVae, LTXVaeType,
                     check_number)
from .conditioning import LTXConditionsType, extra_latent_frames, has_guide, resolve_conditions
from .guidance import LTXGuidanceType
from .lora import warn_unguided_ic_loras
from .long_video import WINDOWS_TOOLTIP, LTXWindowsType, WindowProgress, window_settings
from .memory import ModelLoads, transformer_bytes, upsampler_bytes, vae_bytes
from .progress import StepProgress, check_interrupted
from .run_log import PassLog
from .ranges import (FRAME_RATE_STEP, MAX_FRAME_RATE, MAX_FRAMES, MAX_SIZE, MAX_STEPS,
                     MIN_FRAME_RATE, MIN_FRAMES, MIN_SIZE, MIN_STEPS, SIZE_GRID)
from .text import prompt_context, prompt_contexts

logger = logging.getLogger(__name__)

LATENT_KEY = "ltx097"
"""Key of the `ltx_core.VideoLatents` in our LATENT dicts (the decode node crops with it)."""
UPSAMPLER_FILE = "ltxv-spatial-upscaler-0.9.7.safetensors"
MAX_STEP_CACHE = 0.5


@dataclass(frozen=True)
class RecipeChoice:
    label: str
    recipe: Union[str, dict]
    multi_scale: bool
    fixed_steps: bool
    about: str


RECIPE_CHOICES = {choice.label: choice for choice in (
    RecipeChoice("0.9.7 dev multi-scale", "0.9.7-dev", True, False,
                 "the official 13B dev recipe: 30 steps at 2/3 size with CFG + STG schedules, 2× latent upsample, "
                 "13 refining steps (best quality; needs the upsampler)"),
    RecipeChoice("0.9.7 distilled multi-scale", "0.9.7-distilled", True, True,
                 "the official 13B distilled recipe: 7 + 3 fixed steps without guidance (fast; use the distilled "
                 "checkpoint; needs the upsampler)"),
    RecipeChoice("0.9.8 dev multi-scale", "0.9.8-dev", True, False,
                 "the official 13B 0.9.8 dev recipe (the same schedules as 0.9.7 dev; needs the upsampler)"),
    RecipeChoice("0.9.8 distilled multi-scale", "0.9.8-distilled", True, True,
                 "the official 13B 0.9.8 distilled recipe: 7 + 3 fixed steps, tone mapping 0.6 before decoding "
                 "(use the 0.9.8 distilled checkpoint; needs the upsampler)"),
    RecipeChoice("0.9.8 2B distilled multi-scale", "0.9.8-2b-distilled", True, True,
                 "the official 2B 0.9.8 distilled recipe: 7 + 3 fixed steps without guidance (use the 2B 0.9.8 "
                 "distilled checkpoint; needs the upsampler)"),
    RecipeChoice("0.9.7 dev single-scale", "0.9.7-dev-single-scale", False, False,
                 "the dev recipe's first-pass guidance schedule in one pass of 30 steps at the full size (no "
                 "upsampler; slower per step at large sizes)"),
    RecipeChoice("0.9.6 2B dev", "0.9.6-2b-dev", False, False,
                 "the 2B 0.9.6 dev recipe: 40 steps, CFG 3, STG 1 on block 19"),
    RecipeChoice("0.9.6 2B distilled", "0.9.6-2b-distilled", False, False,
                 "the 2B 0.9.6 distilled recipe: 8 stochastic steps without guidance"),
)}
DEFAULT_RECIPE = "0.9.7 dev multi-scale"
RECIPE_TOOLTIP = "Sampling recipe: " + "; ".join(f"{c.label}: {c.about}" for c in RECIPE_CHOICES.values()) + "."


def recipe_choice(label: str) -> RecipeChoice:
    if label not in RECIPE_CHOICES:
        raise ValueError(f"recipe '{label}' is not one of: {', '.join(RECIPE_CHOICES)}")
    return RECIPE_CHOICES[label]


def recipe_overrides(choice: RecipeChoice, guidance: Optional[dict]) -> dict:
    """Guidance settings → `sample_video` overrides for this recipe (a base recipe reads `first_pass` as its pass)."""
    if guidance is not None and not isinstance(guidance, Mapping):
        raise ValueError(f"guidance={guidance!r} is not allowed (allowed: a dict of recipe settings, as the "
                         f"Guidance Settings node makes)")
    overrides = dict(guidance or {})
    if choice.multi_scale:
        return overrides
    first, second = overrides.pop("first_pass", None), overrides.pop("second_pass", None)
    if second and second != first:
        logger.warning("the %s recipe has one pass; the guidance settings for a second pass are not used",
                       choice.label)
    overrides.update(first or {})
    return overrides


def checkpoint_of(model: LTXModel, vae: Optional[LTXVae]) -> SimpleNamespace:
    """What ltx_core needs of a checkpoint, from the (possibly LoRA-patched) model and the VAE."""
    if vae is None:
        raise ValueError("the vae input is empty: the loaded checkpoint has no VAE; load a checkpoint that "
                         "contains one (the official LTX-Video single files do)")
    return SimpleNamespace(transformer=model.transformer, vae=vae.vae, config=model.config)


def sample(model: LTXModel, vae: LTXVae, positive: Any, negative: Any, *, recipe: str, width: int, height: int,
           num_frames: int, frame_rate: float, seed: int, steps: Optional[int] = None,
           conditions: Optional[Sequence[ltx_core.Condition]] = None, upsampler: Optional[LTXUpsampler] = None,
           guidance: Optional[dict] = None, windows: Optional[dict] = None,
           node_id: Optional[str] = None, step_cache: float = 0.0) -> ltx_core.VideoLatents:
    """Sample a video's latents (on ComfyUI's intermediate device); see the module docstring.

    Videos longer than one window run window by window (`windows`: Long Video Settings, default 121 frames with
    24 of overlap); each entry of `positive` is the prompt of one window, the last one repeating.
    """
    choice = recipe_choice(recipe)
    if not MIN_SIZE <= width <= MAX_SIZE or not MIN_SIZE <= height <= MAX_SIZE:
        raise ValueError(f"{width}×{height} is out of range: width and height must lie in "
                         f"{MIN_SIZE}–{MAX_SIZE} pixels")
    if not MIN_FRAMES <= num_frames <= MAX_FRAMES:
        raise ValueError(f"num_frames={num_frames} is out of range ({MIN_FRAMES}–{MAX_FRAMES})")
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
    checkpoint = checkpoint_of(model, vae)
    transformer_config = model.transformer_config
    caption_channels = transformer_config.get("caption_channels")
    prompts = prompt_contexts(positive, "positive", caption_channels)
    negative_context, negative_mask = prompt_context(negative, "negative", caption_channels)
    window = window_settings(windows, num_frames)
    plan = plan_windows(num_frames, window["window_frames"], window["overlap_frames"])
    items = resolve_conditions(conditions, num_frames)
    warn_unguided_ic_loras(model, has_guide(items))
    overrides = recipe_overrides(choice, guidance)
    if step_cache:
        overrides["step_cache_threshold"] = float(step_cache)
    settings = resolve_recipe(choice.recipe, overrides)
    check_recipe(settings, int(transformer_config.get("num_layers", 0)))

    device = model.patcher.load_device
    shapes = pass_shapes(settings, width=width, height=height, num_frames=plan.windows[0].num_frames)
    # tokens of each pass: the video's, plus the extra tokens of conditions and guides
    tokens = [(frames + extra_latent_frames(items, plan.windows[0].num_frames)) * h * w
              for _, _, frames, h, w in shapes]
    branches = [max_branches(p, settings["batched_guidance"]) for _, p in recipe_passes(settings)]
    inner_dim = int(transformer_config.get("num_attention_heads", 32)) * int(
        transformer_config.get("attention_head_dim", 128))
    peak = max(t * b for t, b in zip(tokens, branches))
    latent_frames = shapes[0][2]
    _, _, _, largest_h, largest_w = max(shapes, key=lambda shape: shape[3] * shape[4])
    loads = ModelLoads()
    loads.add("transformer", model.patcher, transformer_bytes(peak, inner_dim, 1, model.compute_dtype))
    loads.add("vae", vae.patcher, vae_bytes(vae.vae, largest_h, largest_w, vae.dtype))
    if upsampler is not None:
        first_h, first_w = shapes[0][3:]
        loads.add("upsampler", upsampler.patcher,
                  upsampler_bytes(latent_frames * first_h * first_w, int(upsampler.config.get("mid_channels", 512)),
                                  upsampler.dtype))
    passes = PassLog(loads)
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


def as_latent(video: ltx_core.VideoLatents) -> dict:
    """Core LATENT (`samples` = normalised `[B, 128, F, H, W]`, as core's LTXV uses) plus our crop information."""
    return {"samples": video.latents, LATENT_KEY: video}


def hidden_unique_id(cls) -> Optional[str]:
    hidden = getattr(cls, "hidden", None)
    return getattr(hidden, "unique_id", None) if hidden is not None else None


def step_cache_input() -> io.Float.Input:
    return io.Float.Input(
        "step_cache", default=0.0, min=0.0, max=MAX_STEP_CACHE, step=0.01, optional=True,
        tooltip="Step cache threshold (0 = off, the exact result). At each step the first transformer block runs; "
                "when its change since the last full step is below this fraction, the other blocks' last "
                "contribution is reused instead of running them. 0.05-0.15 skips many steps' deep blocks for a "
                "small loss of detail; higher values are faster and blurrier. Never on the first and last step "
                "of a pass, at most 3 reuses in a row.")


def size_inputs(width: int = 768, height: int = 512, num_frames: int = 97, frame_rate: float = 25.0) -> list:
    return [
        io.Int.Input("width", default=width, min=MIN_SIZE, max=MAX_SIZE, step=SIZE_GRID,
                     tooltip="Video width in pixels, in steps of 32 (the model's grid). Another width from a link "
                             "is generated on the next multiple of 32 (padded around the centre) and cropped back "
                             "to exactly that width."),
        io.Int.Input("height", default=height, min=MIN_SIZE, max=MAX_SIZE, step=SIZE_GRID,
                     tooltip="Video height in pixels, in steps of 32 (the model's grid). Another height from a "
                             "link is generated on the next multiple of 32 and cropped back to exactly that "
                             "height."),
        io.Int.Input("num_frames", default=num_frames, min=MIN_FRAMES, max=MAX_FRAMES, step=1,
                     tooltip="Number of frames. The model works on 8k+1 frames (9, 17, ..., 97, 121): other "
                             "counts are generated as the next 8k+1 and cut back."),
        io.Float.Input("frame_rate", default=frame_rate, min=MIN_FRAME_RATE, max=MAX_FRAME_RATE,
                       step=FRAME_RATE_STEP,
                       tooltip="Frames per second. The model is told the frame rate (it times the motion with "
                               "it); save the video at the same rate."),
    ]


class LTX097Sampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX097Sampler",
            display_name="LTX-Video 0.9.7 Sampler",
            category=f"{CATEGORY}/sampling",
            description=(
                "Generates a video's latents with an official LTX-Video recipe (multi-scale 0.9.7 dev or "
                "distilled, single-scale, 2B 0.9.6), from encoded prompts and optional image/video conditions. "
                "Decode the LATENT with LTX-Video 0.9.7 Decode, which crops it to exactly the requested size and "
                "frame count."
            ),
            inputs=[
                LTXModelType.Input("model", tooltip="The LTX-Video transformer (LTX-Video 0.9.7 Model Loader, "
                                                    "optionally with LoRAs)."),
                LTXVaeType.Input("vae", tooltip="The video VAE from the same checkpoint (encodes the conditions)."),
                io.Conditioning.Input("positive", tooltip="The encoded prompt (LTX-Video 0.9.7 Text Encode, or "
                                                          "CLIP Text Encode with a T5-XXL)."),
                io.Conditioning.Input("negative", tooltip="The encoded negative prompt."),
                io.Combo.Input("recipe", options=list(RECIPE_CHOICES), default=DEFAULT_RECIPE,
                               tooltip=RECIPE_TOOLTIP),
                *size_inputs(),
                io.Int.Input("steps", default=DEFAULT_STEPS, min=MIN_STEPS, max=MAX_STEPS, step=1,
                             tooltip="Steps per pass; each pass keeps its σ range. 30 is the 0.9.7 dev recipe's "
                                     "(its second pass then runs the last 13), 40 the 0.9.6 2B dev recipe's. The "
                                     "distilled recipes run the fixed timesteps they were trained for and do not "
                                     "use it."),
                io.Int.Input("seed", default=0, min=0, max=MAX_SEED, control_after_generate=True,
                             tooltip="Seed of the noise; the same seed and inputs give the same video."),
                LTXUpsamplerType.Input("upsampler", optional=True,
                                       tooltip=f"The spatial latent upsampler ({UPSAMPLER_FILE}); required by the "
                                               "multi-scale recipes."),
                LTXConditionsType.Input("conditions", optional=True,
                                        tooltip="Images / videos pinned to frames (Image Condition, Video "
                                                "Condition) and IC-LoRA guides (Guide)."),
                LTXGuidanceType.Input("guidance", optional=True,
                                      tooltip="Changes to the recipe's guidance (Guidance Settings)."),
                step_cache_input(),
                LTXWindowsType.Input("windows", optional=True, tooltip=WINDOWS_TOOLTIP),
            ],
            outputs=[io.Latent.Output(display_name="latent",
                                      tooltip="The video latents, with what the decode node needs to crop them.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, recipe: str = DEFAULT_RECIPE, steps: int = DEFAULT_STEPS,
                        frame_rate: float = 25.0) -> bool | str:
        rate = check_number("frame_rate", frame_rate, MIN_FRAME_RATE, MAX_FRAME_RATE)
        if rate is not True:
            return rate
        if recipe not in RECIPE_CHOICES:
            return f"recipe '{recipe}' is not one of: {', '.join(RECIPE_CHOICES)}"
        if not MIN_STEPS <= steps <= MAX_STEPS:
            return f"steps={steps} is out of range ({MIN_STEPS}–{MAX_STEPS})"
        return True

    @classmethod
    def execute(cls, model: LTXModel, vae: LTXVae, positive, negative, recipe: str = DEFAULT_RECIPE,
                width: int = 768, height: int = 512, num_frames: int = 97, frame_rate: float = 25.0,
                steps: int = DEFAULT_STEPS,
                seed: int = 0, upsampler: Optional[LTXUpsampler] = None, conditions=None,
                guidance: Optional[dict] = None, windows: Optional[dict] = None,
                step_cache: float = 0.0) -> io.NodeOutput:
        video = sample(model, vae, positive, negative, recipe=recipe, width=width, height=height,
                       num_frames=num_frames, frame_rate=frame_rate, seed=seed, steps=steps,
                       conditions=conditions, upsampler=upsampler, guidance=guidance, windows=windows,
                       node_id=hidden_unique_id(cls), step_cache=step_cache)
        return io.NodeOutput(as_latent(video))


NODES = [LTX097Sampler]
