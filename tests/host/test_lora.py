"""The LoRA nodes in-process on the real host modules (CPU): parity of every format with weights merged by hand and
with diffusers' PEFT LoRA, stacking, scale 0, unpatching, re-patching, low-VRAM and fp8 loading, and the other
adapter types (LoHa, LoKr, DoRA)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from support import tiny, tiny_lora
from support.lora_kit import ALPHA, RANK, TOLERANCE, load_model, reference, require_peft, run, with_lora

pytest_plugins = ["support.comfy_host", "support.lora_kit"]


def test_base_models_agree_with_diffusers(tcfg, inputs, base_output):
    """The base of every comparison below: ours, the official transformer and diffusers' agree without LoRA."""
    diffusers_model = tiny_lora.diffusers_transformer(tcfg)
    torch.testing.assert_close(base_output, tiny_lora.diffusers_output(diffusers_model, inputs), **TOLERANCE)
    torch.testing.assert_close(base_output, reference(tcfg, inputs), **TOLERANCE)


def _factor(fmt: str, scale: float) -> float:
    return scale * (1.0 if fmt in tiny_lora.ALPHA_FREE_FORMATS else ALPHA / RANK)


@pytest.mark.parametrize("fmt", tiny_lora.FORMATS)
def test_every_format_equals_the_weights_merged_by_hand(fmt, nodes, comfy_host, base, lora_files, lora, tcfg, inputs,
                                                       base_output):
    """The official transformer with `W + scale · alpha/rank · B @ A` merged into every linear layer."""
    model = with_lora(nodes, base, lora_files[fmt], 0.7)
    actual = run(comfy_host, model, inputs)
    assert (actual - base_output).abs().max() > 0.05, "the LoRA should change the output"
    torch.testing.assert_close(actual, reference(tcfg, inputs, (lora, _factor(fmt, 0.7))), **TOLERANCE)
    assert model.extra["loras"][0]["layers"] == 27


@pytest.mark.parametrize("fmt", tiny_lora.FORMATS)
def test_every_format_equals_diffusers_peft(fmt, nodes, comfy_host, base, lora_files, diffusers_lora, inputs):
    """diffusers' LTXVideoTransformer3DModel with the same LoRA as a PEFT adapter (`load_lora_adapter`), at the
    same scale (`set_adapters`); files without alpha are compared with the adapter whose alpha is its rank."""
    actual = run(comfy_host, with_lora(nodes, base, lora_files[fmt], 0.7), inputs)
    adapter = "no_alpha" if fmt in tiny_lora.ALPHA_FREE_FORMATS else "with_alpha"
    torch.testing.assert_close(actual, diffusers_lora(inputs, {adapter: 0.7}), **TOLERANCE)


def _chained(nodes, base, lora_files):
    return with_lora(nodes, with_lora(nodes, base, lora_files["comfyui_trainer"], 0.6), lora_files["second"], -0.8)


def test_two_chained_loras_equal_the_sum(nodes, comfy_host, base, lora_files, lora, lora2, tcfg, inputs):
    actual = run(comfy_host, _chained(nodes, base, lora_files), inputs)
    torch.testing.assert_close(actual, reference(tcfg, inputs, (lora, 0.6), (lora2, -0.8 * 1.0 / 2)), **TOLERANCE)
    # the same through LoRA lists: one clone, the same patches
    (stack,) = nodes.LTX097LoraStack.execute(
        loras=f'[{{"path": "{lora_files["comfyui_trainer"]}", "scale": 0.6}}]').result
    (stack,) = nodes.LTX097LoraStack.execute(loras=f'[{{"path": "{lora_files["second"]}", "scale": -0.8}}]',
                                             lora_stack=stack).result
    assert [e["scale"] for e in stack] == [0.6, -0.8]
    (applied,) = nodes.LTX097ApplyLoraStack.execute(model=base, lora_stack=stack).result
    torch.testing.assert_close(run(comfy_host, applied, inputs), actual, atol=0, rtol=0)
    assert [e["path"] for e in applied.extra["loras"]] == [lora_files["comfyui_trainer"], lora_files["second"]]


