"""Running the official `LTXVideoPipeline` / `LTXMultiScalePipeline` on tiny models, the way `inference.py` does."""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from unittest import mock

import torch

from ltx_core.models.grid import padded_frame_count
from ltx_core.sampling.condition_media import padding_for
from ltx_core.sampling.recipes import resolve_recipe

STRATEGIES = {"attention_values": "AttentionValues", "attention_skip": "AttentionSkip", "residual": "Residual",
              "transformer_block": "TransformerBlock"}
_OUR_KEYS = ("image_cond_noise_scale", "crf", "adain_factor", "batched_guidance", "sampler", "stg_mode",
             "step_cache_threshold", "step_cache_max_reuse")


@dataclass
class ReferenceOutput:
    frames: torch.Tensor  # [F, H, W, 3] in [0, 1], cropped to the requested size
    latents: torch.Tensor  # the last pass's normalised latents [1, C, F, H, W], before decode noise


def build(path, upsampler_path=None):
    from ltx_video.models.autoencoders.causal_video_autoencoder import CausalVideoAutoencoder
    from ltx_video.models.autoencoders.latent_upsampler import LatentUpsampler
    from ltx_video.models.transformers.symmetric_patchifier import SymmetricPatchifier
    from ltx_video.models.transformers.transformer3d import Transformer3DModel
    from ltx_video.pipelines.pipeline_ltx_video import LTXMultiScalePipeline, LTXVideoPipeline
    from ltx_video.schedulers.rf import RectifiedFlowScheduler

    pipeline = LTXVideoPipeline(
        tokenizer=None, text_encoder=None, vae=CausalVideoAutoencoder.from_pretrained(path).eval(),
        transformer=Transformer3DModel.from_pretrained(path).eval(),
        scheduler=RectifiedFlowScheduler.from_pretrained(path),
        patchifier=SymmetricPatchifier(patch_size=1), prompt_enhancer_image_caption_model=None,
        prompt_enhancer_image_caption_processor=None, prompt_enhancer_llm_model=None,
        prompt_enhancer_llm_tokenizer=None)
    if upsampler_path is None:
        return pipeline
    return LTXMultiScalePipeline(pipeline, LatentUpsampler.from_pretrained(upsampler_path).eval())


def _adain_factor(factor: float):
    """The official multi-scale pipeline calls `adain_filter_latent` with its default factor 1; other factors of a
    recipe go to the same function."""
    from ltx_video.pipelines import pipeline_ltx_video

    if factor == 1.0:
        return contextlib.nullcontext()
    original = pipeline_ltx_video.adain_filter_latent
    return mock.patch.object(pipeline_ltx_video, "adain_filter_latent",
                             lambda latents, reference_latents: original(latents, reference_latents, factor))


@contextlib.contextmanager
def _recording_latents(pipeline, seen: list):
    """Keeps what the pipeline's last `unpatchify` returns: the final latents, just before they are decoded."""
    base = getattr(pipeline, "video_pipeline", pipeline)
    unpatchify = base.patchifier.unpatchify

    def record(*args, **kwargs):
        latents = unpatchify(*args, **kwargs)
        seen.append(latents.clone())
        return latents

    base.patchifier.unpatchify = record
    try:
        yield
    finally:
        del base.patchifier.unpatchify


def run(pipeline, *, recipe, prompts, width, height, num_frames, frame_rate, seed, conditions=(),
        **overrides) -> ReferenceOutput:
    """`conditions`: (media [1,3,F,h,w] in [-1,1] already prepared, start_frame, strength)."""
    from ltx_video.pipelines.pipeline_ltx_video import ConditioningItem
    from ltx_video.utils.skip_layer_strategy import SkipLayerStrategy

    settings = resolve_recipe(recipe, overrides)
    kwargs = {k: copy.deepcopy(v) for k, v in settings.items() if k not in _OUR_KEYS}
    if "second_pass" in kwargs:  # where the 0.9.8 yaml files give it: the pass that decodes
        kwargs["second_pass"]["tone_map_compression_ratio"] = kwargs.pop("tone_map_compression_ratio")
    (padded_h, padded_w), (left, right, top, bottom) = padding_for(height, width)
    context, mask, negative, negative_mask = prompts
    items = [ConditioningItem(media, start, strength) for media, start, strength in conditions] or None
    seen: list[torch.Tensor] = []
    torch.manual_seed(seed)
    with torch.no_grad(), _adain_factor(settings.get("adain_factor", 1.0)), _recording_latents(pipeline, seen):
        images = pipeline(
            **kwargs, skip_layer_strategy=getattr(SkipLayerStrategy, STRATEGIES[settings["stg_mode"]]),
            generator=torch.Generator().manual_seed(seed), output_type="pt", height=padded_h, width=padded_w,
            num_frames=padded_frame_count(num_frames), frame_rate=frame_rate, prompt=None, negative_prompt=None,
            prompt_embeds=context,
            prompt_attention_mask=mask, negative_prompt_embeds=negative, negative_prompt_attention_mask=negative_mask,
            conditioning_items=items, is_video=True, vae_per_channel_normalize=True,
            image_cond_noise_scale=settings["image_cond_noise_scale"], mixed_precision=False, offload_to_cpu=False,
            enhance_prompt=False).images
    images = images[:, :, :num_frames, top:padded_h - bottom, left:padded_w - right]
    return ReferenceOutput(frames=images[0].permute(1, 2, 3, 0).float(), latents=seen[-1])
