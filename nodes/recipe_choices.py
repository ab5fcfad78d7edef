"""The recipes the sampling nodes offer: each official `ltx_core` recipe under a label, with what the node must know
of it (whether it needs the upsampler, whether it runs fixed timesteps) and the sentence its tooltip shows, plus
the `auto` choice that takes the recipe the loaded checkpoint was released with (`ltx_core.recipe_for_checkpoint`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..ltx_core.sampling import recipe_for_checkpoint

logger = logging.getLogger(__name__)

UPSAMPLER_FILE = "ltxv-spatial-upscaler-0.9.7.safetensors"
"""The spatial latent upsampler the multi-scale recipes need (named in tooltips and errors)."""


@dataclass(frozen=True)
class RecipeChoice:
    label: str
    recipe: str | dict
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
AUTO_RECIPE = "auto (from the checkpoint)"
RECIPE_OPTIONS = [AUTO_RECIPE, *RECIPE_CHOICES]
DEFAULT_RECIPE = "0.9.7 dev multi-scale"
"""The one node's and the API's default, the hosted service's recipe (the Sampler's is `AUTO_RECIPE`)."""
RECIPE_TOOLTIP = ("Sampling recipe. auto: the recipe the loaded checkpoint was released with, from its official file "
                  "name, the allowed_inference_steps a distilled file's metadata lists, its size (48 blocks = 13B, "
                  "28 = 2B) and an attached distilled LoRA (a renamed or merged file gets the 0.9.7 recipe of its "
                  "size and kind); the recipe used is shown under the node and logged. "
                  + "; ".join(f"{c.label}: {c.about}" for c in RECIPE_CHOICES.values()) + ".")


def recipe_choice(label: str) -> RecipeChoice:
    """A named recipe (not `auto`, which needs the model: `chosen_recipe`)."""
    if label not in RECIPE_CHOICES:
        raise ValueError(f"recipe '{label}' is not one of: {', '.join(RECIPE_OPTIONS)}")
    return RECIPE_CHOICES[label]


def chosen_recipe(label: str, checkpoint_path: str, config: Mapping[str, Any],
                  lora_paths: Sequence[str] = ()) -> tuple[RecipeChoice, str]:
    """The recipe to run and the sentence that tells the user which (and, for `auto`, from what)."""
    if label != AUTO_RECIPE:
        return recipe_choice(label), f"recipe: {label}"
    guess = recipe_for_checkpoint(checkpoint_path, config, lora_paths)
    choice = next(c for c in RECIPE_CHOICES.values() if c.recipe == guess.recipe)
    if not guess.certain:
        logger.warning("recipe auto: %s; choose a recipe on the node if this is not the right one", guess.reason)
    return choice, f"recipe: {choice.label} (auto, from {guess.reason})"
