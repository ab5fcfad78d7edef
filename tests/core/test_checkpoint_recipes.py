"""`ltx_core.sampling.recipe_for_checkpoint`: the official recipe chosen from what a checkpoint file says.

Each file here is a tiny safetensors file whose `config` metadata is shaped like the released checkpoints': the
transformer config (48 blocks = 13B, 28 = 2B), and for distilled files `allowed_inference_steps`, the 7 + 3
timesteps read from the `ltxv-13b-0.9.8-distilled` header (the key `ltx_video/inference.py` reads from that JSON).
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ltx_core import Transformer3D, load_checkpoint
from ltx_core.sampling import recipe_for_checkpoint
from support import tiny

DISTILLED_STEPS = [1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, 0.725, 0.4219]


def _write(folder, name: str, *, layers: int | None, allowed: list[float] | None = None) -> tuple[str, dict]:
    """A file with the metadata of a released checkpoint (one dummy tensor): its path and its read-back config."""
    config: dict = {"scheduler": tiny.scheduler_config()}
    if layers is not None:
        config["transformer"] = {**tiny.transformer_config(), "num_layers": layers}
    if allowed is not None:
        config["allowed_inference_steps"] = allowed
    path = folder / name
    save_file({"model.diffusion_model.proj_out.bias": torch.zeros(1)}, str(path),
              metadata={"config": json.dumps(config)})
    with safe_open(str(path), framework="pt") as file:
        return str(path), json.loads(file.metadata()["config"])


@pytest.mark.parametrize("name, layers, allowed, recipe", [
    ("ltxv-13b-0.9.7-dev.safetensors", 48, None, "0.9.7-dev"),
    ("ltxv-13b-0.9.7-dev-fp8.safetensors", 48, None, "0.9.7-dev"),
    ("ltxv-13b-0.9.7-distilled.safetensors", 48, DISTILLED_STEPS, "0.9.7-distilled"),
    ("ltxv-13b-0.9.7-distilled-fp8.safetensors", 48, DISTILLED_STEPS, "0.9.7-distilled"),
    ("ltxv-13b-0.9.8-dev.safetensors", 48, None, "0.9.8-dev"),
    ("ltxv-13b-0.9.8-dev-fp8.safetensors", 48, None, "0.9.8-dev"),
    ("ltxv-13b-0.9.8-distilled.safetensors", 48, DISTILLED_STEPS, "0.9.8-distilled"),
    ("LTXV-13B-0.9.8-DISTILLED-FP8.safetensors", 48, DISTILLED_STEPS, "0.9.8-distilled"),
    ("ltxv-2b-0.9.8-distilled.safetensors", 28, DISTILLED_STEPS, "0.9.8-2b-distilled"),
    ("ltxv-2b-0.9.8-distilled-fp8.safetensors", 28, DISTILLED_STEPS, "0.9.8-2b-distilled"),
    ("ltxv-2b-0.9.6-dev-04-25.safetensors", 28, None, "0.9.6-2b-dev"),
    ("ltxv-2b-0.9.6-distilled-04-25.safetensors", 28, None, "0.9.6-2b-distilled"),
])
def test_each_official_file_gets_its_recipe(tmp_path, name, layers, allowed, recipe):
    guess = recipe_for_checkpoint(*_write(tmp_path, name, layers=layers, allowed=allowed))
    assert (guess.recipe, guess.certain) == (recipe, True)
    assert name in guess.reason and recipe in guess.reason


@pytest.mark.parametrize("name, layers, allowed, recipe", [
    ("my-merge.safetensors", 48, DISTILLED_STEPS, "0.9.7-distilled"),  # distilled by its metadata
    ("my-merge.safetensors", 48, None, "0.9.7-dev"),
    ("my-2b.safetensors", 28, DISTILLED_STEPS, "0.9.8-2b-distilled"),  # the multi-scale timesteps: 0.9.8
    ("my-2b.safetensors", 28, [1.0, 0.99, 0.95], "0.9.6-2b-distilled"),
    ("my-2b.safetensors", 28, None, "0.9.6-2b-dev"),
    # renamed files: the contents outrank the name
    ("ltxv-13b-0.9.8-dev.safetensors", 48, DISTILLED_STEPS, "0.9.8-distilled"),
    ("ltxv-13b-0.9.7-dev.safetensors", 28, None, "0.9.6-2b-dev"),
    ("ltxv-13b-0.9.7-distilled.safetensors", 28, DISTILLED_STEPS, "0.9.8-2b-distilled"),
    # nothing to go by: the documented default
    ("model.safetensors", None, None, "0.9.7-dev"),
    ("model.safetensors", 2, DISTILLED_STEPS, "0.9.7-distilled"),
])
def test_ambiguous_files_fall_back_and_say_why(tmp_path, name, layers, allowed, recipe):
    guess = recipe_for_checkpoint(*_write(tmp_path, name, layers=layers, allowed=allowed))
    assert (guess.recipe, guess.certain) == (recipe, False)
    assert name in guess.reason and recipe in guess.reason
    assert ("its name says" in guess.reason) == name.startswith("ltxv-")  # the contradiction is named


def test_the_distilled_lora_makes_a_dev_model_distilled(tmp_path):
    path, config = _write(tmp_path, "ltxv-13b-0.9.7-dev.safetensors", layers=48)
    lora = "/models/loras/ltxv-13b-0.9.7-distilled-lora128.safetensors"
    guess = recipe_for_checkpoint(path, config, [lora])
    assert (guess.recipe, guess.certain) == ("0.9.7-distilled", True)
    assert "ltxv-13b-0.9.7-distilled-lora128.safetensors" in guess.reason
    assert recipe_for_checkpoint(path, config, ["/models/loras/my-style.safetensors"]).recipe == "0.9.7-dev"


def test_a_loaded_checkpoint_keeps_what_the_choice_reads(tmp_path):
    """`load_checkpoint` keeps the metadata's `allowed_inference_steps` and the transformer config read from the
    weights, so the loaded model's config is enough to choose (a tiny 2-block model: no released size)."""
    tcfg = tiny.transformer_config()
    path = tiny.save_single_file(tmp_path / "renamed.safetensors", transformer=Transformer3D(tcfg),
                                 transformer_config_=tcfg, extra_config={"allowed_inference_steps": DISTILLED_STEPS})
    checkpoint = load_checkpoint(path)
    assert recipe_for_checkpoint(checkpoint.path, checkpoint.config).recipe == "0.9.7-distilled"
    dev = tiny.save_single_file(tmp_path / "ltxv-13b-0.9.8-dev.safetensors",
                                transformer=Transformer3D(tcfg), transformer_config_=tcfg)
    checkpoint = load_checkpoint(dev)
    assert recipe_for_checkpoint(checkpoint.path, checkpoint.config).recipe == "0.9.8-dev"
