"""The sampling recipes under the labels users pick them by: the `recipe` choices of the sampling nodes and the
`recipe` setting of the API's `ltxv097_api.json`.

Each label names an official `ltx_core` recipe, with what a node must know of it (whether it needs the upsampler,
whether it runs fixed timesteps) and the sentence its tooltip shows. Plain Python, like `defaults`: `service/`
checks its setting against these labels without importing `nodes/` (whose package needs ComfyUI); choosing the
`auto` recipe from a loaded checkpoint stays in `nodes/recipe_choices.py`.
"""

from __future__ import annotations

from dataclasses import dataclass


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
"""The recipe the loaded checkpoint was released with (`ltx_core.recipe_for_checkpoint`)."""
RECIPE_OPTIONS = [AUTO_RECIPE, *RECIPE_CHOICES]
DEFAULT_RECIPE = "0.9.7 dev multi-scale"
"""The one node's and the API's default, the hosted service's recipe (the Sampler's is `AUTO_RECIPE`)."""