def test_two_chained_loras_equal_two_diffusers_adapters(nodes, comfy_host, base, lora_files, diffusers_lora, inputs):
    actual = run(comfy_host, _chained(nodes, base, lora_files), inputs)
    torch.testing.assert_close(actual, diffusers_lora(inputs, {"no_alpha": 0.6, "second": -0.8}), **TOLERANCE)


def test_scale_zero_and_no_lora_are_the_base_model(nodes, comfy_host, base, lora_files, inputs, base_output):
    assert with_lora(nodes, base, lora_files["kohya"], 0.0) is base
    assert with_lora(nodes, base, "", 1.0) is base
    assert nodes.apply_lora_stack(base, [{"path": lora_files["kohya"], "scale": 0}]) is base
    assert nodes.apply_lora_stack(base, "[]") is base and nodes.apply_lora_stack(base, None) is base
    # a LoRA at +s and the same at -s cancel: the base output again
    both = nodes.apply_lora_stack(base, [{"path": lora_files["kohya"], "scale": 0.5},
                                         {"path": lora_files["bare"], "scale": -0.5}])
    torch.testing.assert_close(run(comfy_host, both, inputs), base_output, **TOLERANCE)


def test_removing_the_lora_restores_the_exact_base_weights(nodes, comfy_host, base, lora_files, inputs,
                                                           base_output):
    comfy_host.model_management.load_models_gpu([base.patcher])
    weights = {k: v.detach().clone() for k, v in base.transformer.state_dict().items()}
    patched = with_lora(nodes, base, lora_files["comfyui_up_down_alpha"], 1.0)
    assert patched.transformer is base.transformer and patched.patcher is not base.patcher
    assert not base.patcher.patches, "the input model must not be patched"
    run(comfy_host, patched, inputs)
    changed = [k for k, v in patched.transformer.state_dict().items() if not torch.equal(v, weights[k])]
    assert len(changed) == 27
    assert torch.equal(run(comfy_host, base, inputs), base_output)
    for key, value in base.transformer.state_dict().items():
        assert torch.equal(value, weights[key]), key


def test_changing_the_scale_repatches_without_reloading(nodes, comfy_host, base, lora_files, lora, tcfg, inputs,
                                                        monkeypatch):
    reads = []
    original = nodes.safe_open
    monkeypatch.setattr(nodes, "safe_open", lambda *a, **k: reads.append(a[0]) or original(*a, **k))
    nodes._file_cache.clear()
    module = base.transformer
    for scale in (0.5, 1.0, -0.25):
        model = with_lora(nodes, base, lora_files["kohya_diffusers_names"], scale)
        torch.testing.assert_close(run(comfy_host, model, inputs),
                                   reference(tcfg, inputs, (lora, scale * ALPHA / RANK)), **TOLERANCE)
        assert model.transformer is module
    assert len(reads) == 1, "the LoRA file is read once and reused while only the scale changes"


def test_low_vram_partial_loading_applies_the_same_patches(nodes, comfy_host, base, lora_files, lora, tcfg, inputs):
    model = with_lora(nodes, base, lora_files["diffusers_peft_metadata"], 0.7)
    expected = reference(tcfg, inputs, (lora, 0.7 * ALPHA / RANK))
    torch.testing.assert_close(run(comfy_host, model, inputs, lowvram_bytes=1), expected, **TOLERANCE)
    comfy_host.model_management.unload_all_models()
    model.patcher.patch_model(device_to=model.patcher.load_device, lowvram_model_memory=1)
    try:
        functions = [f for m in model.transformer.modules() for f in getattr(m, "weight_function", [])]
        assert len(functions) == 27 and all(type(f).__name__ == "LowVramPatch" for f in functions)
    finally:
        model.patcher.unpatch_model(device_to=model.patcher.offload_device)
    torch.testing.assert_close(run(comfy_host, model, inputs), expected, **TOLERANCE)


