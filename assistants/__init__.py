"""Helper models around generation that run on Hugging Face `transformers`: the prompt enhancer (a text LLM and an
image captioner) and the safety checker (an image classifier).

Kept out of `ltx_core`, which is plain torch. `transformers` is imported only when a model is loaded, so importing
this package costs nothing. Models load from local folders in Hugging Face layout with `transformers`' own
classes; code shipped with a model is never run (no `trust_remote_code`).
"""

from .folders import ModelFolderError, model_folders, require_files
from .prompts import EnhancePlan, fit_to_budget, plan_enhancement, word_count

__all__ = ["ModelFolderError", "model_folders", "require_files", "EnhancePlan", "fit_to_budget",
           "plan_enhancement", "word_count"]
