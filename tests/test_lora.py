"""The LoRA nodes in-process on the real host modules (CPU): parity with diffusers' PEFT LoRA and with weights merged
by hand, stacking, scale 0, unpatching, low-VRAM and fp8 loading, other adapter types, and the error sentences."""

from __future__ import annotations

import importlib.util
import logging

import pytest
import torch
from safetensors.torch import save_file

import tiny
import tiny_lora
from comfy_host import MODEL_FOLDERS

pytest_plugins = ["comfy_host"]

CKPT = "lora_tiny_ltxv097.safetensors"
RANK, ALPHA = 4, 8.0
TOLERANCE = dict(atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def tcfg():
    return tiny.transformer_config()


@pytest.fixture(scope="module")
def env(tmp_path_factory, comfy_host, tcfg):
    """A tiny checkpoint in a checkpoints folder and a LoRA folder put first among ComfyUI's `loras` folders."""
    root = tmp_path_factory.mktemp("lora_env")
    folders = {key: root / sub for key, sub in MODEL_FOLDERS.items()}
    for path in folders.values():
        path.mkdir()
    comfy_host.folder_paths.add_model_folder_path("checkpoints", str(folders["checkpoints"]))
    lora_paths = comfy_host.folder_paths.folder_names_and_paths["loras"][0]
    lora_paths.insert(0, str(folders["loras"]))
    tiny.save_single_file(folders["checkpoints"] / CKPT, transformer=tiny.reference_transformer(tcfg),
                          transformer_config_=tcfg)
    yield folders
    lora_paths.remove(str(folders["loras"]))


@pytest.fixture(scope="module")
def nodes(ltx_pack):
    return ltx_pack.nodes.lora


@pytest.fixture(scope="module")
def lora(tcfg):
    return tiny_lora.random_lora(tiny_lora.linear_modules(tiny.reference_transformer(tcfg)), rank=RANK, seed=0)


@pytest.fixture(scope="module")
def lora2(tcfg):
    modules = {k: v for k, v in tiny_lora.linear_modules(tiny.reference_transformer(tcfg)).items()
               if "attn" in k or "ff" in k}
    return tiny_lora.random_lora(modules, rank=2, seed=7)


@pytest.fixture(scope="module")
def lora_files(env, lora, lora2):
    """The first LoRA in every format, and the second one as a kohya file; names relative to the loras folder."""
    names = {}
    for fmt in tiny_lora.FORMATS:
        names[fmt] = f"{fmt}.safetensors"
        tiny_lora.write_lora(env["loras"] / names[fmt], lora, fmt, tiny_lora.format_alpha(fmt, ALPHA))
    (env["loras"] / "second").mkdir()
    names["second"] = "second/kohya_rank2.safetensors"
    tiny_lora.write_lora(env["loras"] / names["second"], lora2, "kohya", 1.0)
    return names


def load_model(loaders, weight_dtype="auto"):
    return loaders.LTX097ModelLoader.execute(ckpt_name=CKPT, weight_dtype=weight_dtype).result[0]


@pytest.fixture(scope="module")
def base(ltx_pack, env):
    return load_model(ltx_pack.nodes.loaders)


def with_lora(nodes, model, name="", strength=1.0, source="", weight_name=""):
    return nodes.LTX097LoraLoader.execute(model=model, lora_name=name or "none", strength=strength, source=source,
                                          weight_name=weight_name).result[0]


def run(comfy_host, model, inputs, lowvram_bytes=None) -> torch.Tensor:
    """The transformer on `inputs` after ComfyUI loaded it (fully, or partially with `lowvram_bytes` on the GPU)."""
    patcher = model.patcher
    if lowvram_bytes is None:
        comfy_host.model_management.load_models_gpu([patcher])
    else:
        comfy_host.model_management.unload_all_models()
        patcher.patch_model(device_to=patcher.load_device, lowvram_model_memory=lowvram_bytes)
    tokens, positions, context, mask, sigma = inputs
    device = patcher.load_device
    try:
        with torch.no_grad():
            return model.transformer(tokens.to(device), positions=positions.to(device), context=context.to(device),
                                     context_mask=mask.to(device), timestep=sigma.to(device)).float().cpu()
    finally:
        if lowvram_bytes is not None:
            patcher.unpatch_model(device_to=patcher.offload_device)


@pytest.fixture(scope="module")
def inputs(tcfg):
    return tiny_lora.forward_inputs(tcfg)


@pytest.fixture(scope="module")
def base_output(comfy_host, base, inputs):
    return run(comfy_host, base, inputs)


def reference(tcfg, inputs, *loras):
    return tiny_lora.reference_output(tiny_lora.merged_reference(tcfg, list(loras)), inputs)


# ------------------------------------------------------------------------------------------------------------------
# diffusers with PEFT


def _require_peft():
    if importlib.util.find_spec("peft") is None:
        pytest.fail("the 'peft' package is missing: diffusers' load_lora_adapter (the LoRA reference) needs it; "
                    "requirements-dev.txt lists it, run scripts/setup_env.sh")


@pytest.fixture(scope="module")
def diffusers_lora(tmp_path_factory, tcfg, lora, lora2):
    """diffusers' transformer with the two LoRAs loaded as PEFT adapters from diffusers-format files:
    `with_alpha` (lora_alpha=8 in the adapter metadata), `no_alpha` (alpha = rank) and `second`."""
    _require_peft()
    folder = tmp_path_factory.mktemp("peft_loras")
    tiny_lora.write_lora(folder / "with_alpha.safetensors", lora, "diffusers_peft_metadata", ALPHA)
    tiny_lora.write_lora(folder / "no_alpha.safetensors", lora, "diffusers_no_alpha", None)
    tensors, _ = tiny_lora.lora_tensors(lora2, "diffusers_no_alpha", None)
    save_file(tensors, str(folder / "second.safetensors"),
              metadata=tiny_lora.peft_metadata(lora2, 2, 1.0))
    model = tiny_lora.diffusers_transformer(tcfg)
    for name in ("with_alpha", "no_alpha", "second"):
        model.load_lora_adapter(str(folder), weight_name=f"{name}.safetensors", prefix="transformer",
                                adapter_name=name)

    def output(inputs, adapters: dict[str, float]):
        model.set_adapters(list(adapters), weights=list(adapters.values()))
        return tiny_lora.diffusers_output(model, inputs)

    return output


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
    _require_peft()
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


# ------------------------------------------------------------------------------------------------------------------
# Sentences


def test_unused_keys_are_warned_about(nodes, base, env, lora, caplog):
    tensors, metadata = tiny_lora.lora_tensors(lora, "comfyui_up_down_alpha", ALPHA)
    tensors["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"] = torch.zeros(2, 8)
    save_file(tensors, str(env["loras"] / "with_te.safetensors"), metadata=metadata)
    with caplog.at_level(logging.WARNING):
        with_lora(nodes, base, "with_te.safetensors", 1.0)
    assert "1 keys adapt nothing in the LTX-Video transformer and are ignored: " \
           "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight" in caplog.text


def test_a_lora_for_another_model_is_an_error(nodes, base, env):
    save_file({"double_blocks.0.img_attn.qkv.lora_A.weight": torch.zeros(2, 8),
               "double_blocks.0.img_attn.qkv.lora_B.weight": torch.zeros(8, 2)},
              str(env["loras"] / "flux.safetensors"))
    with pytest.raises(ValueError, match=r"'flux\.safetensors' has no LoRA weights for the LTX-Video transformer: "
                                         r"none of its 2 keys .* \(first keys: 'double_blocks"):
        with_lora(nodes, base, "flux.safetensors", 1.0)
    big = tiny_lora.random_lora({"transformer_blocks.0.attn1.to_q": (4096, 4096)}, rank=2)
    tiny_lora.write_lora(env["loras"] / "big.safetensors", big, "comfyui_trainer", None)
    with pytest.raises(ValueError, match="'big.safetensors' does not fit this model"):
        with_lora(nodes, base, "big.safetensors", 1.0)


def test_unsupported_adapter_is_named(nodes, base, env):
    save_file({"transformer.proj_out.vera_lambda_b": torch.zeros(128),
               "transformer.proj_out.vera_lambda_d": torch.zeros(2)}, str(env["loras"] / "vera.safetensors"))
    with pytest.raises(ValueError, match="'vera.safetensors' is not supported: VeRA"):
        with_lora(nodes, base, "vera.safetensors", 1.0)


def test_not_a_safetensors_file_is_refused(nodes, base, env):
    torch.save({"a": torch.zeros(1)}, str(env["loras"] / "pickled.safetensors"))
    with pytest.raises(ValueError, match="is a pickled PyTorch file"):
        with_lora(nodes, base, "pickled.safetensors", 1.0)
    (env["loras"] / "empty.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="is empty or cut short"):
        with_lora(nodes, base, "empty.safetensors", 1.0)


@pytest.mark.parametrize("source", ["../outside.safetensors", "..\\outside.safetensors", "sub/../../x.safetensors",
                                    "/etc/passwd", "~/lora.safetensors", "C:\\loras\\x.safetensors"])
def test_paths_outside_the_lora_folders_are_refused(nodes, base, lora_files, source, monkeypatch):
    monkeypatch.delenv("LTX097_ALLOW_LOCAL_LORA_PATHS", raising=False)
    with pytest.raises(ValueError, match=r"is a path outside the loras folders; such paths are refused .* "
                                         r"LTX097_ALLOW_LOCAL_LORA_PATHS=1"):
        with_lora(nodes, base, "", 1.0, source=source)


def test_local_paths_work_when_allowed(nodes, comfy_host, base, lora, tcfg, inputs, tmp_path, monkeypatch):
    outside = tiny_lora.write_lora(tmp_path / "outside.safetensors", lora, "bare", ALPHA)
    monkeypatch.delenv("LTX097_ALLOW_LOCAL_LORA_PATHS", raising=False)
    with pytest.raises(ValueError, match="refused"):
        with_lora(nodes, base, "", 1.0, source=str(outside))
    monkeypatch.setenv("LTX097_ALLOW_LOCAL_LORA_PATHS", "1")
    model = with_lora(nodes, base, "", 0.5, source=str(outside))
    torch.testing.assert_close(run(comfy_host, model, inputs), reference(tcfg, inputs, (lora, 0.5 * ALPHA / RANK)),
                               **TOLERANCE)
    with pytest.raises(ValueError, match="does not exist"):
        with_lora(nodes, base, "", 1.0, source=str(tmp_path / "missing.safetensors"))
    (tmp_path / "x.ckpt").write_bytes(b"\x80\x02")
    with pytest.raises(ValueError, match="not a .safetensors file"):
        with_lora(nodes, base, "", 1.0, source=str(tmp_path / "x.ckpt"))


def test_unknown_sources_say_what_is_accepted(nodes, base, lora_files):
    with pytest.raises(ValueError, match=r"LoRA 'nope\.safetensors' was not found in the loras folders .* neither "
                                         r"an http\(s\) URL nor a Hugging Face repo id"):
        with_lora(nodes, base, "", 1.0, source="nope.safetensors")
    with pytest.raises(ValueError, match=r"uses 'ftp://'; only http\(s\) URLs are downloaded"):
        with_lora(nodes, base, "", 1.0, source="ftp://example.com/x.safetensors")
    # the source wins over the dropdown; a file name in the loras folders works as a source too
    model = with_lora(nodes, base, "no-such-choice", 1.0, source=lora_files["second"])
    assert model.extra["loras"][0]["path"] == lora_files["second"]


@pytest.mark.parametrize("text, message", [
    ("[{", r"the LoRA list is not valid JSON \(line 1, column 3"),
    ("5", r"must be a JSON list of objects with path, weight_name, scale, got a number"),
    ('[{"scale": 1}]', r"LoRA 1 needs a 'path'"),
    ('[{"path": "a.safetensors"}, 3]', r"LoRA 2 must be an object with path, weight_name, scale, got a number"),
    ('[{"path": "a.safetensors", "strength": 1}]', r"LoRA 1 has unknown field\(s\) 'strength' \(the strength is "
                                                   r"called 'scale'\)"),
    ('[{"path": "a.safetensors", "scale": "high"}]', r"LoRA 1: scale must be a finite number, got 'high'"),
    ('[{"path": "a.safetensors", "scale": NaN}]', r"LoRA 1: scale must be a finite number, got nan"),
    ('[{"path": "owner/repo", "weight_name": 3}]', r"LoRA 1: weight_name must be a file name \(text\) or null"),
])
def test_lora_list_errors_are_sentences(nodes, text, message):
    with pytest.raises(ValueError, match=message):
        nodes.parse_lora_stack(text)
    result = nodes.LTX097LoraStack.validate_inputs(loras=text)
    assert isinstance(result, str) and result


def test_lora_list_accepts_the_service_shape(nodes):
    parsed = nodes.parse_lora_stack(' [{"path": "https://x.org/a.safetensors", "weight_name": null, "scale": 0.5},'
                                    ' {"path": "owner/repo", "weight_name": "b.safetensors"}, "c.safetensors"] ')
    assert parsed == [{"path": "https://x.org/a.safetensors", "weight_name": None, "scale": 0.5},
                      {"path": "owner/repo", "weight_name": "b.safetensors", "scale": 1.0},
                      {"path": "c.safetensors", "weight_name": None, "scale": 1.0}]
    assert nodes.parse_lora_stack({"path": "a.safetensors", "scale": 2}) == [
        {"path": "a.safetensors", "weight_name": None, "scale": 2.0}]
    assert nodes.parse_lora_stack("") == [] and nodes.LTX097LoraStack.validate_inputs(loras=None) is True
    assert nodes.LTX097LoraStack.validate_inputs(loras='[{"path": "a.safetensors"}]') is True


def test_schemas(nodes, ltx_pack, lora_files):
    for cls in nodes.NODES:
        schema = cls.GET_SCHEMA()
        assert schema.node_id.startswith("LTX097") and schema.description
        assert all(i.tooltip for i in schema.inputs), schema.node_id
        assert cls in ltx_pack.nodes.NODE_LIST
    options = nodes.LTX097LoraLoader.GET_SCHEMA().inputs[1].options
    assert options[0] == "none" and set(lora_files.values()) <= set(options)


# ------------------------------------------------------------------------------------------------------------------
# The real server (API prompts)


def test_lora_nodes_in_api_prompts(comfy_server, lora):
    """The nodes driven by API prompts on the real host: a LoRA list is checked before anything runs (HTTP 400 with
    the sentence), and a LoRA from the loras folder attaches to a loaded model; a broken file fails with a sentence."""
    from comfy_host import HostError

    comfy_server.add_model("loras", "api_lora.safetensors",
                           lambda path: tiny_lora.write_lora(path, lora, "comfyui_trainer"))
    bad = {"1": {"class_type": "LTX097LoraStack", "inputs": {"loras": '[{"path": "a.safetensors", "strength": 1}]'}},
           "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    with pytest.raises(HostError) as error:
        comfy_server.post_prompt(bad)
    assert "LoRA 1 has unknown field(s) 'strength'" in str(error.value)

    good = {"1": {"class_type": "LTX097LoraStack",
                  "inputs": {"loras": '[{"path": "api_lora.safetensors", "scale": 0.5}]'}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    entry = comfy_server.wait(comfy_server.post_prompt(good), raise_on_error=True)
    assert '"scale": 0.5' in entry["outputs"]["2"]["text"][0]

    model = {"1": {"class_type": "LTX097ModelLoader", "inputs": {"ckpt_name": comfy_server.models["checkpoint"],
                                                                 "weight_dtype": "auto"}},
             "2": {"class_type": "LTX097LoraLoader", "inputs": {"model": ["1", 0], "lora_name": "api_lora.safetensors",
                                                                "strength": 0.8}},
             "3": {"class_type": "LTX097LoraStack", "inputs": {"loras": '["api_lora.safetensors"]'}},
             "4": {"class_type": "LTX097ApplyLoraStack", "inputs": {"model": ["2", 0], "lora_stack": ["3", 0]}},
             "5": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}}}
    entry = comfy_server.wait(comfy_server.post_prompt(model), raise_on_error=True)
    assert "'scale': 0.8" in entry["outputs"]["5"]["text"][0] and "'layers': 27" in entry["outputs"]["5"]["text"][0]

    comfy_server.add_model("loras", "broken.safetensors", lambda path: path.write_bytes(b"<html>not found</html>"))
    model["2"]["inputs"]["lora_name"] = "broken.safetensors"
    entry = comfy_server.wait(comfy_server.post_prompt(model))
    assert "is a web page (HTML)" in comfy_server.execution_error(entry)["exception_message"]
