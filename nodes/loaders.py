"""Loader nodes: LTX-Video 0.9.7 checkpoints (transformer + VAE) and latent upsamplers.

The models are `ltx_core` modules built with ComfyUI's layer ops and attention and wrapped in ComfyUI
ModelPatchers, so ComfyUI decides when they go to the GPU, offloads them for other models, and patches them.
"""

from __future__ import annotations

import os

import comfy.model_management as mm
import folder_paths
from comfy_api.latest import io

from .. import ltx_core
from ..ltx_core import acceleration
from .inputs import CATEGORY, dtype_input
from .memory import wrap
from .model_files import check_model_file, model_files, model_path
from .ops import (
    WEIGHT_DTYPES,
    comfy_attention,
    compute_dtype_for,
    operations_for,
    resolve_vae_like_dtype,
    resolve_weight_dtype,
)
from .sockets import LTXModel, LTXModelType, LTXUpsampler, LTXUpsamplerType, LTXVae, LTXVaeType

CHECKPOINT_FOLDERS = ("checkpoints", "diffusion_models")
UPSAMPLER_FOLDERS = ("latent_upscale_models", "upscale_models")

# ComfyUI 0.3.75 registers `latent_upscale_models`; older or trimmed hosts may not. Add it without touching any
# paths a user configured.
if "latent_upscale_models" not in folder_paths.folder_names_and_paths:
    folder_paths.add_model_folder_path("latent_upscale_models",
                                       os.path.join(folder_paths.models_dir, "latent_upscale_models"))


class LTX097ModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX097ModelLoader",
            display_name="LTX-Video 0.9.7 Model Loader",
            category=f"{CATEGORY}/loaders",
            description=(
                "Loads an official single-file LTX-Video 0.9.7 checkpoint (for example ltxv-13b-0.9.7-dev, "
                "-distilled, or their fp8 versions) from models/checkpoints or models/diffusion_models. Outputs "
                "the transformer and the video VAE stored in the same file. ComfyUI's memory management moves "
                "both to the GPU when they run and offloads them afterwards."
            ),
            inputs=[
                io.Combo.Input(
                    "ckpt_name", options=model_files(*CHECKPOINT_FOLDERS),
                    tooltip="The .safetensors checkpoint, listed from models/checkpoints and models/diffusion_models "
                            "(and any extra_model_paths.yaml folders for them)."),
                io.Combo.Input(
                    "weight_dtype", options=list(WEIGHT_DTYPES), default="auto",
                    tooltip="How the transformer weights are stored in memory. auto: keep fp8 if the file stores fp8, "
                            "otherwise bf16 on GPUs that support it and fp32 on the CPU. fp8_e4m3fn / fp8_e5m2 "
                            "halve the memory of bf16 and compute in bf16. The VAE is never stored in fp8 "
                            "(it follows the compute dtype)."),
                io.Boolean.Input(
                    "compile_blocks", default=False, optional=True,
                    tooltip="Compile each transformer block with torch.compile (regional compilation): the first "
                            "run takes longer while the block compiles, later steps run faster on GPUs. Same "
                            "result within float rounding; LoRA changes need no recompile."),
            ],
            outputs=[
                LTXModelType.Output(display_name="model",
                                    tooltip="The LTX-Video transformer, with the checkpoint's config."),
                LTXVaeType.Output(display_name="vae",
                                  tooltip="The causal video VAE from the same file (None if the file has no VAE)."),
            ],
        )

    @classmethod
    def validate_inputs(cls, ckpt_name: str) -> bool | str:
        return check_model_file(ckpt_name, *CHECKPOINT_FOLDERS)

    @classmethod
    def execute(cls, ckpt_name: str, weight_dtype: str = "auto", compile_blocks: bool = False) -> io.NodeOutput:
        path = model_path(ckpt_name, *CHECKPOINT_FOLDERS)
        load_device, offload_device = mm.get_torch_device(), mm.unet_offload_device()
        dtype = resolve_weight_dtype(weight_dtype, path, load_device)
        compute_dtype = compute_dtype_for(dtype)
        checkpoint = ltx_core.load_checkpoint(path, dtype=dtype, device=offload_device,
                                              operations=operations_for(dtype, compute_dtype, load_device),
                                              attention=comfy_attention)
        if checkpoint.transformer is None:
            raise ValueError(f"'{ckpt_name}' holds an LTX-Video VAE but no transformer; choose a checkpoint that "
                             f"contains the transformer (the official single files contain both)")
        if compile_blocks:
            acceleration.compile_blocks(checkpoint.transformer)
        model = LTXModel(patcher=wrap(checkpoint.transformer, load_device, offload_device),
                         config=checkpoint.config, path=path, dtype=dtype, compute_dtype=compute_dtype)
        vae = None
        if checkpoint.vae is not None:
            vae_offload = mm.vae_offload_device()
            vae_module = checkpoint.vae.to(vae_offload)
            vae = LTXVae(patcher=wrap(vae_module, mm.vae_device(), vae_offload),
                         config=checkpoint.config.get("vae", {}), path=path,
                         dtype=next(vae_module.parameters()).dtype)
        return io.NodeOutput(model, vae)


class LTX097UpsamplerLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX097UpsamplerLoader",
            display_name="LTX-Video 0.9.7 Latent Upsampler Loader",
            category=f"{CATEGORY}/loaders",
            description=(
                "Loads an LTX-Video latent upsampler (ltxv-spatial-upscaler-0.9.7 or ltxv-temporal-upscaler-0.9.7) "
                "from models/latent_upscale_models or models/upscale_models. The multi-scale recipe uses the "
                "spatial one to double the first pass's latents before the second pass."
            ),
            inputs=[
                io.Combo.Input(
                    "upscale_model_name", options=model_files(*UPSAMPLER_FOLDERS),
                    tooltip="The .safetensors upsampler, listed from models/latent_upscale_models and "
                            "models/upscale_models."),
                dtype_input("auto", "Weights and compute dtype. auto: what ComfyUI uses for VAEs on this device (bf16 "
                                    "on GPUs that support it, fp32 on the CPU)."),
            ],
            outputs=[
                LTXUpsamplerType.Output(display_name="upsampler",
                                        tooltip="The latent upsampler; it works on un-normalised latents."),
            ],
        )

    @classmethod
    def validate_inputs(cls, upscale_model_name: str) -> bool | str:
        return check_model_file(upscale_model_name, *UPSAMPLER_FOLDERS)

    @classmethod
    def execute(cls, upscale_model_name: str, dtype: str = "auto") -> io.NodeOutput:
        path = model_path(upscale_model_name, *UPSAMPLER_FOLDERS)
        load_device, offload_device = mm.vae_device(), mm.vae_offload_device()
        torch_dtype = resolve_vae_like_dtype(dtype, load_device)
        module = ltx_core.load_latent_upsampler(path, dtype=torch_dtype, device=offload_device,
                                                operations=operations_for(torch_dtype, torch_dtype))
        config = dict(getattr(module, "config", None) or {})
        return io.NodeOutput(LTXUpsampler(patcher=wrap(module, load_device, offload_device), config=config,
                                          path=path, dtype=torch_dtype))


NODES = [LTX097ModelLoader, LTX097UpsamplerLoader]
