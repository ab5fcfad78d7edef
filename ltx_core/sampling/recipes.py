"""The official sampling recipes (configs/*.yaml of LTX-Video), as data, and how overrides apply to them.

A recipe is shaped like the official files: `pipeline_type: base` keeps the pass settings at the top level,
`multi-scale` has `first_pass` / `second_pass` dicts and a `downscale_factor`. Keys we add (not in the yaml) carry
the defaults of the official `inference.py`: conditioning noise 0.15, CRF 29, AdaIN factor 1.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from ..arguments import is_number, is_whole
from ..models.transformer import STG_MODES

_COMMON = {
    "stg_mode": "attention_values",
    "decode_timestep": 0.05,
    "decode_noise_scale": 0.025,
    "sampler": "from_checkpoint",
    "stochastic_sampling": False,
    "image_cond_noise_scale": 0.15,
    "crf": 29,
    "tone_map_compression_ratio": 0.0,
    "batched_guidance": True,
    "step_cache_threshold": 0.0,
    "step_cache_max_reuse": 3,
}

_DEV_FIRST_PASS = {
    "guidance_scale": [1, 1, 6, 8, 6, 1, 1],
    "stg_scale": [0, 0, 4, 4, 4, 2, 1],
    "rescaling_scale": [1, 1, 0.5, 0.5, 1, 1, 1],
    "guidance_timesteps": [1.0, 0.996, 0.9933, 0.9850, 0.9767, 0.9008, 0.6180],
    "skip_block_list": [[], [11, 25, 35, 39], [22, 35, 39], [28], [28], [28], [28]],
    "num_inference_steps": 30,
    "skip_final_inference_steps": 3,
    "cfg_star_rescale": True,
}

_DEV_SECOND_PASS = {
    "guidance_scale": [1],
    "stg_scale": [1],
    "rescaling_scale": [1],
    "guidance_timesteps": [1.0],
    "skip_block_list": [27],
    "num_inference_steps": 30,
    "skip_initial_inference_steps": 17,
    "cfg_star_rescale": True,
}

_DISTILLED = {
    **_COMMON,
    "pipeline_type": "multi-scale",
    "downscale_factor": 0.6666666,
    "adain_factor": 1.0,
    "first_pass": {"timesteps": [1.0000, 0.9937, 0.9875, 0.9812, 0.9750, 0.9094, 0.7250], "guidance_scale": 1,
                   "stg_scale": 0, "rescaling_scale": 1, "skip_block_list": [42]},
    "second_pass": {"timesteps": [0.9094, 0.7250, 0.4219], "guidance_scale": 1, "stg_scale": 0,
                    "rescaling_scale": 1, "skip_block_list": [42]},
}

RECIPES: dict[str, dict[str, Any]] = {
    "0.9.7-dev": {
        **_COMMON,
        "pipeline_type": "multi-scale",
        "downscale_factor": 0.6666666,
        "adain_factor": 1.0,
        "first_pass": _DEV_FIRST_PASS,
        "second_pass": _DEV_SECOND_PASS,
    },
    "0.9.7-distilled": _DISTILLED,
    # The dev first pass's guidance over all 30 steps at full size: no upsampler, no second pass.
    "0.9.7-dev-single-scale": {
        **_COMMON, "pipeline_type": "base",
        **{k: v for k, v in _DEV_FIRST_PASS.items() if k != "skip_final_inference_steps"},
    },
    # 0.9.8 (configs/ltxv-*-0.9.8-*.yaml): the dev recipe is 0.9.7's; the 13B distilled one adds tone mapping
    # (0.6, given in the yaml's second pass, whose output is the one decoded); the 2B distilled one is multi-scale.
    "0.9.8-dev": {
        **_COMMON,
        "pipeline_type": "multi-scale",
        "downscale_factor": 0.6666666,
        "adain_factor": 1.0,
        "first_pass": _DEV_FIRST_PASS,
        "second_pass": _DEV_SECOND_PASS,
    },
    "0.9.8-distilled": {**_DISTILLED, "tone_map_compression_ratio": 0.6},
    "0.9.8-2b-distilled": _DISTILLED,
    "0.9.6-2b-dev": {
        **_COMMON, "pipeline_type": "base", "guidance_scale": 3, "stg_scale": 1, "rescaling_scale": 0.7,
        "skip_block_list": [19], "num_inference_steps": 40,
    },
    "0.9.6-2b-distilled": {
        **_COMMON, "pipeline_type": "base", "guidance_scale": 1, "stg_scale": 0, "rescaling_scale": 1,
        "num_inference_steps": 8, "stochastic_sampling": True,
    },
}

PASS_KEYS = frozenset({"guidance_scale", "stg_scale", "rescaling_scale", "guidance_timesteps", "skip_block_list",
                       "num_inference_steps", "skip_initial_inference_steps", "skip_final_inference_steps",
                       "timesteps", "cfg_star_rescale"})
TOP_KEYS = frozenset({*_COMMON, "pipeline_type", "downscale_factor", "adain_factor", "first_pass", "second_pass"})
# Keys of the official yaml that concern loading, not sampling; accepted and ignored.
IGNORED_KEYS = frozenset({"checkpoint_path", "spatial_upscaler_model_path", "text_encoder_model_name_or_path",
                          "precision", "prompt_enhancement_words_threshold",
                          "prompt_enhancer_image_caption_model_name_or_path",
                          "prompt_enhancer_llm_model_name_or_path"})


def _check_keys(mapping: Mapping[str, Any], allowed: frozenset, where: str) -> None:
    unknown = sorted(set(mapping) - allowed - IGNORED_KEYS)
    if unknown:
        raise ValueError(f"recipe {where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")


def resolve_recipe(recipe: str | Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The named (or given) recipe with `overrides` applied field by field; pass dicts merge key by key."""
    if isinstance(recipe, str):
        if recipe not in RECIPES:
            raise ValueError(f"recipe '{recipe}' is not known (allowed: {', '.join(RECIPES)})")
        resolved = copy.deepcopy(RECIPES[recipe])
    else:
        base = RECIPES["0.9.7-dev"] if recipe.get("pipeline_type") == "multi-scale" else RECIPES["0.9.6-2b-dev"]
        resolved = {k: copy.deepcopy(v) for k, v in _COMMON.items()}
        resolved.setdefault("adain_factor", base.get("adain_factor", 1.0))
        resolved.update({k: copy.deepcopy(v) for k, v in recipe.items() if k not in IGNORED_KEYS})
    for key, value in overrides.items():
        if key in ("first_pass", "second_pass") and isinstance(value, Mapping):
            _check_keys(value, PASS_KEYS, key)
            resolved.setdefault(key, {}).update(copy.deepcopy(dict(value)))
        else:
            resolved[key] = copy.deepcopy(value)
    for name in ("first_pass", "second_pass"):
        if name in resolved and not isinstance(resolved[name], Mapping):
            raise ValueError(f"recipe {name}={resolved[name]!r} is not allowed (allowed: a dict of pass settings)")
    _hoist_tone_map(resolved)
    kind = resolved.get("pipeline_type", "base")
    if kind == "multi-scale":
        _check_keys(resolved, TOP_KEYS, "(top level)")
        for name in ("first_pass", "second_pass"):
            if name not in resolved:
                raise ValueError(f"recipe: a multi-scale recipe needs '{name}'")
            _check_keys(resolved[name], PASS_KEYS, name)
    elif kind == "base":
        _check_keys(resolved, TOP_KEYS | PASS_KEYS, "(top level)")
    else:
        raise ValueError(f"recipe: pipeline_type '{kind}' is not supported (allowed: base, multi-scale)")
    check_values(resolved)
    return resolved


