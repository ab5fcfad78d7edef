"""The decode node: LTX-Video latents → IMAGE frames `[F, H, W, 3]`, exactly the size and count asked for.

Our sampler's LATENT carries an `ltx_core.VideoLatents` (crop, decode timestep/noise, seed); a LATENT from
elsewhere (core's LTXV nodes) decodes whole, with the 0.9.7 decode defaults. Decoding is chunked over latent
frames (sized from free memory, or set by hand) and checks for interruption after every chunk; `iter_frames`
hands the chunks on as they come (the one-node text-to-video and Extend Video write them straight to the mp4).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator

import comfy.model_management as mm
import torch
from comfy_api.latest import io

from .. import ltx_core
from ..ltx_core.models.grid import FRAMES_PER_LATENT, PIXELS_PER_LATENT
from .inputs import CATEGORY, vae_input
from .memory import load_vae
from .progress import check_interrupted
from .sampler import LATENT_KEY
from .sockets import LTXVae, require_vae

logger = logging.getLogger(__name__)

DEFAULT_DECODE_TIMESTEP = 0.05
DEFAULT_DECODE_NOISE = 0.025
DEFAULT_FRAME_RATE = 25.0


def videos_of(latent: dict, vae: LTXVae) -> list[ltx_core.VideoLatents]:
    """One `VideoLatents` per batch item: ours as sampled (with `samples` as they are now), others whole."""
    if not isinstance(latent, dict) or not torch.is_tensor(latent.get("samples")):
        raise ValueError("the samples input is not a LATENT")
    samples = latent["samples"]
    channels = vae.vae.config.latent_channels if hasattr(vae.vae, "config") else 128
    if samples.ndim != 5 or samples.shape[1] != channels:
        raise ValueError(f"these latents have the shape {tuple(samples.shape)}, not LTX-Video video latents "
                         f"[batch, {channels}, frames, height, width]; decode them with the VAE they came from")
    video = latent.get(LATENT_KEY)
    if isinstance(video, ltx_core.VideoLatents) and tuple(video.latents.shape) == tuple(samples.shape):
        return [dataclasses.replace(video, latents=samples[i:i + 1]) for i in range(samples.shape[0])]
    if video is not None:
        logger.warning("the latents changed shape after sampling; decoding them whole (no crop)")
    frames, height, width = samples.shape[2:]
    frame_rate = float(latent.get("frame_rate", DEFAULT_FRAME_RATE))
    return [ltx_core.VideoLatents(latents=samples[i:i + 1], width=width * PIXELS_PER_LATENT,
                                  height=height * PIXELS_PER_LATENT,
                                  num_frames=(frames - 1) * FRAMES_PER_LATENT + 1, frame_rate=frame_rate,
                                  padding=(0, 0, 0, 0), decode_timestep=DEFAULT_DECODE_TIMESTEP,
                                  decode_noise_scale=DEFAULT_DECODE_NOISE, tone_map_compression_ratio=0.0, seed=0)
            for i in range(samples.shape[0])]


def iter_frames(vae: LTXVae, latent: dict, *, chunk_frames: int | None = None) -> Iterator[torch.Tensor]:
    """The decoded frames `[f, H, W, 3]` (CPU) a chunk of latent frames at a time, video after video: a long video
    goes to a file without ever being one tensor."""
    require_vae(vae)
    for video in videos_of(latent, vae):
        load_vae(vae, video.latents)
        yield from ltx_core.iter_decode_video(vae.vae, video, cancel=check_interrupted, chunk_frames=chunk_frames,
                                              device=vae.patcher.load_device)


def decode(vae: LTXVae, latent: dict, *, decode_timestep: float | None = None,
           decode_noise_scale: float | None = None, chunk_frames: int | None = None
           ) -> tuple[torch.Tensor, float]:
    """(frames `[F, H, W, 3]` float in [0, 1] on the intermediate device, frame rate)."""
    require_vae(vae)
    videos = videos_of(latent, vae)
    changes = {}
    if decode_timestep is not None and decode_timestep >= 0:
        changes["decode_timestep"] = float(decode_timestep)
    if decode_noise_scale is not None and decode_noise_scale >= 0:
        changes["decode_noise_scale"] = float(decode_noise_scale)
    outputs = []
    for video in videos:
        video = dataclasses.replace(video, **changes)
        load_vae(vae, video.latents)
        outputs.append(ltx_core.decode_video(vae.vae, video, cancel=check_interrupted, chunk_frames=chunk_frames,
                                             device=vae.patcher.load_device))
    frames = torch.cat(outputs) if len(outputs) > 1 else outputs[0]
    return frames.to(mm.intermediate_device()), float(videos[0].frame_rate)


class LTX097Decode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX097Decode",
            display_name="LTX-Video 0.9.7 Decode",
            category=f"{CATEGORY}/sampling",
            description=(
                "Decodes LTX-Video latents to frames with the video VAE, cropped to exactly the width, height and "
                "frame count the sampler was asked for. Decodes in chunks of frames so long videos fit in memory. "
                "Also outputs the frame rate to save the video at."
            ),
            inputs=[
                io.Latent.Input("samples", tooltip="The sampler's LATENT (or LTX-Video latents from core nodes, "
                                                   "decoded whole)."),
                vae_input(),
                io.Float.Input("decode_timestep", default=DEFAULT_DECODE_TIMESTEP, min=0.0, max=1.0, step=0.001,
                               tooltip="Timestep the VAE decodes at; 0.05 is every official recipe's. Used instead "
                                       "of a Guidance Settings decode_timestep."),
                io.Float.Input("decode_noise_scale", default=DEFAULT_DECODE_NOISE, min=0.0, max=1.0, step=0.001,
                               tooltip="Noise blended into the latents before decoding (adds fine detail); 0.025 is "
                                       "every official recipe's, 0 = none. Used instead of a Guidance Settings "
                                       "decode_noise_scale."),
                io.Int.Input("chunk_frames", default=0, min=0, max=512, step=1,
                             tooltip="Latent frames decoded at once (1 latent frame = 8 video frames); 0 = sized "
                                     "from free memory. Lower it if decoding runs out of memory; the video is the same "
                                     "(up to rounding)."),
            ],
            outputs=[
                io.Image.Output(display_name="images", tooltip="The frames [frames, height, width, 3]."),
                io.Float.Output(display_name="frame_rate", tooltip="The frame rate the video was sampled for."),
            ],
        )

    @classmethod
    def execute(cls, samples: dict, vae: LTXVae, decode_timestep: float = DEFAULT_DECODE_TIMESTEP,
                decode_noise_scale: float = DEFAULT_DECODE_NOISE, chunk_frames: int = 0) -> io.NodeOutput:
        frames, frame_rate = decode(vae, samples, decode_timestep=decode_timestep,
                                    decode_noise_scale=decode_noise_scale, chunk_frames=chunk_frames or None)
        return io.NodeOutput(frames, frame_rate)


NODES = [LTX097Decode]