def _effect(comfy_host, nodes, model, name, inputs, lowvram_bytes=None):
    patched = with_lora(nodes, model, name, 1.0)
    return run(comfy_host, patched, inputs, lowvram_bytes) - run(comfy_host, model, inputs, lowvram_bytes)


def _cosine(a, b):
    return torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


def test_fp8_weights_get_the_same_lora_effect_as_bf16(ltx_pack, nodes, comfy_host, lora_files, lora, tcfg, inputs):
    """The LoRA's change of the output on an fp8-stored model matches the bf16 one in direction (cosine ≥ 0.999) and
    size (±1 %); both match the fp32 reference within the noise of their own precision."""
    expected = reference(tcfg, inputs, (lora, ALPHA / RANK)) - reference(tcfg, inputs)
    fp8 = load_model(ltx_pack.nodes.loaders, "fp8_e4m3fn")
    bf16 = load_model(ltx_pack.nodes.loaders, "bf16")
    comfy_host.model_management.load_models_gpu([fp8.patcher])
    stored = {k: v.clone() for k, v in fp8.transformer.state_dict().items()}
    effect_fp8 = _effect(comfy_host, nodes, fp8, lora_files["kohya"], inputs)
    effect_bf16 = _effect(comfy_host, nodes, bf16, lora_files["kohya"], inputs)
    assert _cosine(effect_fp8, effect_bf16) >= 0.999
    assert abs(effect_fp8.norm() / effect_bf16.norm() - 1) <= 0.01
    for effect in (effect_fp8, effect_bf16):
        assert (effect - expected).norm() / expected.norm() <= 0.04
    # the same in low-VRAM partial loading
    lowvram = _effect(comfy_host, nodes, fp8, lora_files["kohya"], inputs, lowvram_bytes=1)
    assert _cosine(lowvram, effect_bf16) >= 0.999
    # fp8 storage is never re-rounded: the stored weights are untouched while the LoRA is active
    patched = with_lora(nodes, fp8, lora_files["kohya"], 1.0)
    comfy_host.model_management.load_models_gpu([patched.patcher])
    assert all(torch.equal(v, stored[k]) for k, v in patched.transformer.state_dict().items())
    block = patched.transformer.transformer_blocks[0].attn1.to_q
    assert block.weight.dtype == torch.float8_e4m3fn and len(block.weight_function) == 1


def test_fp8_patching_in_compute_precision_beats_merging_into_fp8(ltx_pack, nodes, comfy_host, lora_files, lora,
                                                                   tcfg, inputs, monkeypatch):
    """Why fp8 weights are patched on the fly: merging the LoRA into fp8 storage (stochastic rounding) re-rounds
    every weight and at least doubles the error of the LoRA's effect on this model."""
    expected = reference(tcfg, inputs, (lora, ALPHA / RANK)) - reference(tcfg, inputs)
    fp8 = load_model(ltx_pack.nodes.loaders, "fp8_e4m3fn")
    on_the_fly = _effect(comfy_host, nodes, fp8, lora_files["kohya"], inputs)
    original = nodes.attach_patches
    monkeypatch.setattr(nodes, "attach_patches", lambda patcher, patches, strength, fp8_keys=(): original(
        patcher, patches, strength, frozenset()))
    merged = _effect(comfy_host, nodes, fp8, lora_files["kohya"], inputs)
    error = lambda effect: ((effect - expected).norm() / expected.norm()).item()  # noqa: E731
    assert error(merged) >= 2 * error(on_the_fly), (error(merged), error(on_the_fly))


# ------------------------------------------------------------------------------------------------------------------
# Other adapter types


