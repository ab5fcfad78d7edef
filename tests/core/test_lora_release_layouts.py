"""The LoRAs Lightricks released for the 13B model, in their exact key layouts, on the tiny transformer.

Where the layouts come from: the model pages (`Lightricks/LTX-Video`, `Lightricks/LTX-Video-ICLoRA-*-13b-0.9.7`,
`-detailer-13b-0.9.8`) name the files but list no keys; the keys, ranks and counts below are those of the files'
safetensors headers as inventoried in a public LTX-Video feature-parity reference (headers read from the HF files,
2026-04), and match the LTX-Video-Trainer's ComfyUI conversion (`transformer.` → `diffusion_model.`, `lora_A` /
`lora_B` kept; spec §7):

- `ltxv-13b-0.9.7-distilled-lora128.safetensors`: rank 128, `diffusion_model.<official module>.lora_A.weight` and
  `.lora_B.weight` on every Linear of the transformer: attn1 / attn2 `to_q`, `to_k`, `to_v`, `to_out.0` and
  `ff.net.0.proj`, `ff.net.2` in every block, plus `patchify_proj`, `proj_out`, `caption_projection.linear_1/2`,
  `adaln_single.linear` and `adaln_single.emb.timestep_embedder.linear_1/2`: 974 tensors on 48 blocks
  (48·10·2 + 7·2). No biases, norms or full diffs, no alpha, empty metadata.
- The IC-LoRA ComfyUI files `ltxv-097-ic-lora-{canny,depth}-control-comfyui.safetensors` (rank 8) and
  `ltxv-098-ic-lora-detailer-comfyui.safetensors` (rank 128): the same spelling on the ten block layers (960 =
  48·10·2); `ltxv-097-ic-lora-pose-control-comfyui.safetensors` (rank 24): attention only (768 = 48·8·2).

Every tensor must be placed (each weight becomes base + scale·B·A, for every kind of layer), the model's output
must move, and a key that names no layer of the model must be named back.
"""

from __future__ import annotations

import pytest
import torch

from ltx_core.lora.mapping import map_lora, merge_lora_
from support import tiny, tiny_lora

SCALE = 0.7
BLOCK_LAYERS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k",
                "attn2.to_v", "attn2.to_out.0", "ff.net.0.proj", "ff.net.2")
MODEL_LAYERS = ("patchify_proj", "proj_out", "caption_projection.linear_1", "caption_projection.linear_2",
                "adaln_single.linear", "adaln_single.emb.timestep_embedder.linear_1",
                "adaln_single.emb.timestep_embedder.linear_2")


def _released_layout(layers: dict[str, tuple[int, int]], rank: int) -> tuple[dict, dict[str, torch.Tensor]]:
    """(LoRA, tensors) in the released ComfyUI spelling: `diffusion_model.<module>.lora_A/B.weight`, no alpha."""
    lora = tiny_lora.random_lora(layers, rank=rank, seed=rank)
    tensors, metadata = tiny_lora.lora_tensors(lora, "comfyui_trainer", None)
    assert metadata == {"format": "pt"}
    assert all(k.startswith("diffusion_model.") and k.endswith((".lora_A.weight", ".lora_B.weight")) for k in tensors)
    return lora, tensors


@pytest.fixture(scope="module")
def tcfg():
    return tiny.transformer_config()


@pytest.fixture(scope="module")
def base(tcfg):
    return tiny.reference_transformer(tcfg)


@pytest.fixture(scope="module")
def linears(base):
    return tiny_lora.linear_modules(base)


def _layers(linears, block_layers, model_layers=()):
    blocks = {name.split(".")[1] for name in linears if name.startswith("transformer_blocks.")}
    chosen = [f"transformer_blocks.{b}.{layer}" for b in sorted(blocks) for layer in block_layers]
    return {name: linears[name] for name in [*chosen, *model_layers]}


@pytest.mark.parametrize("file, block_layers, model_layers, rank", [
    ("ltxv-13b-0.9.7-distilled-lora128", BLOCK_LAYERS, MODEL_LAYERS, 128),
    ("ltxv-097-ic-lora-canny-control-comfyui", BLOCK_LAYERS, (), 8),
    ("ltxv-097-ic-lora-pose-control-comfyui", BLOCK_LAYERS[:8], (), 24),
    ("ltxv-098-ic-lora-detailer-comfyui", BLOCK_LAYERS, (), 128),
])
def test_released_layouts_place_every_tensor(tcfg, base, linears, file, block_layers, model_layers, rank):
    layers = _layers(linears, block_layers, model_layers)
    blocks = tcfg["num_layers"]
    assert len(layers) == blocks * len(block_layers) + len(model_layers)  # 974 / 960 / 768 tensors at 48 blocks
    lora, tensors = _released_layout(layers, rank)
    shapes = {k: tuple(v.shape) for k, v in base.state_dict().items()}
    mapping = map_lora(tensors, shapes, {"format": "pt"}, name=file)
    assert mapping.unmatched == [] and mapping.kinds == ["lora"]
    assert {key for module in mapping.modules for key in module.keys.values()} == set(tensors)
    model = tiny.reference_transformer(tcfg)
    inputs = tiny_lora.forward_inputs(tcfg)
    before = tiny_lora.reference_output(model, inputs)
    merge_lora_(dict(model.named_parameters()), [(mapping, SCALE)])
    merged, original = dict(model.named_parameters()), dict(base.named_parameters())
    for name, (a, b) in lora.items():  # no alpha: the factor is the scale alone
        torch.testing.assert_close(merged[f"{name}.weight"], original[f"{name}.weight"] + SCALE * (b @ a), msg=name)
    untouched = [n for n in original if n.removesuffix(".weight") not in lora]
    assert untouched and all(torch.equal(merged[n], original[n]) for n in untouched)  # biases, norms, tables
    assert (tiny_lora.reference_output(model, inputs) - before).abs().max() > 1e-3


def test_a_key_the_model_cannot_take_is_named(linears, base):
    """A released-layout file with a layer this transformer lacks: the rest is placed, that key is named back."""
    _, tensors = _released_layout(_layers(linears, BLOCK_LAYERS, MODEL_LAYERS), 8)
    stray = "diffusion_model.audio_embedder.linear_1.lora_A.weight"
    tensors[stray] = torch.zeros(8, 16)
    mapping = map_lora(tensors, {k: tuple(v.shape) for k, v in base.state_dict().items()}, name="lora128")
    assert stray in mapping.unmatched
    assert {key for module in mapping.modules for key in module.keys.values()} == set(tensors) - set(mapping.unmatched)
