"""`ltx_core.lora.mapping` without a host: format detection, key mapping to the official parameter names, PEFT metadata,
and the sentences for files that do not fit (plain torch; no ComfyUI imported)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ltx_core import Transformer3D
from ltx_core.lora.mapping import LoraError, lora_delta, map_lora, merge_lora_, peft_config, split_key
from support import tiny, tiny_lora

RANK, ALPHA = 4, 8.0


@pytest.fixture(scope="module")
def tcfg():
    return tiny.transformer_config()


@pytest.fixture(scope="module")
def shapes(tcfg):
    with torch.device("meta"):
        model = Transformer3D(tcfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def linears(tcfg):
    with torch.device("meta"):
        model = Transformer3D(tcfg)
    return tiny_lora.linear_modules(model)


@pytest.fixture(scope="module")
def lora(linears):
    return tiny_lora.random_lora(linears, rank=RANK)


def test_the_tiny_transformer_has_every_kind_of_linear(linears):
    names = set(linears)
    for expected in ("patchify_proj", "adaln_single.linear", "adaln_single.emb.timestep_embedder.linear_1",
                     "caption_projection.linear_2", "proj_out", "transformer_blocks.1.attn2.to_out.0",
                     "transformer_blocks.0.ff.net.0.proj", "transformer_blocks.0.ff.net.2"):
        assert expected in names
    assert len(names) == 7 + 10 * 2


@pytest.mark.parametrize("fmt", tiny_lora.FORMATS)
def test_every_format_maps_every_linear_layer(fmt, lora, shapes):
    tensors, metadata = tiny_lora.lora_tensors(lora, fmt, tiny_lora.format_alpha(fmt, ALPHA))
    mapping = map_lora(tensors, shapes, metadata, name=fmt)
    assert sorted(mapping.key_map.values()) == sorted(f"{m}.weight" for m in lora)
    assert mapping.unmatched == []
    assert mapping.kinds == ["lora"]
    expected_format = {"diffusers": "diffusers/PEFT", "comfyui": "ComfyUI", "kohya": "kohya", "bare": "bare"}
    assert mapping.formats == [expected_format[fmt.split("_")[0]]]
    factor = 1.0 if fmt in tiny_lora.ALPHA_FREE_FORMATS else ALPHA / RANK
    assert {m.factor for m in mapping.modules} == {factor} and {m.rank for m in mapping.modules} == {RANK}
    # what the host reads: the file's tensors for each layer, plus `.alpha` derived from the PEFT metadata
    for module in mapping.modules:
        for key in module.keys.values():
            assert mapping.state_dict[key] is tensors[key]
    if fmt == "diffusers_peft_metadata":
        alphas = {k: v for k, v in mapping.state_dict.items() if k.endswith(".alpha")}
        assert len(alphas) == len(lora) and all(float(v) == ALPHA for v in alphas.values())
    assert "27 layers" in mapping.summary()


def test_kohya_names_resolve_against_real_module_names(shapes):
    names = {
        "lora_unet_transformer_blocks_1_attn1_to_out_0": "transformer_blocks.1.attn1.to_out.0.weight",
        "lora_unet_transformer_blocks_0_ff_net_0_proj": "transformer_blocks.0.ff.net.0.proj.weight",
        "lora_unet_transformer_blocks_0_attn2_to_k": "transformer_blocks.0.attn2.to_k.weight",
        "lora_unet_adaln_single_emb_timestep_embedder_linear_2": "adaln_single.emb.timestep_embedder.linear_2.weight",
        "lora_unet_time_embed_linear": "adaln_single.linear.weight",
        "lycoris_caption_projection_linear_2": "caption_projection.linear_2.weight",
        "lora_transformer_proj_out": "proj_out.weight",
    }
    tensors = {}
    for name, target in names.items():
        out_features, in_features = shapes[target]
        tensors[f"{name}.lora_down.weight"] = torch.zeros(2, in_features)
        tensors[f"{name}.lora_up.weight"] = torch.zeros(out_features, 2)
    tensors["lora_unet_proj_in.lora_down.weight"] = torch.zeros(2, 128)
    tensors["lora_unet_proj_in.lora_up.weight"] = torch.zeros(64, 2)
    mapping = map_lora(tensors, shapes, name="kohya")
    assert mapping.key_map == {**names, "lora_unet_proj_in": "patchify_proj.weight"}


def test_tables_take_full_diffs_but_not_low_rank_adapters(shapes):
    tensors = {
        "lora_unet_transformer_blocks_0_scale_shift_table.lora_down.weight": torch.zeros(2, 64),
        "lora_unet_transformer_blocks_0_scale_shift_table.lora_up.weight": torch.zeros(6, 2),
        "diffusion_model.scale_shift_table.diff": torch.zeros(2, 64),
        "diffusion_model.proj_out.diff_b": torch.zeros(128),
    }
    mapping = map_lora(tensors, shapes, name="diffs")
    assert mapping.key_map == {"diffusion_model.scale_shift_table": "scale_shift_table",
                               "diffusion_model.proj_out": "proj_out.weight"}
    assert mapping.kinds == ["diff"]
    assert sorted(mapping.unmatched) == sorted(k for k in tensors if "lora_unet" in k)


def test_peft_metadata_patterns_and_rslora(lora, shapes):
    tensors, _ = tiny_lora.lora_tensors(lora, "diffusers_no_alpha", None)
    metadata = tiny_lora.peft_metadata(lora, RANK, ALPHA, alpha_pattern={"transformer_blocks.0.attn1.to_q": 2.0})
    factors = {m.target: m.factor for m in map_lora(tensors, shapes, metadata).modules}
    assert factors.pop("transformer_blocks.0.attn1.to_q.weight") == 2.0 / RANK
    assert set(factors.values()) == {ALPHA / RANK}
    rs = map_lora(tensors, shapes, tiny_lora.peft_metadata(lora, RANK, ALPHA, use_rslora=True))
    assert {round(m.factor, 12) for m in rs.modules} == {round(ALPHA / math.sqrt(RANK), 12)}
    # `transformer.save_lora_adapter` writes the config without the "transformer." prefix
    plain = {"lora_adapter_metadata": json.dumps({"r": RANK, "lora_alpha": 2 * ALPHA})}
    assert peft_config(plain)["lora_alpha"] == 2 * ALPHA
    assert {m.factor for m in map_lora(tensors, shapes, plain).modules} == {2 * ALPHA / RANK}
    # an explicit .alpha in the file wins over the metadata
    with_alpha = dict(tensors, **{"transformer.proj_out.alpha": torch.tensor(1.0)})
    factors = {m.target: m.factor for m in map_lora(with_alpha, shapes, metadata).modules}
    assert factors["proj_out.weight"] == 1.0 / RANK
    assert peft_config({"lora_adapter_metadata": "not json"}) is None and peft_config(None) is None


def test_keys_that_fit_nothing_are_listed(lora, shapes):
    tensors, _ = tiny_lora.lora_tensors(lora, "comfyui_up_down_alpha", ALPHA)
    extra = {
        "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": torch.zeros(2, 8),
        "diffusion_model.transformer_blocks.7.attn1.to_q.lora_down.weight": torch.zeros(4, 64),
        "diffusion_model.transformer_blocks.7.attn1.to_q.lora_up.weight": torch.zeros(64, 4),
        "something_else": torch.zeros(1),
    }
    mapping = map_lora({**tensors, **extra}, shapes, name="extra")
    assert sorted(mapping.unmatched) == sorted(extra)
    assert len(mapping.modules) == len(lora)
    assert "4 keys unused" in mapping.summary()


def test_a_file_that_fits_nothing_names_keys_and_formats(shapes):
    tensors = {"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": torch.zeros(2, 8),
               "double_blocks.0.img_attn.qkv.lora_A.weight": torch.zeros(2, 8)}
    with pytest.raises(LoraError) as error:
        map_lora(tensors, shapes, name="flux_lora.safetensors")
    message = str(error.value)
    assert "'flux_lora.safetensors' has no LoRA weights for the LTX-Video transformer" in message
    assert "double_blocks.0.img_attn.qkv.lora_A.weight" in message
    assert "transformer.transformer_blocks.0.attn1.to_q.lora_A.weight" in message and "lora_unet_" in message


def test_a_lora_for_another_model_size_is_refused(shapes):
    big = tiny_lora.random_lora({"transformer_blocks.0.attn1.to_q": (128, 128),
                                 "transformer_blocks.0.attn1.to_k": (128, 128)})
    tensors, metadata = tiny_lora.lora_tensors(big, "diffusers_no_alpha", None)
    with pytest.raises(LoraError, match=r"does not fit this model: 2 of 2 layers differ in shape, e\.g\. "
                                        r"transformer_blocks\.0\.attn1\.to_k\.weight is 64×64 but the file's LoRA "
                                        r"for it makes 128×128"):
        map_lora(tensors, shapes, metadata, name="13b_lora")


def test_incomplete_and_duplicated_layers_are_refused(shapes):
    with pytest.raises(LoraError, match=r"is incomplete: 1 layers lack tensors, e\.g\. "
                                        r"transformer\.proj_out \(no down\)"):
        map_lora({"transformer.proj_out.lora_B.weight": torch.zeros(128, 2)}, shapes, name="half")
    lokr = {"lora_unet_proj_out.lokr_w1_a": torch.zeros(8, 2), "lora_unet_proj_out.lokr_w2": torch.zeros(16, 8)}
    with pytest.raises(LoraError, match=r"lora_unet_proj_out \(no w1_b\)"):
        map_lora(lokr, shapes, name="half lokr")
    twice = {"transformer.proj_out.lora_A.weight": torch.zeros(2, 64),
             "transformer.proj_out.lora_B.weight": torch.zeros(128, 2),
             "diffusion_model.proj_out.lora_A.weight": torch.zeros(2, 64),
             "diffusion_model.proj_out.lora_B.weight": torch.zeros(128, 2)}
    with pytest.raises(LoraError, match="adapts 1 layers twice under different names"):
        map_lora(twice, shapes, name="twice")


def test_unsupported_adapter_types_are_named(shapes):
    tensors = {"transformer.proj_out.vera_lambda_b": torch.zeros(128),
               "transformer.proj_out.lora_A.weight": torch.zeros(2, 64)}
    with pytest.raises(LoraError, match=r"'vera' is not supported: VeRA adapters"):
        map_lora(tensors, shapes, name="vera")


def test_other_adapter_types_are_recognised(shapes):
    out_features, in_features = shapes["transformer_blocks.0.attn1.to_q.weight"]
    tensors = {
        "lora_unet_transformer_blocks_0_attn1_to_q.hada_w1_a": torch.zeros(out_features, 2),
        "lora_unet_transformer_blocks_0_attn1_to_q.hada_w1_b": torch.zeros(2, in_features),
        "lora_unet_transformer_blocks_0_attn1_to_q.hada_w2_a": torch.zeros(out_features, 2),
        "lora_unet_transformer_blocks_0_attn1_to_q.hada_w2_b": torch.zeros(2, in_features),
        "lora_unet_transformer_blocks_0_attn1_to_q.alpha": torch.tensor(2.0),
        "lora_unet_transformer_blocks_0_attn1_to_k.lokr_w1": torch.zeros(8, 8),
        "lora_unet_transformer_blocks_0_attn1_to_k.lokr_w2_a": torch.zeros(8, 2),
        "lora_unet_transformer_blocks_0_attn1_to_k.lokr_w2_b": torch.zeros(2, 8),
        "transformer.transformer_blocks.0.attn1.to_v.lora_A.weight": torch.zeros(2, in_features),
        "transformer.transformer_blocks.0.attn1.to_v.lora_B.weight": torch.zeros(out_features, 2),
        "transformer.transformer_blocks.0.attn1.to_v.lora_magnitude_vector": torch.ones(out_features),
    }
    mapping = map_lora(tensors, shapes, name="mixed")
    kinds = {m.target: m.kind for m in mapping.modules}
    assert kinds == {"transformer_blocks.0.attn1.to_q.weight": "loha", "transformer_blocks.0.attn1.to_k.weight": "lokr",
                     "transformer_blocks.0.attn1.to_v.weight": "dora"}
    assert mapping.formats == ["kohya", "diffusers/PEFT"]
    assert mapping.state_dict["transformer.transformer_blocks.0.attn1.to_v.dora_scale"].shape == (out_features, 1)
    # a LoKr whose Kronecker product does not make the layer's shape is caught before the host sees it
    tensors["lora_unet_transformer_blocks_0_attn1_to_k.lokr_w1"] = torch.zeros(4, 8)
    with pytest.raises(LoraError, match=r"transformer_blocks\.0\.attn1\.to_k\.weight is 64×64 but the file's LoKr "
                                        r"for it makes 32×64"):
        map_lora(tensors, shapes, name="bad lokr")


def test_split_key_knows_the_adapter_spellings():
    assert split_key("transformer.proj_out.lora_A.weight") == ("transformer.proj_out", "lora", "down")
    assert split_key("lora_unet_proj_out.lora_up.weight") == ("lora_unet_proj_out", "lora", "up")
    assert split_key("x.to_q_lora.up.weight") == ("x.to_q", "lora", "up")
    assert split_key("x.lora_B.default.weight") == ("x", "lora", "up")
    assert split_key("x.diff_b") == ("x", "diff", "bias") and split_key("x.diff") == ("x", "diff", "weight")
    assert split_key("x.hada_t1") == ("x", "loha", "t1") and split_key("x.weight") is None


def test_plain_torch_merge_matches_the_official_reference(tcfg, lora, shapes):
    tensors, metadata = tiny_lora.lora_tensors(lora, "kohya", ALPHA)
    mapping = map_lora(tensors, shapes, metadata)
    module = next(m for m in mapping.modules if m.target == "proj_out.weight")
    a, b = lora["proj_out"]
    torch.testing.assert_close(lora_delta(mapping, module, 0.5), 0.5 * ALPHA / RANK * (b @ a))
    model = tiny.reference_transformer(tcfg)
    merge_lora_(dict(model.named_parameters()), [(mapping, 0.5)])
    expected = tiny_lora.merged_reference(tcfg, [(lora, 0.5 * ALPHA / RANK)])
    for (name, actual), (_, wanted) in zip(model.state_dict().items(), expected.state_dict().items()):
        torch.testing.assert_close(actual, wanted, msg=name)


def test_full_model_lora_layout_places_every_tensor(lora, shapes):
    """A LoRA that adapts the whole transformer, as a distilled LoRA (turning dev into distilled) or an IC-LoRA may:
    low-rank factors on every linear layer (patchify, caption and time embeddings included) plus full diffs of
    biases, q/k norms and the modulation tables, in the ComfyUI layout. Every tensor is placed, none is left."""
    tensors, _ = tiny_lora.lora_tensors(lora, "comfyui_up_down_alpha", ALPHA)
    diffs = {"transformer_blocks.0.attn1.to_q.bias": "diffusion_model.transformer_blocks.0.attn1.to_q.diff_b",
             "patchify_proj.bias": "diffusion_model.patchify_proj.diff_b",
             "transformer_blocks.1.attn2.q_norm.weight": "diffusion_model.transformer_blocks.1.attn2.q_norm.diff",
             "transformer_blocks.0.scale_shift_table": "diffusion_model.transformer_blocks.0.scale_shift_table.diff",
             "scale_shift_table": "diffusion_model.scale_shift_table.diff"}
    tensors.update({key: torch.full(shapes[target], 0.01) for target, key in diffs.items()})
    mapping = map_lora(tensors, shapes, name="full-model")
    assert mapping.unmatched == []
    placed = {key for module in mapping.modules for key in module.keys.values()}
    assert placed == set(tensors)
    targets = {module.target: module for module in mapping.modules}
    assert {f"{m}.weight" for m in lora} <= set(targets)
    assert {"transformer_blocks.1.attn2.q_norm.weight", "transformer_blocks.0.scale_shift_table",
            "scale_shift_table"} <= set(targets)
    assert targets["transformer_blocks.0.attn1.to_q.weight"].keys["bias"] == diffs[
        "transformer_blocks.0.attn1.to_q.bias"]
    assert targets["patchify_proj.weight"].keys["bias"] == diffs["patchify_proj.bias"]
    assert sorted(mapping.kinds) == ["diff", "lora"]
