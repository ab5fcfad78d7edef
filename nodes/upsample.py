"""The Latent Upsample node: sampled LTX-Video latents ×2 in time (temporal upscaler) or in size (spatial).

Like the official pack's `LTXVLatentUpsampler`: un-normalise, upsample, re-normalise (`ltx_core.upsample_video`),
here on our LATENT so that Decode gives the new video: the temporal upscaler turns N frames into 2N - 1 at twice
the frame rate.
"""

from __future__ import annotations

import dataclasses

import comfy.model_management as mm
from comfy_api.latest import io

from .. import ltx_core
from .inputs import CATEGORY
from .memory import ModelLoads, upsampler_bytes
from .sampler import as_latent, latent_video
from .sockets import LTXUpsampler, LTXUpsamplerType, LTXVae, LTXVaeType


class LTX097LatentUpsample(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX097LatentUpsample",
            display_name="LTX-Video 0.9.7 Latent Upsample",
            category=f"{CATEGORY}/sampling",
            description=(
                "Upsamples sampled latents with a latent upsampler: the temporal upscaler "
                "(ltxv-temporal-upscaler-0.9.7) doubles the frame rate (N frames → 2N - 1 at twice the fps), the "
                "spatial one the size. Connect the Sampler's LATENT and decode the result."
            ),
            inputs=[
                io.Latent.Input("samples", tooltip="Latents from the LTX-Video 0.9.7 Sampler."),
                LTXUpsamplerType.Input("upsampler", tooltip="A temporal (or spatial) latent upsampler from the "
                                                            "Latent Upsampler Loader."),
                LTXVaeType.Input("vae", tooltip="The VAE of the checkpoint the latents came from (its latent "
                                                "statistics un-normalise and re-normalise them)."),
            ],
            outputs=[io.Latent.Output(display_name="latent", tooltip="The upsampled latents, for Decode.")],
        )

    @classmethod
    def execute(cls, samples: dict, upsampler: LTXUpsampler, vae: LTXVae) -> io.NodeOutput:
        video = latent_video(samples, "latent upsample: samples")
        _, _, frames, height, width = video.latents.shape
        mid_channels = int(upsampler.config.get("mid_channels", 512))
        ModelLoads().add("upsampler", upsampler.patcher,
                         upsampler_bytes(frames * height * width, mid_channels, upsampler.dtype))("upsampler")
        upsampled = ltx_core.upsample_video(vae.vae, upsampler.upsampler, video)
        return io.NodeOutput(as_latent(dataclasses.replace(upsampled,
                                                           latents=upsampled.latents.to(mm.intermediate_device()))))


NODES = [LTX097LatentUpsample]
