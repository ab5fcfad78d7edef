"""Which official recipe a checkpoint was released with: `recipe_for_checkpoint`.

Lightricks ships one recipe file per checkpoint (`configs/ltxv-<size>-<version>-<kind>.yaml`, whose
`checkpoint_path` names the file) and nothing inside a checkpoint names its version. What the files do say:

1. **The official file name** (`ltxv-13b-0.9.7-dev`, `-distilled`, `ltxv-13b-0.9.8-dev`, `-distilled`,
   `ltxv-2b-0.9.8-distilled`, each also `-fp8`, and `ltxv-2b-0.9.6-dev-04-25` / `-distilled-04-25`): size, version
   and kind. It is the only signal for the version (0.9.7 vs 0.9.8: the same architecture and config).
2. **The metadata** (`config` JSON): distilled checkpoints carry `allowed_inference_steps`, the timesteps they were
   distilled for (`ltx_video/inference.py` reads it from that JSON; the 13B and 2B 0.9.8 distilled files list the
   multi-scale 7 + 3 timesteps `[1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, 0.725, 0.4219]`); dev checkpoints
   have none. The transformer's depth, read from the weights: 48 blocks = 13B, 28 = 2B.
3. **An attached distilled LoRA** (`ltxv-13b-0.9.7-distilled-lora128`) turns a dev model into the distilled one.

The contents outrank the name: a file named like an official one whose weights or metadata say otherwise (a
renamed merge) gets the recipe its contents fit, and the reason says so. Without an official name the version is
the default one for the size and kind (13B: 0.9.7; 2B dev: 0.9.6; 2B distilled: 0.9.8 when its allowed
timesteps hold the multi-scale ones, else 0.9.6). With no signal at all the default is `FALLBACK_RECIPE`, the hosted
service's 0.9.7 dev recipe.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from .recipes import RECIPES

FALLBACK_RECIPE = "0.9.7-dev"
"""The recipe of a checkpoint that says nothing about itself (the hosted service's)."""

LAYERS_BY_SIZE = {"13b": 48, "2b": 28}
"""Transformer blocks of each released model size."""

# (size, version, kind) of an official file → the recipe its yaml holds.
OFFICIAL_RECIPES: dict[tuple[str, str, str], str] = {
    ("13b", "0.9.7", "dev"): "0.9.7-dev",
    ("13b", "0.9.7", "distilled"): "0.9.7-distilled",
    ("13b", "0.9.8", "dev"): "0.9.8-dev",
    ("13b", "0.9.8", "distilled"): "0.9.8-distilled",
    ("2b", "0.9.8", "distilled"): "0.9.8-2b-distilled",
    ("2b", "0.9.6", "dev"): "0.9.6-2b-dev",
    ("2b", "0.9.6", "distilled"): "0.9.6-2b-distilled",
}
# (size, kind) → the recipe when the version is not known from the name.
_DEFAULT_VERSION = {("13b", "dev"): "0.9.7-dev", ("13b", "distilled"): "0.9.7-distilled",
                    ("2b", "dev"): "0.9.6-2b-dev", ("2b", "distilled"): "0.9.6-2b-distilled"}

_OFFICIAL_NAME = re.compile(r"ltxv-(?P<size>13b|2b)-(?P<version>0\.9\.[678])-(?P<kind>dev|distilled)"
                            r"(?:-04-25)?(?:-fp8)?", re.IGNORECASE)
_DISTILLED_LORA = re.compile(r"ltxv-13b-(?P<version>0\.9\.[78])-distilled-lora\d*", re.IGNORECASE)


@dataclass(frozen=True)
class RecipeGuess:
    """The recipe chosen for a checkpoint and the sentence that says from what (shown to the user)."""

    recipe: str
    reason: str
    certain: bool
    """False when a signal was missing or contradicted another (the host logs it as a warning)."""


def _official_name(file: str) -> tuple[str, str, str] | None:
    """(size, version, kind) of an official file name (any case, any extension), else None."""
    match = _OFFICIAL_NAME.fullmatch(PurePath(file).stem)
    if match is None:
        return None
    named = (match["size"].lower(), match["version"], match["kind"].lower())
    return named if named in OFFICIAL_RECIPES else None


def _base_name(path: str) -> str:
    return PurePath(str(path).replace("\\", "/")).name


def _size(num_layers: int | None) -> str | None:
    return next((size for size, layers in LAYERS_BY_SIZE.items() if layers == num_layers), None)


def _multi_scale_distilled(allowed: Sequence[float]) -> bool:
    """Whether the allowed timesteps hold both passes of the multi-scale distilled recipes."""
    recipe = RECIPES["0.9.8-2b-distilled"]
    wanted = {round(float(t), 4) for name in ("first_pass", "second_pass") for t in recipe[name]["timesteps"]}
    return wanted <= {round(float(t), 4) for t in allowed}


def recipe_for_checkpoint(path: str, config: Mapping[str, Any], lora_paths: Sequence[str] = ()) -> RecipeGuess:
    """The official recipe for the checkpoint at `path` whose loaded config (the metadata `config` JSON, with the
    transformer config read from the weights when the file has none) is `config`; see the module docstring."""
    file = _base_name(path)
    allowed = config.get("allowed_inference_steps")
    metadata_kind = "distilled" if allowed else None
    num_layers = (config.get("transformer") or {}).get("num_layers")
    size = _size(num_layers)
    named = _official_name(file)
    doubts, version, kind = [], None, metadata_kind or "dev"
    if named is not None:
        named_size, version, named_kind = named
        if size is not None and size != named_size:
            doubts.append(f"its name says {named_size.upper()} but its transformer has {num_layers} blocks")
            version = None
        if metadata_kind and named_kind != metadata_kind:
            doubts.append("its name says dev but its metadata lists allowed_inference_steps (distilled)")
        else:
            kind = named_kind
        size = size or named_size
        source = f"the official file name '{file}'" if not doubts else f"'{file}', whose {'; '.join(doubts)}"
    else:
        source = f"'{file}' (not an official file name)"
    loras = [_base_name(p) for p in lora_paths]
    distilled_lora = next((name for name in loras if _DISTILLED_LORA.fullmatch(PurePath(name).stem)), None)
    if distilled_lora and kind == "dev":
        kind = "distilled"
        source += f" with the distilled LoRA '{distilled_lora}' attached"
    recipe = OFFICIAL_RECIPES.get((size, version, kind)) if version else None
    if recipe is not None:
        return RecipeGuess(recipe, f"{source} → {recipe}", certain=not doubts)
    if size is not None:
        recipe = _DEFAULT_VERSION[(size, kind)]
        if (size, kind) == ("2b", "distilled") and allowed and _multi_scale_distilled(allowed):
            recipe = "0.9.8-2b-distilled"
        facts = "allowed_inference_steps in its metadata (distilled)" if allowed else kind
        return RecipeGuess(recipe, f"{source}: {size.upper()} ({num_layers} blocks), {facts} → {recipe}",
                           certain=False)
    recipe = "0.9.7-distilled" if kind == "distilled" else FALLBACK_RECIPE
    what = "allowed_inference_steps in its metadata (distilled)" if allowed else "no kind in its metadata"
    depth = f"a {num_layers}-block transformer (no released size)" if num_layers else "no transformer config"
    return RecipeGuess(recipe, f"{source}: {depth}, {what} → the default {recipe}", certain=False)
