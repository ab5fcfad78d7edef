"""Sampling with the official recipes: schedules, guidance, conditions, the denoising passes, `sample_video`, and
`refine_video` (a refining pass over given latents)."""

from .checkpoint_recipes import RecipeGuess, recipe_for_checkpoint
from .condition_media import MIN_MEDIA_SIDE, padding_for, prepare_media, trim_frames
from .conditioning import Condition
from .guides import check_guide_start
from .passes import Callback, ModelHook, PassRunner, adain
from .pipeline import sample_video
from .preparation import MediaItems, Prepared, pass_shapes, prepare
from .recipes import RECIPES, check_recipe, max_branches, recipe_passes, resolve_recipe
from .refine import refine_video, refining_recipe

__all__ = ["MIN_MEDIA_SIDE", "RECIPES", "Callback", "Condition", "MediaItems", "ModelHook", "PassRunner", "Prepared",
           "RecipeGuess", "adain", "check_guide_start", "check_recipe", "max_branches", "pass_shapes", "padding_for",
           "prepare", "prepare_media", "recipe_for_checkpoint", "recipe_passes", "refine_video", "refining_recipe",
           "resolve_recipe", "sample_video", "trim_frames"]
