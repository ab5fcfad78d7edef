"""Tiny random LoRAs for the tiny transformer, written in every key format, and the references they are checked on.

A LoRA here is `{official module name: (A [rank, in], B [out, rank])}`; the weight change at scale `s` is
`s · alpha / rank · B @ A` (alpha None: `s · B @ A`). The same LoRA can be written as a diffusers/PEFT file (with
or without PEFT adapter metadata), a ComfyUI file (lora_A/lora_B or lora_up/lora_down + alpha), a kohya file or
with bare keys; and loaded on the two references: the official `ltx_video` transformer with the delta merged by
hand, and diffusers' `LTXVideoTransformer3DModel` with the PEFT adapter (`load_lora_adapter`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from support import tiny

LoRA = dict[str, tuple[torch.Tensor, torch.Tensor]]

DIFFUSERS_RENAMES = (("patchify_proj", "proj_in"), ("adaln_single", "time_embed"))

FORMATS = ("diffusers_peft_metadata", "diffusers_no_alpha", "comfyui_trainer", "comfyui_up_down_alpha",
           "kohya", "kohya_diffusers_names", "bare", "bare_diffusers_names")
"""Every way `write_lora` can spell a LoRA; the `*_no_alpha` / `comfyui_trainer` ones carry no alpha."""
ALPHA_FREE_FORMATS = ("diffusers_no_alpha", "comfyui_trainer")


def diffusers_name(module: str) -> str:
    for official, diffusers in DIFFUSERS_RENAMES:
        if module == official or module.startswith(official + "."):
            return diffusers + module[len(official):]
    return module


def linear_modules(transformer: torch.nn.Module) -> dict[str, tuple[int, int]]:
    """Every Linear layer of a transformer (official names) → (out, in)."""
    return {name: tuple(m.weight.shape) for name, m in transformer.named_modules() if isinstance(m, torch.nn.Linear)}


def random_lora(modules: dict[str, tuple[int, int]], rank: int = 4, seed: int = 0, magnitude: float = 0.5) -> LoRA:
    """Random A/B for `modules`, sized so that the change is a sizeable fraction of the weights."""
    generator = torch.Generator().manual_seed(seed)
    lora = {}
    for name, (out_features, in_features) in sorted(modules.items()):
        a = torch.randn(rank, in_features, generator=generator) / in_features ** 0.5
        b = torch.randn(out_features, rank, generator=generator) * magnitude / rank ** 0.5 / in_features ** 0.5
        lora[name] = (a, b)
    return lora


def peft_metadata(lora: LoRA, rank: int, alpha: float, **extra) -> dict[str, str]:
    """The safetensors metadata diffusers' `save_lora_weights(..., transformer_lora_adapter_metadata=...)` writes."""
    config = {"r": rank, "lora_alpha": alpha, "target_modules": sorted(diffusers_name(m) for m in lora),
              "rank_pattern": {}, "alpha_pattern": {}, "lora_dropout": 0.0, "bias": "none", "use_rslora": False,
              "use_dora": False, "init_lora_weights": True, "peft_type": "LORA"}
    config.update(extra)
    return {"format": "pt", "lora_adapter_metadata": json.dumps({f"transformer.{k}": v for k, v in config.items()})}


