"""Optional guidance settings: a node that outputs a plain dict of recipe overrides (`LTX097_GUIDANCE`).

Keys are ltx_core recipe fields. Per-pass fields go under `first_pass` / `second_pass`; a single-scale recipe
reads `first_pass` as its only pass (see `sampler.recipe_overrides`). Schedules are one value for every step or
one value per entry of `guidance_timesteps` (a step uses the first entry whose timestep is at or below its σ).
"""

from __future__ import annotations

import json
import re
from typing import Any

from comfy_api.latest import io

from ..ltx_core.arguments import is_number, is_whole
from ..ltx_core.models import STG_MODES
from ..ltx_core.sampling import check_recipe
from .inputs import CATEGORY, answer, guidance_input
from .sockets import LTXGuidanceType

PASSES = {"first pass": ("first_pass",), "second pass": ("second_pass",), "both passes": ("first_pass", "second_pass")}
DEFAULT = "recipe default"
KEEP = -1.0  # float widgets: this value keeps the recipe's setting


def _parsed_list(text: str, item: type) -> Any:
    """JSON for text in brackets, else the comma- or space-separated items converted by `item` (ValueError if one
    does not convert)."""
    return json.loads(text) if text.startswith("[") else [item(v) for v in re.split(r"[,\s]+", text) if v]


def _numbers(text: str, name: str) -> Any | None:
    """'' → None, '3' → 3.0, '1, 1, 6' or '[1, 1, 6]' → [1.0, 1.0, 6.0]; a sentence on anything else."""
    text = (text or "").strip()
    if not text:
        return None
    example = "e.g. 3 or 1, 1, 6, 8, 6, 1, 1"
    try:
        value = _parsed_list(text, float)
    except ValueError:
        raise ValueError(f"{name}: '{text}' is not a number or a comma-separated list of numbers ({example})") \
            from None
    if not isinstance(value, list) or not value or not all(is_number(v, finite=False) for v in value):
        raise ValueError(f"{name}: '{text}' is not a number or a flat list of numbers ({example})")
    if not all(is_number(v, 0) for v in value):
        raise ValueError(f"{name}: every value must be a finite number of 0 or more, got '{text}'")
    value = [float(v) for v in value]
    return value[0] if len(value) == 1 and not text.startswith("[") else value


def _timesteps(text: str) -> list[float] | None:
    value = _numbers(text, "guidance_timesteps")
    if value is None:
        return None
    value = value if isinstance(value, list) else [value]
    if not all(0 < v <= 1 for v in value):
        raise ValueError(f"guidance_timesteps: every timestep must lie in (0, 1], got '{text.strip()}'")
    if any(b >= a for a, b in zip(value, value[1:])):
        raise ValueError(f"guidance_timesteps: the timesteps must decrease (e.g. 1.0, 0.996, 0.9933), got "
                         f"'{text.strip()}'")
    return value


def _skip_blocks(text: str) -> list | None:
    """'' → None; '28' or '11, 25' → flat list (every step); JSON '[[], [11, 25], [28]]' → per timestep."""
    text = (text or "").strip()
    if not text:
        return None
    example = "e.g. 28, or 11, 25, 35 for every step, or [[], [11, 25, 35, 39], [28]] per guidance timestep"
    try:
        value = _parsed_list(text, int)
    except ValueError:
        raise ValueError(f"skip_block_list: '{text}' is not a list of block numbers ({example})") from None

    def blocks(items) -> bool:
        return isinstance(items, list) and all(is_whole(i, 0) for i in items)

    if not isinstance(value, list) or not (blocks(value) or all(blocks(v) for v in value)):
        raise ValueError(f"skip_block_list: '{text}' is neither a list of block numbers (0 or more) nor a list "
                         f"of such lists ({example})")
    return value


def build_guidance(*, apply_to: str = "first pass", cfg_scale: str = "", stg_scale: str = "",
                   rescaling_scale: str = "", guidance_timesteps: str = "", skip_block_list: str = "",
                   cfg_star_rescale: str = DEFAULT, stg_mode: str = DEFAULT, image_cond_noise_scale: float = KEEP,
                   decode_timestep: float = KEEP, decode_noise_scale: float = KEEP, adain_factor: float = KEEP,
                   save_memory: bool = False, guidance: dict | None = None) -> dict:
    """The overrides dict of the settings node (merged over `guidance`, which it does not change)."""
    if apply_to not in PASSES:
        raise ValueError(f"apply_to '{apply_to}' is not one of {', '.join(PASSES)}")
    pass_values = {
        "guidance_scale": _numbers(cfg_scale, "cfg_scale"),
        "stg_scale": _numbers(stg_scale, "stg_scale"),
        "rescaling_scale": _numbers(rescaling_scale, "rescaling_scale"),
        "guidance_timesteps": _timesteps(guidance_timesteps),
        "skip_block_list": _skip_blocks(skip_block_list),
    }
    if cfg_star_rescale not in (DEFAULT, "on", "off"):
        raise ValueError(f"cfg_star_rescale '{cfg_star_rescale}' is not one of {DEFAULT}, on, off")
    if cfg_star_rescale != DEFAULT:
        pass_values["cfg_star_rescale"] = cfg_star_rescale == "on"
    pass_values = {k: v for k, v in pass_values.items() if v is not None}
    if pass_values.get("guidance_timesteps") is not None:
        try:
            check_recipe({"pipeline_type": "base", **pass_values})
        except ValueError as error:  # name the node's widget, not the recipe key
            raise ValueError(f"guidance settings: {str(error).replace('guidance_scale', 'cfg_scale')}") from None
    result: dict[str, Any] = json.loads(json.dumps(guidance or {}))  # a deep copy of plain data
    for name in PASSES[apply_to]:
        result.setdefault(name, {}).update(pass_values)
    if stg_mode not in (DEFAULT, *STG_MODES):
        raise ValueError(f"stg_mode '{stg_mode}' is not one of {DEFAULT}, {', '.join(STG_MODES)}")
    if stg_mode != DEFAULT:
        result["stg_mode"] = stg_mode
    for key, value in (("image_cond_noise_scale", image_cond_noise_scale), ("decode_timestep", decode_timestep),
                       ("decode_noise_scale", decode_noise_scale), ("adain_factor", adain_factor)):
        if value is not None and value != KEEP:
            if not 0 <= value <= 1:
                raise ValueError(f"{key}={value} must lie in 0–1 (or -1 to keep the recipe's value)")
            result[key] = float(value)
    if save_memory:
        result["batched_guidance"] = False
    return result


