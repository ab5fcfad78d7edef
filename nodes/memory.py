"""ComfyUI's memory management of the pack's models: their ModelPatchers, the working-memory estimates given to
`load_models_gpu`, and the `on_model` hook that loads each model right before it is used.

`load_models_gpu([patcher], memory_required=bytes)` frees other models until the weights plus `bytes` of working
memory fit, and loads the model partially (low-VRAM) when they do not. The estimates are deliberately simple
upper bounds of the activations at the peak of one forward, not measurements:

- transformer: tokens × branches (of the pass where that is largest) × inner_dim × dtype size × 16. A block
  keeps the residual stream, q/k/v, the attention output, the 4× feed-forward hidden state and its activation,
  the AdaLN modulations and the skip bookkeeping alive at once (about 16 token-by-inner-dim tensors); `branches`
  is the number of guidance predictions batched together (up to 3: CFG's negative, the prompt, STG's perturbed
  copy; 1 with save_memory). Example: 13B 0.9.7 dev at 1216×704×121 in bf16: second pass 22 400 tokens × 2
  branches → 5.9 GB on top of the weights.
- VAE: the decoder's largest activation for 2 latent frames × 6 live copies (the chunked decode sizes its chunks
  from the memory that is free once the VAE is loaded, so two frames is its working minimum). Encoding the
  conditioning media uses the same figure (the encoder mirrors the decoder).
- upsampler: tokens × 4 (2× in height and width) × its mid channels × 8 live copies.
"""

from __future__ import annotations

import logging

import comfy.model_management as mm
import comfy.model_patcher
import torch

from ..ltx_core.sampling import max_branches, pass_shapes, recipe_passes
from .sockets import LTXModel, LTXUpsampler, LTXVae

logger = logging.getLogger(__name__)

TRANSFORMER_LIVE_TENSORS = 16
VAE_LIVE_ACTIVATIONS = 6
VAE_MIN_CHUNK_FRAMES = 2
UPSAMPLER_LIVE_TENSORS = 8


def wrap(model: torch.nn.Module, load_device: torch.device, offload_device: torch.device):
    """A ComfyUI ModelPatcher around an ltx_core module (ComfyUI then owns loading and offloading it)."""
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)


def _size(dtype: torch.dtype) -> int:
    return mm.dtype_size(dtype)


def transformer_bytes(tokens: int, inner_dim: int, branches: int, dtype: torch.dtype) -> int:
    return int(tokens * inner_dim * branches * _size(dtype) * TRANSFORMER_LIVE_TENSORS)


def vae_bytes(vae_module, latent_height: int, latent_width: int, dtype: torch.dtype) -> int:
    decoder = getattr(vae_module, "decoder", None)
    peak = getattr(decoder, "peak_elements_per_latent_frame", None)
    per_frame = peak(latent_height, latent_width) if peak is not None else latent_height * latent_width * 32 * 1024
    return int(per_frame * VAE_MIN_CHUNK_FRAMES * VAE_LIVE_ACTIVATIONS * _size(dtype))


def upsampler_bytes(tokens: int, mid_channels: int, dtype: torch.dtype) -> int:
    return int(tokens * 4 * mid_channels * UPSAMPLER_LIVE_TENSORS * _size(dtype))


def load_vae(vae: LTXVae, latents: torch.Tensor) -> None:
    """Load the VAE with the working memory of decoding (or encoding) latents `[B, C, F, H, W]`."""
    ModelLoads().add("vae", vae.patcher, vae_bytes(vae.vae, latents.shape[3], latents.shape[4], vae.dtype))("vae")


class ModelLoads:
    """`on_model(name)` for ltx_core: loads the named model's patcher with its estimate before it is used."""

    def __init__(self):
        self.entries: dict[str, tuple[object, int]] = {}

    def add(self, name: str, patcher, memory_required: int) -> ModelLoads:
        self.entries[name] = (patcher, int(memory_required))
        return self

    def __call__(self, name: str) -> None:
        if name not in self.entries:
            logger.debug("no patcher registered for %s", name)
            return
        patcher, memory_required = self.entries[name]
        mm.load_models_gpu([patcher], memory_required=memory_required)


def generation_loads(model: LTXModel, vae: LTXVae, upsampler: LTXUpsampler | None, settings: dict, *,
                     width: int, height: int, num_frames: int, extra_frames: int) -> ModelLoads:
    """The loads of one generation with resolved recipe `settings` (a long video: of its first, largest window).

    The transformer's estimate is its largest pass (tokens × batched guidance branches; `extra_frames` latent frames
    of condition and guide tokens come on top of the video's), the VAE's the largest pass's latent size, the
    upsampler's the first pass's latents.
    """
    shapes = pass_shapes(settings, width=width, height=height, num_frames=num_frames)
    tokens = [(frames + extra_frames) * h * w for _, _, frames, h, w in shapes]
    branches = [max_branches(p, settings["batched_guidance"]) for _, p in recipe_passes(settings)]
    config = model.transformer_config
    inner_dim = int(config.get("num_attention_heads", 32)) * int(config.get("attention_head_dim", 128))
    peak = max(t * b for t, b in zip(tokens, branches))
    _, _, _, largest_h, largest_w = max(shapes, key=lambda shape: shape[3] * shape[4])
    loads = ModelLoads()
    loads.add("transformer", model.patcher, transformer_bytes(peak, inner_dim, 1, model.compute_dtype))
    loads.add("vae", vae.patcher, vae_bytes(vae.vae, largest_h, largest_w, vae.dtype))
    if upsampler is not None:
        _, _, first_frames, first_h, first_w = shapes[0]
        loads.add("upsampler", upsampler.patcher,
                  upsampler_bytes(first_frames * first_h * first_w, int(upsampler.config.get("mid_channels", 512)),
                                  upsampler.dtype))
    return loads
