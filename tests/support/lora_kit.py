"""Shared set-up of the in-process LoRA node tests (`test_lora.py`, `test_lora_errors.py`, on the real host modules,
CPU): a tiny checkpoint, a LoRA folder with one LoRA in every format, the nodes' patched model and its output, the
official transformer with the LoRAs merged by hand, and diffusers' transformer with them as PEFT adapters.

A test module imports the helpers from here and names this module in `pytest_plugins` after `comfy_host`; each
module-scoped fixture is built once per test module that asks for it. No asserts to rewrite: PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from safetensors.torch import save_file

from support import tiny, tiny_lora
from support.comfy_host import MODEL_FOLDERS

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


def require_peft():
    if importlib.util.find_spec("peft") is None:
        pytest.fail("the 'peft' package is missing: diffusers' load_lora_adapter (the LoRA reference) needs it; "
                    "requirements-dev.txt lists it, run scripts/setup_env.sh")


@pytest.fixture(scope="module")
def diffusers_lora(tmp_path_factory, tcfg, lora, lora2):
    """diffusers' transformer with the two LoRAs loaded as PEFT adapters from diffusers-format files:
    `with_alpha` (lora_alpha=8 in the adapter metadata), `no_alpha` (alpha = rank) and `second`."""
    require_peft()
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

