"""Image and video conditions and IC-LoRA guides: media pinned to frames of the generated video.

The nodes chain into one `LTX097_CONDITIONS` tuple that the sampler (and the one-node text-to-video) consume.
Each item is an `ltx_core.Condition` carrying its CRF: like the reference, media is centre-cropped to the
output's aspect ratio, blurred and passed through one H.264 encode at that CRF before it is encoded, because the
model was trained on compressed frames. A guide (`guide=True`) is given to the model in context instead, for
IC-LoRAs; it is neither blurred nor compressed (`ltx_core.sampling.guides`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import torch
from comfy_api.latest import InputImpl, io

from .. import ltx_core
from ..ltx_core.models.grid import FRAMES_PER_LATENT
from ..ltx_core.sampling import MIN_MEDIA_SIDE, check_guide_start
from ..media import read_video
from ..media.limits import MAX_IMAGE_PIXELS, MAX_VIDEO_PIXELS, MediaSize, check_pixels
from .inputs import CATEGORY, conditions_input, crf_input
from .sockets import LTXConditionsType

logger = logging.getLogger(__name__)

DEFAULT_CRF = 29
MAX_FRAME = 4096


@dataclass
class MediaCondition(ltx_core.Condition):
    """An `ltx_core.Condition` with the CRF of its preprocessing and where it came from (for messages).

    `start_frame` may be negative for an image: -1 is the last frame of the video, resolved by `resolve`.
    """

    crf: int | None = DEFAULT_CRF
    label: str = "condition"

    def resolve(self, num_frames: int) -> MediaCondition:
        """This condition with its start frame checked against a video of `num_frames` frames."""
        start = self.start_frame + num_frames if self.start_frame < 0 else self.start_frame
        if not 0 <= start < num_frames:
            raise ValueError(f"{self.label}: start frame {self.start_frame} is outside the video, which has "
                             f"{num_frames} frames (allowed: 0 to {num_frames - 1}, or -1 for the last frame)")
        frames = self.media.shape[0]
        if self.guide:
            check_guide_start(start, frames, self.label)
        elif frames > 1:
            if start % FRAMES_PER_LATENT:
                raise ValueError(f"{self.label}: a video condition after frame 0 must start at a multiple of 8 "
                                 f"(0, 8, 16, ...), not at frame {start}")
            if num_frames - start < 9:
                raise ValueError(f"{self.label}: only {num_frames - start} frames of the video remain after frame "
                                 f"{start}; a video condition needs at least 9 of them (8k+1)")
        return dataclasses.replace(self, start_frame=start)


def video_frames(video, label: str) -> tuple[torch.Tensor, Fraction]:
    """A core VIDEO's frames `[F, H, W, 3]` and frame rate. A video read from a file is decoded here, whole and
    strictly: a cut-short or corrupt file is an error naming `label`, never a shorter or broken clip (core's
    decoding stops quietly where the data ends)."""
    if isinstance(video, InputImpl.VideoFromFile):
        decoded = read_video(video.get_stream_source(), label)
        return decoded.frames, decoded.frame_rate
    components = video.get_components()
    return components.images, Fraction(components.frame_rate)


def as_frames(images: torch.Tensor, label: str) -> torch.Tensor:
    """IMAGE `[F, H, W, C]` → float RGB `[F, H, W, 3]` in [0, 1] on the CPU (alpha dropped)."""
    if not torch.is_tensor(images) or images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise ValueError(f"{label}: expected an IMAGE batch [frames, height, width, channels], got {shape}")
    if images.shape[0] == 0:
        raise ValueError(f"{label}: the image batch is empty")
    height, width = images.shape[1:3]
    if min(height, width) < MIN_MEDIA_SIDE:
        raise ValueError(f"{label}: the image is {width}×{height} px; condition images and videos must be at "
                         f"least {MIN_MEDIA_SIDE}×{MIN_MEDIA_SIDE} px (and keep {MIN_MEDIA_SIDE} px on each side "
                         f"once centre-cropped to the video's aspect ratio)")
    frames = images[..., :3] if images.shape[-1] >= 3 else images.expand(*images.shape[:3], 3)
    return frames.detach().to(device="cpu", dtype=torch.float32).clamp(0, 1).contiguous()


def check_media_size(media, label: str, *, frame_only: bool = False) -> None:
    """Refuse, before anything is decoded or copied, media larger than the API's limits (the same limits): a core
    VIDEO by its container's size and frame count, an IMAGE batch by its shape (`frame_only`: one of its images)."""
    if torch.is_tensor(media):
        if media.ndim != 4:
            return  # as_frames names the wrong shape
        size, limit = MediaSize(media.shape[2], media.shape[1], 1 if frame_only else media.shape[0]), \
            MAX_IMAGE_PIXELS if frame_only else MAX_VIDEO_PIXELS
    else:
        width, height = media.get_dimensions()
        size, limit = MediaSize(width, height, media.get_frame_count()), MAX_VIDEO_PIXELS
    check_pixels(size, limit, f"{label}: the {'image' if frame_only else 'video'}")