def lora_tensors(lora: LoRA, fmt: str, alpha: float | None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of `lora` written in format `fmt` (one of FORMATS)."""
    tensors: dict[str, torch.Tensor] = {}
    metadata: dict[str, str] = {"format": "pt"}
    rank = next(iter(lora.values()))[0].shape[0]
    for module, (a, b) in lora.items():
        dname = diffusers_name(module)
        if fmt == "diffusers_peft_metadata":
            tensors[f"transformer.{dname}.lora_A.weight"] = a
            tensors[f"transformer.{dname}.lora_B.weight"] = b
        elif fmt == "diffusers_no_alpha":
            tensors[f"transformer.{dname}.lora_A.weight"] = a
            tensors[f"transformer.{dname}.lora_B.weight"] = b
        elif fmt == "comfyui_trainer":  # the LTX-Video trainer's comfy_*.safetensors
            tensors[f"diffusion_model.{module}.lora_A.weight"] = a
            tensors[f"diffusion_model.{module}.lora_B.weight"] = b
        elif fmt == "comfyui_up_down_alpha":
            tensors[f"diffusion_model.{module}.lora_down.weight"] = a
            tensors[f"diffusion_model.{module}.lora_up.weight"] = b
            tensors[f"diffusion_model.{module}.alpha"] = torch.tensor(float(alpha))
        elif fmt in ("kohya", "kohya_diffusers_names"):
            name = (module if fmt == "kohya" else dname).replace(".", "_")
            tensors[f"lora_unet_{name}.lora_down.weight"] = a
            tensors[f"lora_unet_{name}.lora_up.weight"] = b
            tensors[f"lora_unet_{name}.alpha"] = torch.tensor(float(alpha))
        elif fmt in ("bare", "bare_diffusers_names"):
            name = module if fmt == "bare" else dname
            tensors[f"{name}.lora_down.weight"] = a
            tensors[f"{name}.lora_up.weight"] = b
            tensors[f"{name}.alpha"] = torch.tensor(float(alpha))
        else:
            raise ValueError(f"unknown LoRA format {fmt}")
    if fmt == "diffusers_peft_metadata":
        metadata = peft_metadata(lora, rank, alpha)
    return tensors, metadata


def format_alpha(fmt: str, alpha: float) -> float | None:
    """The alpha a file in `fmt` carries (None: the format has none, so the factor is the scale alone)."""
    return None if fmt in ALPHA_FREE_FORMATS else alpha


def write_lora(path: Path, lora: LoRA, fmt: str, alpha: float | None = None) -> Path:
    tensors, metadata = lora_tensors(lora, fmt, alpha)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    return Path(path)


# ------------------------------------------------------------------------------------------------------------------
# References


def merged_reference(tcfg: dict, loras: list[tuple[LoRA, float]], seed: int = 0):
    """The official transformer (same random weights as `tiny.reference_transformer(tcfg, seed)`) with each
    LoRA's `factor · B @ A` added to its weights (factor = scale · alpha / rank)."""
    model = tiny.reference_transformer(tcfg, seed)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for lora, factor in loras:
            for name, (a, b) in lora.items():
                modules[name].weight += factor * (b @ a)
    return model


def diffusers_config(tcfg: dict) -> dict:
    return dict(in_channels=tcfg["in_channels"], out_channels=tcfg["out_channels"], patch_size=1, patch_size_t=1,
                num_attention_heads=tcfg["num_attention_heads"], attention_head_dim=tcfg["attention_head_dim"],
                cross_attention_dim=tcfg["cross_attention_dim"], num_layers=tcfg["num_layers"],
                activation_fn="gelu-approximate", qk_norm="rms_norm_across_heads", norm_elementwise_affine=False,
                norm_eps=tcfg["norm_eps"], caption_channels=tcfg["caption_channels"], attention_bias=True,
                attention_out_bias=True)


def diffusers_transformer(tcfg: dict, seed: int = 0):
    """diffusers' LTXVideoTransformer3DModel holding the tiny reference weights (converted the way diffusers'
    single-file loader converts the official checkpoint)."""
    from diffusers import LTXVideoTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_ltx_transformer_checkpoint_to_diffusers

    reference = tiny.reference_transformer(tcfg, seed)
    checkpoint = {f"model.diffusion_model.{k}": v.clone() for k, v in reference.state_dict().items()}
    model = LTXVideoTransformer3DModel(**diffusers_config(tcfg))
    model.load_state_dict(convert_ltx_transformer_checkpoint_to_diffusers(checkpoint), strict=True)
    return model.eval()


def forward_inputs(tcfg: dict, seed: int = 21, frame_rate: float = 25.0):
    """Latent tokens, official positions, text context and mask, and σ for a 2-video batch."""
    from ltx_core import latent_positions

    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(2, tcfg["in_channels"], 3, 2, 3, generator=generator)
    tokens = latents.flatten(2).transpose(1, 2).contiguous()
    positions = latent_positions(latents.shape, frame_rate)
    context = torch.randn(2, 6, tcfg["caption_channels"], generator=generator)
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[0, 3:] = 0
    return tokens, positions, context, mask, torch.tensor([0.9, 0.3])


def reference_output(model, inputs) -> torch.Tensor:
    """The official transformer on `forward_inputs`."""
    tokens, positions, context, mask, sigma = inputs
    with torch.no_grad():
        return model(tokens, indices_grid=positions, encoder_hidden_states=context, timestep=sigma,
                     encoder_attention_mask=mask, return_dict=False)[0]


def diffusers_output(model, inputs, timestep_scale: float = 1000.0) -> torch.Tensor:
    """diffusers' transformer on `forward_inputs` (it takes σ·1000 and the positions as `video_coords`)."""
    tokens, positions, context, mask, sigma = inputs
    with torch.no_grad():
        return model(hidden_states=tokens, encoder_hidden_states=context, timestep=sigma * timestep_scale,
                     encoder_attention_mask=mask, video_coords=positions, return_dict=False)[0]
