"""Shared set-up of the in-process node tests (`test_nodes_*.py`): tiny models in ComfyUI model folders, loaded
through the pack's loader nodes, a tiny T5, and the pack's node modules.

The transformer has 3 blocks, so the recipes' STG blocks are overridden (`TINY_GUIDANCE`) as the 13B and 2B
block numbers do not exist in it.
"""

from __future__ import annotations

import contextlib
import importlib
import types
from pathlib import Path

from support import tiny, tiny_t5
from support.comfy_host import MODEL_FOLDERS

CHECKPOINT = "nodes_tiny_ltxv097.safetensors"
UPSAMPLER = "nodes_tiny_spatial_upscaler.safetensors"
NUM_LAYERS = 3

TINY_GUIDANCE = {
    "0.9.7 dev multi-scale": {"first_pass": {"skip_block_list": [[], [0], [1], [2], [2], [2], [2]]},
                              "second_pass": {"skip_block_list": [1]}},
    "0.9.7 distilled multi-scale": None,
    "0.9.8 distilled multi-scale": None,
    "0.9.7 dev single-scale": {"first_pass": {"skip_block_list": [[], [0], [1], [2], [2], [2], [2]]}},
    "0.9.6 2B dev": {"first_pass": {"skip_block_list": [1]}},
    "0.9.6 2B distilled": None,
}
"""Guidance settings (what the Guidance Settings node outputs) that make each recipe fit the 3-block model."""


def node_module(name: str) -> types.ModuleType:
    """`nodes.<name>` of the pack as loaded in the host (package `ltxv097`)."""
    return importlib.import_module(f"ltxv097.nodes.{name}")


def write_models(root: Path, folder_paths) -> dict[str, dict]:
    """Tiny checkpoint + upsampler in temp model folders registered with ComfyUI; returns their configs."""
    for key, sub in MODEL_FOLDERS.items():
        (root / sub).mkdir(parents=True, exist_ok=True)
        folder_paths.add_model_folder_path(key, str(root / sub))
    tcfg, vcfg, ucfg = tiny.transformer_config(num_layers=NUM_LAYERS), tiny.vae_config(), tiny.upsampler_config()
    tiny.save_single_file(root / MODEL_FOLDERS["checkpoints"] / CHECKPOINT,
                          transformer=tiny.reference_transformer(tcfg, responsive=True), transformer_config_=tcfg,
                          vae=tiny.reference_vae(vcfg), vae_config_=vcfg)
    tiny.save_upsampler(root / MODEL_FOLDERS["latent_upscale_models"] / UPSAMPLER, tiny.reference_upsampler(ucfg),
                        ucfg)
    return {"transformer": tcfg, "vae": vcfg, "upsampler": ucfg}


def load_models() -> types.SimpleNamespace:
    """Model, VAE and upsampler through the loader nodes, and the tiny T5 as a CLIP."""
    loaders = node_module("loaders")
    model, vae = loaders.LTX097ModelLoader.execute(ckpt_name=CHECKPOINT, weight_dtype="auto").result
    (upsampler,) = loaders.LTX097UpsamplerLoader.execute(upscale_model_name=UPSAMPLER, dtype="auto").result
    return types.SimpleNamespace(model=model, vae=vae, upsampler=upsampler, clip=tiny_t5.tiny_t5_clip(seed=0))


@contextlib.contextmanager
def output_directory(folder: Path, folder_paths):
    """ComfyUI's output folder pointed at `folder` for a test module, then put back."""
    previous = folder_paths.get_output_directory()
    folder_paths.set_output_directory(str(folder))
    try:
        yield folder
    finally:
        folder_paths.set_output_directory(previous)
