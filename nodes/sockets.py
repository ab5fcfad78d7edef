"""The pack's custom socket types, and the model objects that travel through the model sockets.

One module holds every `io.Custom` type, so any node (and the shared input factories in `inputs.py`) can name a
socket without importing the node that produces it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from comfy_api.latest import io

# The model sockets carry a ComfyUI ModelPatcher (in the objects below) so that ComfyUI's memory management loads,
# offloads and patches (LoRA) the model like its own; nodes receive and return these objects, never bare modules.
LTXModelType = io.Custom("LTX097_MODEL")
LTXVaeType = io.Custom("LTX097_VAE")
LTXUpsamplerType = io.Custom("LTX097_UPSAMPLER")
# Plain data or loaded helpers made by one node for another.
LTXConditionsType = io.Custom("LTX097_CONDITIONS")
LTXGuidanceType = io.Custom("LTX097_GUIDANCE")
LTXWindowsType = io.Custom("LTX097_WINDOWS")
LTXLoraStackType = io.Custom("LTX097_LORA_STACK")
LTXPromptEnhancerType = io.Custom("LTX097_PROMPT_ENHANCER")
LTXSafetyCheckerType = io.Custom("LTX097_SAFETY_CHECKER")


@dataclass
class PatchedModule:
    """An `ltx_core` module in a ComfyUI ModelPatcher (`patcher.model`), with the config it was built from, the
    file it came from and the dtype its weights are stored in."""

    patcher: Any
    config: dict
    path: str
    dtype: torch.dtype


@dataclass
class LTXModel(PatchedModule):
    """The LTX-Video transformer of one checkpoint (`LTX097_MODEL`).

    `patcher.model` is the `ltx_core.Transformer3D`; `config` is the checkpoint's whole config (`transformer`,
    `vae`, `scheduler` sections); `dtype` the storage dtype of its matrices and `compute_dtype` what it runs in.
    Nodes that change the model (LoRA, ...) must return `with_patcher(self.patcher.clone())`, never mutate.
    """

    compute_dtype: torch.dtype
    extra: dict = field(default_factory=dict)

    @property
    def transformer(self) -> torch.nn.Module:
        return self.patcher.model

    @property
    def transformer_config(self) -> dict:
        return self.config.get("transformer", {})

    @property
    def scheduler_config(self) -> dict:
        return self.config.get("scheduler", {})

    def with_patcher(self, patcher) -> LTXModel:
        return dataclasses.replace(self, patcher=patcher, extra=dict(self.extra))


@dataclass
class LTXVae(PatchedModule):
    """The causal video VAE of one checkpoint (`LTX097_VAE`); `patcher.model` is `ltx_core.CausalVideoVAE`."""

    @property
    def vae(self) -> torch.nn.Module:
        return self.patcher.model


@dataclass
class LTXUpsampler(PatchedModule):
    """A latent upsampler (`LTX097_UPSAMPLER`); `patcher.model` is `ltx_core.LatentUpsampler`, which takes
    un-normalised latents `[B, 128, F, H, W]`."""

    @property
    def upsampler(self) -> torch.nn.Module:
        return self.patcher.model


def require_vae(vae: LTXVae | None) -> LTXVae:
    """The VAE a node needs; a sentence when the socket brought none (a checkpoint file without a VAE)."""
    if vae is None:
        raise ValueError("the vae input is empty: the loaded checkpoint has no VAE; load a checkpoint that "
                         "contains one (the official LTX-Video single files do)")
    return vae