def test_loha_and_lokr_apply_like_their_definitions(nodes, comfy_host, base, env, tcfg, inputs):
    generator = torch.Generator().manual_seed(3)

    def randn(*shape):
        return torch.randn(*shape, generator=generator) * 0.3

    w1a, w1b, w2a, w2b = randn(64, 2), randn(2, 64), randn(64, 2), randn(2, 64)  # LoHa on attn1.to_q (64×64)
    k1, k2a, k2b = randn(8, 16), randn(8, 3), randn(3, 16)  # LoKr on ff.net.2 (64×256 = kron(8×16, 8×16))
    prefix_q, prefix_k = "lora_unet_transformer_blocks_0_attn1_to_q", "lycoris_transformer_blocks_1_ff_net_2"
    tensors = {f"{prefix_q}.hada_w1_a": w1a, f"{prefix_q}.hada_w1_b": w1b, f"{prefix_q}.hada_w2_a": w2a,
               f"{prefix_q}.hada_w2_b": w2b, f"{prefix_q}.alpha": torch.tensor(1.0),
               f"{prefix_k}.lokr_w1": k1, f"{prefix_k}.lokr_w2_a": k2a, f"{prefix_k}.lokr_w2_b": k2b,
               f"{prefix_k}.alpha": torch.tensor(6.0)}
    save_file(tensors, str(env["loras"] / "loha_lokr.safetensors"))
    model = with_lora(nodes, base, "loha_lokr.safetensors", 0.8)
    reference_model = tiny.reference_transformer(tcfg)
    with torch.no_grad():
        reference_model.transformer_blocks[0].attn1.to_q.weight += 0.8 * (1.0 / 2) * (w1a @ w1b) * (w2a @ w2b)
        reference_model.transformer_blocks[1].ff.net[2].weight += 0.8 * (6.0 / 3) * torch.kron(k1, k2a @ k2b)
    torch.testing.assert_close(run(comfy_host, model, inputs), tiny_lora.reference_output(reference_model, inputs),
                               **TOLERANCE)
    assert model.extra["loras"][0]["formats"] == ["kohya"]


def test_peft_dora_equals_diffusers_at_scale_one(nodes, comfy_host, base, env, tcfg, inputs, tmp_path, lora,
                                                 base_output):
    require_peft()
    modules = {k: v for k, v in lora.items() if k.startswith("transformer_blocks")}
    reference_model = tiny.reference_transformer(tcfg)
    weights = dict(reference_model.named_modules())
    tensors, _ = tiny_lora.lora_tensors(modules, "diffusers_no_alpha", None)
    generator = torch.Generator().manual_seed(5)
    for name in modules:
        norm = weights[name].weight.detach().norm(dim=1)
        tensors[f"transformer.{name}.lora_magnitude_vector"] = norm * (0.5 + torch.rand(norm.shape,
                                                                                             generator=generator))
    metadata = tiny_lora.peft_metadata(modules, RANK, ALPHA, use_dora=True)
    save_file(tensors, str(tmp_path / "dora.safetensors"), metadata=metadata)
    save_file(tensors, str(env["loras"] / "dora.safetensors"), metadata=metadata)
    diffusers_model = tiny_lora.diffusers_transformer(tcfg)
    diffusers_model.load_lora_adapter(str(tmp_path), weight_name="dora.safetensors", prefix="transformer",
                                      adapter_name="dora")
    expected = tiny_lora.diffusers_output(diffusers_model, inputs)
    model = with_lora(nodes, base, "dora.safetensors", 1.0)
    actual = run(comfy_host, model, inputs)
    assert (actual - base_output).abs().max() > 0.02
    torch.testing.assert_close(actual, expected, **TOLERANCE)
    # other strengths blend the base weights into the DoRA weights linearly (ComfyUI's rule; 0 = base)
    full = {k: v.clone() for k, v in model.transformer.state_dict().items()}
    half = with_lora(nodes, base, "dora.safetensors", 0.5)
    comfy_host.model_management.load_models_gpu([half.patcher])
    comfy_host.model_management.load_models_gpu([base.patcher])
    plain = {k: v.clone() for k, v in base.transformer.state_dict().items()}
    comfy_host.model_management.load_models_gpu([half.patcher])
    for key, value in half.transformer.state_dict().items():
        torch.testing.assert_close(value, (plain[key] + full[key]) / 2, atol=1e-6, rtol=0)