def _hoist_tone_map(recipe: dict) -> None:
    """The 0.9.8 yaml files give `tone_map_compression_ratio` in a pass; the official pipeline applies it only when
    that pass decodes, so the second pass's value is the recipe's and the first pass's (never decoded) is dropped."""
    for name in ("first_pass", "second_pass"):
        settings = recipe.get(name)
        if isinstance(settings, dict) and "tone_map_compression_ratio" in settings:
            value = settings.pop("tone_map_compression_ratio")
            if name == "second_pass":
                recipe["tone_map_compression_ratio"] = value


def _in_unit(value: Any) -> bool:
    return is_number(value, 0, 1)


def _scale(value: Any) -> bool:
    """One number ≥ 0, or a non-empty list of them (one per guidance timestep)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return bool(values) and all(is_number(v, 0) for v in values)


def _timestep_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(is_number(v) and 0 < v <= 1 for v in value)


def _block_list(value: Any) -> bool:
    """Block numbers for every step, or one list of them per guidance timestep."""
    def blocks(items: Any) -> bool:
        return isinstance(items, (list, tuple)) and all(is_whole(i, 0) for i in items)

    return value is None or blocks(value) or (isinstance(value, (list, tuple)) and all(blocks(v) for v in value))


_SAMPLERS = ("from_checkpoint", "uniform", "linear-quadratic")
# key → (test, what is allowed); values come from users (a guidance dict, an API request), so each is checked
# here with a sentence rather than failing later inside torch.
_TOP_VALUES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "stg_mode": (lambda v: v in STG_MODES, f"one of {', '.join(STG_MODES)}"),
    "sampler": (lambda v: isinstance(v, str) and v.lower() in _SAMPLERS, f"one of {', '.join(_SAMPLERS)}"),
    "decode_timestep": (_in_unit, "a number in 0–1"),
    "decode_noise_scale": (lambda v: v is None or _in_unit(v), "a number in 0–1 (or null: the decode timestep)"),
    "image_cond_noise_scale": (_in_unit, "a number in 0–1"),
    "adain_factor": (_in_unit, "a number in 0–1"),
    "tone_map_compression_ratio": (_in_unit, "a number in 0–1"),
    "crf": (lambda v: is_whole(v, 0, 51), "a whole number in 0–51"),
    "stochastic_sampling": (lambda v: isinstance(v, bool), "true or false"),
    "batched_guidance": (lambda v: isinstance(v, bool), "true or false"),
    "downscale_factor": (lambda v: is_number(v) and 0 < v <= 1, "a number above 0 and at most 1"),
    "step_cache_threshold": (lambda v: is_number(v, 0, 1), "a number in 0–1 (0 = off)"),
    "step_cache_max_reuse": (lambda v: is_whole(v, 1), "a whole number of 1 or more"),
}
_PASS_VALUES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "guidance_scale": (_scale, "a number of 0 or more, or a list of them (one per guidance timestep)"),
    "stg_scale": (_scale, "a number of 0 or more, or a list of them (one per guidance timestep)"),
    "rescaling_scale": (_scale, "a number of 0 or more, or a list of them (one per guidance timestep)"),
    "guidance_timesteps": (_timestep_list, "a list of timesteps in (0, 1]"),
    "timesteps": (_timestep_list, "a list of timesteps in (0, 1]"),
    "skip_block_list": (_block_list, "a list of block numbers (0 or more), or one such list per guidance timestep"),
    "num_inference_steps": (lambda v: is_whole(v, 1), "a whole number of 1 or more"),
    "skip_initial_inference_steps": (lambda v: is_whole(v, 0), "a whole number of 0 or more"),
    "skip_final_inference_steps": (lambda v: is_whole(v, 0), "a whole number of 0 or more"),
    "cfg_star_rescale": (lambda v: isinstance(v, bool), "true or false"),
}


def _check_values(mapping: Mapping[str, Any], checks: Mapping[str, tuple[Callable[[Any], bool], str]],
                  where: str) -> None:
    for key, (test, allowed) in checks.items():
        if key in mapping and not test(mapping[key]):
            raise ValueError(f"recipe {where}{key}={mapping[key]!r} is not allowed (allowed: {allowed})")


def check_values(recipe: Mapping[str, Any]) -> None:
    """Refuse values of the wrong type or range in a resolved recipe, naming the key, the value and what is
    allowed."""
    _check_values(recipe, _TOP_VALUES, "")
    for name, settings in recipe_passes(recipe):
        _check_values(settings, _PASS_VALUES, "" if name == "recipe" else f"{name}.")


def recipe_passes(recipe: Mapping[str, Any]) -> list[tuple[str, dict]]:
    """(name, settings) of each pass of a resolved recipe: one for `base`, first and second for `multi-scale`."""
    if recipe.get("pipeline_type") == "multi-scale":
        return [("first_pass", recipe["first_pass"]), ("second_pass", recipe["second_pass"])]
    return [("recipe", dict(recipe))]


def _schedule_length(value: Any, nested: bool) -> int | None:
    if not isinstance(value, (list, tuple)):
        return None
    if nested and not (value and isinstance(value[0], (list, tuple))):
        return None
    return len(value)


def _guidance_entries(settings: Mapping[str, Any]) -> list[tuple[float, float, tuple[int, ...]]]:
    """(CFG, STG, skipped blocks) of every guidance-timestep entry of one pass."""
    lengths = [n for n in (_schedule_length(settings.get(k), False) for k in ("guidance_scale", "stg_scale"))
               if n is not None]
    blocks = settings.get("skip_block_list") or []
    per_step = _schedule_length(blocks, True)
    count = max(lengths + ([per_step] if per_step else []), default=1)

    def expand(value, default):
        value = default if value is None else value
        return list(value) if isinstance(value, (list, tuple)) else [value] * count

    skips = [tuple(b) for b in blocks] if per_step else [tuple(blocks)] * count
    return list(zip(expand(settings.get("guidance_scale"), 4.5), expand(settings.get("stg_scale"), 1.0), skips))


def max_branches(settings: Mapping[str, Any], batched: bool = True) -> int:
    """Most predictions one step of a pass runs together (1 when the guidance branches run one by one)."""
    if not batched:
        return 1
    return max(1 + (float(cfg) > 1) + (float(stg) > 0) for cfg, stg, _ in _guidance_entries(settings))


def check_recipe(recipe: Mapping[str, Any], num_layers: int | None = None) -> None:
    """Sentences for schedules whose lengths disagree and for STG on blocks the model does not have.

    The 13B recipes skip blocks up to 39; the 2B model has blocks 0–27: running a recipe made for another model
    would fail deep inside the transformer, so it is refused up front.
    """
    for name, settings in recipe_passes(recipe):
        where = "recipe" if name == "recipe" else f"recipe {name}"
        timesteps = settings.get("guidance_timesteps")
        for key in ("guidance_scale", "stg_scale", "rescaling_scale", "skip_block_list"):
            length = _schedule_length(settings.get(key), key == "skip_block_list")
            if length is None:
                continue
            if not timesteps:
                raise ValueError(f"{where}: {key} has {length} per-timestep values but no guidance_timesteps "
                                 "are set; give one guidance timestep per value, or a single value")
            if length != len(timesteps):
                raise ValueError(f"{where}: {key} has {length} values but guidance_timesteps has "
                                 f"{len(timesteps)}; give one value per guidance timestep")
        if num_layers is None:
            continue
        missing = sorted({b for _, stg, blocks in _guidance_entries(settings) if float(stg) > 0 for b in blocks
                          if not 0 <= int(b) < num_layers})
        if missing:
            raise ValueError(f"{where}: STG skips block {missing[0]}, but this model has {num_layers} blocks "
                             f"(0–{num_layers - 1}); use the recipe made for this model or set skip_block_list")