def chain(conditions: Sequence[ltx_core.Condition] | None, item: ltx_core.Condition) -> tuple:
    return (*(conditions or ()), item)


def resolve_conditions(conditions: Sequence[ltx_core.Condition] | None, num_frames: int
                       ) -> list[ltx_core.Condition]:
    """Conditions with their start frames resolved and checked against a video of `num_frames` frames."""
    if conditions is not None and not isinstance(conditions, (list, tuple)):
        raise ValueError(f"conditions={conditions!r:.80} is not allowed (allowed: the output of the Image "
                         f"Condition / Video Condition nodes)")
    resolved = []
    for index, item in enumerate(conditions or ()):
        if not isinstance(item, ltx_core.Condition):
            raise ValueError(f"conditions: item {index + 1} is {item!r:.80}, not an image or video condition "
                             f"(allowed: the output of the Image Condition / Video Condition nodes)")
        if not isinstance(item, MediaCondition):  # a plain ltx_core.Condition from another pack
            item = MediaCondition(item.media, item.start_frame, item.strength, item.crf, item.guide,
                                  label=f"{'guide' if item.guide else 'condition'} {index + 1}")
        resolved.append(item.resolve(num_frames))
    return resolved


def _common_inputs() -> list:
    return [
        io.Float.Input("strength", default=1.0, min=0.0, max=1.0, step=0.01,
                       tooltip="How strongly the media holds: 1 keeps it (the model only adds motion around "
                               "it), lower values let the model change it more."),
        crf_input(DEFAULT_CRF, "H.264 quality the media is compressed at before encoding, as in the reference (29). "
                               "The model was trained on compressed frames: 0 (no compression) tends to give static "
                               "videos; higher values give more motion and less detail."),
        conditions_input("Conditions to add this one to (chain several image and video conditions, e.g. a first and "
                         "a last keyframe)."),
    ]


_OUTPUT = LTXConditionsType.Output(display_name="conditions",
                                   tooltip="The chained conditions; connect to the sampler's conditions input.")


class LTX097ImageCondition(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX097ImageCondition",
            display_name="LTX-Video 0.9.7 Image Condition",
            category=f"{CATEGORY}/conditioning",
            description=(
                "Pins one image to a frame of the generated video: frame 0 for image-to-video, any later frame "
                "(or -1, the last) for keyframes. The image is centre-cropped to the video's aspect ratio. "
                "Chain several to set first and last frames."
            ),
            inputs=[
                io.Image.Input("image", tooltip="The image (from Load Image, or a frame batch: see batch_index)."),
                io.Int.Input("start_frame", default=0, min=-MAX_FRAME, max=MAX_FRAME, step=1,
                             tooltip="The video frame the image is pinned to: 0 = first frame (image-to-video), "
                                     "a later frame for a keyframe, negative counts from the end (-1 = last "
                                     "frame). Must lie inside the video."),
                *_common_inputs()[:2],
                io.Int.Input("batch_index", default=0, min=-MAX_FRAME, max=MAX_FRAME, step=1,
                             tooltip="Which image of a batch to use (0 = first, -1 = last, e.g. the last frame "
                                     "of a video to continue it). A single image is index 0."),
                _common_inputs()[2],
            ],
            outputs=[_OUTPUT],
        )

    @classmethod
    def execute(cls, image: torch.Tensor, start_frame: int = 0, strength: float = 1.0, crf: int = DEFAULT_CRF,
                batch_index: int = 0, conditions=None) -> io.NodeOutput:
        check_media_size(image, "image condition", frame_only=True)
        frames = as_frames(image, "image condition")
        count = frames.shape[0]
        if not -count <= batch_index < count:
            raise ValueError(f"image condition: batch_index {batch_index} does not exist in a batch of {count} "
                             f"image(s) (allowed: {-count} to {count - 1})")
        item = MediaCondition(frames[batch_index].unsqueeze(0).clone(),
                              start_frame=int(start_frame), strength=float(strength), crf=int(crf),
                              label=f"image condition at frame {start_frame}")
        return io.NodeOutput(chain(conditions, item))


