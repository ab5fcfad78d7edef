"""Damaged LoRA files refused when they are read, with the file, the layer's key and the shapes or values named:
ranks that disagree (the host would silently leave the layer out), NaN / inf in a weight or an alpha (a black video),
an alpha that is not one number. In `ltx_core` (no host) and through the LoRA node (the node fails)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from ltx_core import Transformer3D
from ltx_core.lora.mapping import LoraError, map_lora
from support import tiny, tiny_lora
from support.lora_kit import ALPHA, with_lora

pytest_plugins = ["support.comfy_host", "support.lora_kit"]

LAYER = "transformer_blocks.1.attn1.to_k"
FILE = "damaged.safetensors"


@pytest.fixture(scope="module")
def shapes():
    with torch.device("meta"):
        model = Transformer3D(tiny.transformer_config())
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def good(shapes):
    with torch.device("meta"):
        model = Transformer3D(tiny.transformer_config())
    lora = tiny_lora.random_lora(tiny_lora.linear_modules(model), rank=4, seed=3)
    return tiny_lora.lora_tensors(lora, "comfyui_up_down_alpha", ALPHA)


def _refusal(tensors, shapes, metadata=None) -> str:
    with pytest.raises(LoraError) as error:
        map_lora(tensors, shapes, metadata, name=FILE)
    return str(error.value)


def test_the_undamaged_file_maps(good, shapes):
    tensors, metadata = good
    assert len(map_lora(tensors, shapes, metadata, name=FILE).modules) == 27


def test_ranks_that_disagree_are_named_with_both_shapes(good, shapes):
    tensors = dict(good[0])
    tensors[f"diffusion_model.{LAYER}.lora_down.weight"] = torch.randn(8, 64)  # lora_up is 64×4
    message = _refusal(tensors, shapes)
    assert f"'{FILE}' is damaged" in message, message
    assert (f"diffusion_model.{LAYER}.lora_up.weight is 64×4 but diffusion_model.{LAYER}.lora_down.weight is 8×64: "
            f"their ranks disagree (4 vs 8)") in message, message


def test_loha_factors_that_disagree_are_named(shapes):
    prefix = f"diffusion_model.{LAYER}"
    tensors = {f"{prefix}.hada_w1_a": torch.randn(64, 2), f"{prefix}.hada_w1_b": torch.randn(3, 64),
               f"{prefix}.hada_w2_a": torch.randn(64, 2), f"{prefix}.hada_w2_b": torch.randn(2, 64)}
    message = _refusal(tensors, shapes)
    assert f"{prefix}.hada_w1_a is 64×2 but {prefix}.hada_w1_b is 3×64: their ranks disagree (2 vs 3)" in message


@pytest.mark.parametrize("role, value, shown", [("lora_up.weight", float("nan"), "1 NaN and 0 infinite values"),
                                                ("lora_down.weight", float("-inf"), "0 NaN and 1 infinite values"),
                                                ("alpha", float("nan"), "1 NaN and 0 infinite values (of 1)"),
                                                ("alpha", float("inf"), "0 NaN and 1 infinite values (of 1)")])
def test_non_finite_values_are_named_by_tensor(good, shapes, role, value, shown):
    tensors = {k: v.clone() for k, v in good[0].items()}
    key = f"diffusion_model.{LAYER}.{role}"
    tensors[key].view(-1)[0] = value
    message = _refusal(tensors, shapes)
    assert f"'{FILE}' is damaged" in message and f"{key} holds {shown}" in message, message


def test_an_alpha_that_is_not_one_number_is_named(good, shapes):
    tensors = dict(good[0])
    tensors[f"diffusion_model.{LAYER}.alpha"] = torch.tensor([8.0, 8.0])
    message = _refusal(tensors, shapes)
    assert f"diffusion_model.{LAYER}.alpha holds 2 values where alpha is one number" in message, message


def test_a_nan_alpha_in_the_peft_metadata_is_named(shapes):
    with torch.device("meta"):
        model = Transformer3D(tiny.transformer_config())
    lora = tiny_lora.random_lora(tiny_lora.linear_modules(model), rank=4)
    tensors, metadata = tiny_lora.lora_tensors(lora, "diffusers_peft_metadata", ALPHA)
    config = json.loads(metadata["lora_adapter_metadata"])
    config["transformer.lora_alpha"] = float("nan")
    metadata = dict(metadata, lora_adapter_metadata=json.dumps(config))
    message = _refusal(tensors, shapes, metadata)
    assert "the PEFT metadata (lora_adapter_metadata) gives alpha nan" in message, message


# ------------------------------------------------------------------------------------------------------------------
# Through the node: the LoRA node fails (before: it reported success and the console alone said the layer was left
# out, or the video came out black)


def test_the_lora_node_fails_on_a_damaged_file(nodes, base, env, good):
    tensors = dict(good[0])
    tensors[f"diffusion_model.{LAYER}.lora_down.weight"] = torch.randn(8, 64)
    save_file(tensors, str(env["loras"] / "rank_mismatch.safetensors"))
    with pytest.raises(ValueError, match=rf"'rank_mismatch\.safetensors' is damaged .*{LAYER}\.lora_up\.weight is "
                                         rf"64×4 but .*lora_down\.weight is 8×64"):
        with_lora(nodes, base, "rank_mismatch.safetensors", 1.0)
    tensors = {k: v.clone() for k, v in good[0].items()}
    tensors[f"diffusion_model.{LAYER}.alpha"] = torch.tensor(float("nan"))
    save_file(tensors, str(env["loras"] / "nan_alpha.safetensors"))
    with pytest.raises(ValueError, match=rf"'nan_alpha\.safetensors' is damaged .*{LAYER}\.alpha holds 1 NaN"):
        with_lora(nodes, base, "nan_alpha.safetensors", 1.0)