def _keep(tooltip: str) -> str:
    return f"{tooltip} -1 keeps the recipe's value."


def _schedule(name: str, tooltip: str) -> io.String.Input:
    return io.String.Input(name, default="", tooltip=tooltip + " Empty keeps the recipe's schedule.")


class LTX097GuidanceSettings(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX097GuidanceSettings",
            display_name="LTX-Video 0.9.7 Guidance Settings",
            category=f"{CATEGORY}/sampling",
            description=(
                "Optional: changes the recipe's guidance for the sampler: per-step CFG, STG, rescale and skipped "
                "blocks (by guidance timestep), CFG-star, STG mode, conditioning noise, decode noise, AdaIN, and "
                "a memory-saving switch. Chain two to set the first and second pass of a multi-scale recipe "
                "differently. Empty fields and -1 keep the recipe's values."
            ),
            inputs=[
                io.Combo.Input("apply_to", options=list(PASSES), default="first pass",
                               tooltip="Which pass the schedules below change. Single-scale recipes have one "
                                       "pass: set it with 'first pass'."),
                _schedule("cfg_scale", "Classifier-free guidance scale: one number for every step, or one per "
                                       "guidance timestep (e.g. 1, 1, 6, 8, 6, 1, 1). 1 or less turns CFG off."),
                _schedule("stg_scale", "Spatio-temporal guidance scale (perturbs the skipped blocks): one number "
                                       "or one per guidance timestep (e.g. 0, 0, 4, 4, 4, 2, 1). 0 turns STG off."),
                _schedule("rescaling_scale", "STG rescale (1 = none; 0.5 pulls the guided prediction's spread "
                                             "halfway back to the prompt's): one number or one per guidance "
                                             "timestep."),
                _schedule("guidance_timesteps", "The σ thresholds that index the per-timestep schedules, "
                                                "decreasing in (0, 1] (e.g. 1.0, 0.996, 0.9933, 0.985, 0.9767, "
                                                "0.9008, 0.618)."),
                _schedule("skip_block_list", "Transformer blocks STG perturbs: numbers for every step (28, or "
                                             "11, 25, 35) or JSON with one list per guidance timestep "
                                             "([[], [11, 25, 35, 39], [22, 35, 39], [28]]). The 13B model has "
                                             "blocks 0–47, the 2B model 0–27."),
                io.Combo.Input("cfg_star_rescale", options=[DEFAULT, "on", "off"], default=DEFAULT,
                               tooltip="CFG-star: scales the negative prediction by its projection on the "
                                       "positive before CFG (on in the 0.9.7 dev recipe)."),
                io.Combo.Input("stg_mode", options=[DEFAULT, *STG_MODES], default=DEFAULT,
                               tooltip="How STG perturbs the skipped blocks (0.9.7: attention_values)."),
                io.Float.Input("image_cond_noise_scale", default=KEEP, min=KEEP, max=1.0, step=0.01,
                               tooltip=_keep("Noise added to image/video conditions at every step, times σ² "
                                             "(reference: 0.15).")),
                io.Float.Input("decode_timestep", default=KEEP, min=KEEP, max=1.0, step=0.001,
                               tooltip=_keep("Timestep the VAE decodes at (0.9.7: 0.05).")),
                io.Float.Input("decode_noise_scale", default=KEEP, min=KEEP, max=1.0, step=0.001,
                               tooltip=_keep("Noise blended into the latents before decoding (0.9.7: 0.025).")),
                io.Float.Input("adain_factor", default=KEEP, min=KEEP, max=1.0, step=0.01,
                               tooltip=_keep("Multi-scale: how much the upsampled latents take the first "
                                             "pass's per-channel statistics (0.9.7: 1).")),
                io.Boolean.Input("save_memory", default=False,
                                 tooltip="Run the CFG / STG predictions of a step one after the other instead of "
                                         "as one batch: up to 3× less activation memory, a little slower, same "
                                         "result."),
                guidance_input("Settings to build on (this node's non-empty values win)."),
            ],
            outputs=[LTXGuidanceType.Output(display_name="guidance",
                                            tooltip="Recipe overrides for the sampler's guidance input.")],
        )

    @classmethod
    def validate_inputs(cls, cfg_scale: str = "", stg_scale: str = "", rescaling_scale: str = "",
                        guidance_timesteps: str = "", skip_block_list: str = "") -> bool | str:
        return answer(build_guidance, cfg_scale=cfg_scale, stg_scale=stg_scale, rescaling_scale=rescaling_scale,
                      guidance_timesteps=guidance_timesteps, skip_block_list=skip_block_list)

    @classmethod
    def execute(cls, **kwargs) -> io.NodeOutput:
        return io.NodeOutput(build_guidance(**kwargs))


NODES = [LTX097GuidanceSettings]