class LTX097VideoCondition(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX097VideoCondition",
            display_name="LTX-Video 0.9.7 Video Condition",
            category=f"{CATEGORY}/conditioning",
            description=(
                "Pins a video clip to the generated video from a start frame: at frame 0 for video-to-video or "
                "to extend a clip, at a later multiple of 8 to continue into it. Takes a core VIDEO (Load Video) "
                "or an IMAGE frame batch; uses the first 8k+1 frames (9, 17, 25, ...) that fit."
            ),
            inputs=[
                io.Video.Input("video", optional=True,
                               tooltip="A core VIDEO (e.g. Load Video). Give this or images."),
                io.Image.Input("images", optional=True,
                               tooltip="The clip as an IMAGE frame batch [frames, height, width, 3] (e.g. from "
                                       "another video node). Used when no video is connected."),
                io.Int.Input("start_frame", default=0, min=0, max=MAX_FRAME, step=8,
                             tooltip="The video frame the clip starts at: 0, or a multiple of 8 (8, 16, ...). "
                                     "Frames that do not fit in the generated video are dropped."),
                *_common_inputs(),
            ],
            outputs=[_OUTPUT],
        )

    @classmethod
    def execute(cls, video=None, images: torch.Tensor | None = None, start_frame: int = 0,
                strength: float = 1.0, crf: int = DEFAULT_CRF, conditions=None) -> io.NodeOutput:
        if video is not None:
            if images is not None:
                logger.warning("video condition: both video and images are connected; using the video")
            check_media_size(video, "video condition")
            frames = as_frames(video_frames(video, "video condition")[0], "video condition")
        elif images is not None:
            check_media_size(images, "video condition")
            frames = as_frames(images, "video condition")
        else:
            raise ValueError("video condition: connect a video (Load Video) or an image batch")
        count = frames.shape[0]
        if count < 9:
            raise ValueError(f"video condition: the clip has {count} frame(s) but needs at least 9 frames (8k+1: "
                             "9, 17, 25, ...); use an Image Condition for a single frame")
        if start_frame % FRAMES_PER_LATENT:
            raise ValueError(f"video condition: start frame {start_frame} is not a multiple of 8; a video "
                             "condition starts at frame 0, 8, 16, ...")
        used = (count - 1) // FRAMES_PER_LATENT * FRAMES_PER_LATENT + 1
        if used < count:
            logger.info("video condition: using the first %d of %d frames (8k+1)", used, count)
        item = MediaCondition(frames[:used].clone(), start_frame=int(start_frame), strength=float(strength),
                              crf=int(crf), label=f"video condition at frame {start_frame}")
        return io.NodeOutput(chain(conditions, item))


def extra_latent_frames(conditions: Sequence[ltx_core.Condition], window_frames: int) -> int:
    """Most latent frames of extra tokens the conditions add to a window of `window_frames` frames: 2 per later
    image or video (its prefix), all of a guide's that fit."""
    total = 0
    for item in conditions:
        if item.guide:
            fitting = max(1, min(item.media.shape[0], window_frames - min(item.start_frame, window_frames - 1)))
            total += (fitting - 1) // FRAMES_PER_LATENT + 1
        else:
            total += 2
    return total


def has_guide(conditions: Sequence[ltx_core.Condition] | None) -> bool:
    return any(getattr(item, "guide", False) for item in conditions or ())


class LTX097Guide(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX097Guide",
            display_name="LTX-Video 0.9.7 Guide (IC-LoRA)",
            category=f"{CATEGORY}/conditioning",
            description=(
                "Gives the model a control video or image in context, for an IC-LoRA (depth, pose, canny, "
                "detailer): its latents are appended to the video's tokens at the frames they guide, kept clean, "
                "and dropped before decoding. Connect a Canny (core), depth or pose map video of the same aspect "
                "ratio, and load the matching IC-LoRA with the LoRA node. Chains with image/video conditions."
            ),
            inputs=[
                io.Video.Input("video", optional=True, tooltip="The guide as a core VIDEO (e.g. Load Video). Give "
                                                               "this or images."),
                io.Image.Input("images", optional=True,
                               tooltip="The guide as an IMAGE batch [frames, height, width, 3] (e.g. Canny's "
                                       "output, or one image). Used when no video is connected."),
                io.Int.Input("start_frame", default=0, min=0, max=MAX_FRAME, step=1,
                             tooltip="The video frame the guide's first frame belongs to: 0, or for a guide "
                                     "video the first frame of a latent frame (1, 9, 17, ..., 8k+1); an image "
                                     "may go to any frame. The guide's first 8k+1 frames that fit are used."),
                io.Float.Input("strength", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="How strongly the guide holds: 1 keeps it clean (as IC-LoRAs were "
                                       "trained), lower values let it be denoised with the video; 0 drops it."),
                LTXConditionsType.Input("conditions", optional=True,
                                        tooltip="Conditions to add this guide to (e.g. a first-frame image "
                                                "condition)."),
            ],
            outputs=[_OUTPUT],
        )

    @classmethod
    def execute(cls, video=None, images: torch.Tensor | None = None, start_frame: int = 0,
                strength: float = 1.0, conditions=None) -> io.NodeOutput:
        if video is not None:
            if images is not None:
                logger.warning("guide: both video and images are connected; using the video")
            check_media_size(video, "guide")
            frames = as_frames(video.get_components().images, "guide")
        elif images is not None:
            check_media_size(images, "guide")
            frames = as_frames(images, "guide")
        else:
            raise ValueError("guide: connect a video (Load Video) or images (e.g. Canny)")
        label = f"guide at frame {start_frame}"
        check_guide_start(int(start_frame), frames.shape[0], label)
        used = (frames.shape[0] - 1) // FRAMES_PER_LATENT * FRAMES_PER_LATENT + 1
        if used < frames.shape[0]:
            logger.info("guide: using the first %d of %d frames (8k+1)", used, frames.shape[0])
        item = MediaCondition(frames[:used].clone(), start_frame=int(start_frame), strength=float(strength), crf=0,
                              guide=True, label=label)
        return io.NodeOutput(chain(conditions, item))


NODES = [LTX097ImageCondition, LTX097VideoCondition, LTX097Guide]
