"""The recipes the sampling nodes offer: each official `ltx_core` recipe under a label, with what the node must know
of it (whether it needs the upsampler, whether it runs fixed timesteps) and the sentence its tooltip shows."""

from __future__ import annotations

from dataclasses import dataclass

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
DEFAULT_RECIPE = "0.9.7 dev multi-scale"
RECIPE_TOOLTIP = "Sampling recipe: " + "; ".join(f"{c.label}: {c.about}" for c in RECIPE_CHOICES.values()) + "."


def recipe_choice(label: str) -> RecipeChoice:
    if label not in RECIPE_CHOICES:
        raise ValueError(f"recipe '{label}' is not one of: {', '.join(RECIPE_CHOICES)}")
    return RECIPE_CHOICES[label]
