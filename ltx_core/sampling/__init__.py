"""Sampling with the official recipes: schedules, guidance, conditions, the denoising passes, `sample_video`."""

from .condition_media import MIN_MEDIA_SIDE, padding_for, prepare_media, trim_frames
from .conditioning import Condition
from .passes import Callback, ModelHook, PassRunner, adain
from .pipeline import sample_video
from .preparation import Prepared, pass_shapes, prepare
from .recipes import RECIPES, check_recipe, max_branches, recipe_passes, resolve_recipe

__all__ = ["MIN_MEDIA_SIDE", "RECIPES", "Callback", "Condition", "ModelHook", "PassRunner", "Prepared", "adain",
           "check_recipe", "max_branches", "pass_shapes", "padding_for", "prepare", "prepare_media", "recipe_passes",
           "resolve_recipe", "sample_video", "trim_frames"]
