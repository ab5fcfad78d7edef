"""The recipe the sampling nodes run for a label (`hosted/recipes.py`), the `auto` choice resolved from the loaded
checkpoint (`ltx_core.recipe_for_checkpoint`), and the tooltip that explains every label."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ..hosted import AUTO_RECIPE, RECIPE_CHOICES, RECIPE_OPTIONS, RecipeChoice
from ..ltx_core.sampling import recipe_for_checkpoint

logger = logging.getLogger(__name__)

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
