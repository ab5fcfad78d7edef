"""Preparing conditioning images and videos the way the official `inference.py` does.

Each frame is centre-cropped to the target aspect ratio (no resize), blurred (3×3 Gaussian, σ = 1), passed through
one libx264 encode/decode at the given CRF (the model was trained on compressed frames), scaled to [-1, 1] and
padded like the generated video; each pass then resizes it to its own size.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..models.grid import FRAMES_PER_LATENT, PIXELS_PER_LATENT

DEFAULT_CRF = 29
MIN_MEDIA_SIDE = 8
"""Smallest side in pixels a condition's media may have once cropped to the video's aspect ratio: smaller pictures
carry no usable detail, and the blur and H.264 round trip need a few pixels to work on."""


def cropped_size(in_height: int, in_width: int, width: int, height: int) -> tuple[int, int]:
    """(height, width) of media `in_height × in_width` centre-cropped to the aspect ratio `width / height`."""
    target = width / height
    if in_width / in_height > target:
        return in_height, int(in_height * target)
    return int(in_width / target), in_width


def crop_to_aspect(frames: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Centre-crop `[F, H, W, C]` frames to the aspect ratio `width / height` (integer maths of the reference)."""
    in_height, in_width = frames.shape[1:3]
    new_height, new_width = cropped_size(in_height, in_width, width, height)
    y0, x0 = (in_height - new_height) // 2, (in_width - new_width) // 2
    return frames[:, y0:y0 + new_height, x0:x0 + new_width]


def gaussian_blur(images: torch.Tensor, kernel_size: int = 3, sigma: float = 1.0) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding on `[N, C, H, W]` (torchvision's `gaussian_blur`)."""
    half = (kernel_size - 1) * 0.5
    x = torch.linspace(-half, half, kernel_size, dtype=images.dtype, device=images.device)
    pdf = torch.exp(-0.5 * (x / sigma).pow(2))
    kernel_1d = pdf / pdf.sum()
    kernel = (kernel_1d[:, None] * kernel_1d[None, :]).expand(images.shape[1], 1, kernel_size, kernel_size)
    pad = kernel_size // 2
    padded = F.pad(images, [pad, pad, pad, pad], mode="reflect")
    return F.conv2d(padded, kernel, groups=images.shape[1])


def crf_round_trip(image: torch.Tensor, crf: int = DEFAULT_CRF) -> torch.Tensor:
    """Encode one `[H, W, 3]` frame in [0, 1] with libx264 at `crf` and decode it (even-cropped, 8-bit)."""
    if crf == 0:
        return image
    import av  # PyAV (bundled FFmpeg); only needed for conditioning media

    even = image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2]
    pixels = (even * 255.0).byte().cpu().numpy()  # truncation, as the reference does
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=1, options={"crf": str(crf), "preset": "veryfast"})
        stream.height, stream.width = pixels.shape[:2]
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuv420p")
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    buffer.seek(0)
    with av.open(buffer) as container:
        decoded = next(container.decode(video=0)).to_ndarray(format="rgb24")
    return torch.tensor(decoded, dtype=image.dtype, device=image.device) / 255.0


def trim_frames(num_media_frames: int, start_frame: int, num_frames: int) -> int:
    """Frames of a conditioning video that fit the output from `start_frame`, cut to 8k+1."""
    fitting = min(num_media_frames, num_frames - start_frame)
    return (fitting - 1) // FRAMES_PER_LATENT * FRAMES_PER_LATENT + 1


def prepare_media(frames: torch.Tensor, *, width: int, height: int, padding: Sequence[int] = (0, 0, 0, 0),
                  crf: int = DEFAULT_CRF, blur: bool = True) -> torch.Tensor:
    """`[F, H, W, 3]` frames in [0, 1] → `[1, 3, F, h, w]` in [-1, 1], ready to resize and encode.

    `padding` is `(left, right, top, bottom)` of the output video; the reference adds it to the cropped media
    as is, before any resize. Guides skip the blur (`blur=False`): ComfyUI's `LTXVAddGuide` encodes them as they
    are, and a blur would soften the edges of a canny or pose map.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"conditioning media must be [frames, height, width, 3], got {tuple(frames.shape)}")
    cropped = crop_to_aspect(frames.float(), width, height)
    processed = []
    for frame in cropped:
        blurred = gaussian_blur(frame.permute(2, 0, 1)[None])[0].permute(1, 2, 0) if blur else frame
        compressed = crf_round_trip(blurred, crf)
        chw = compressed.permute(2, 0, 1) * 255.0 / 127.5 - 1.0
        processed.append(F.pad(chw[None, :, None], list(padding)))
    return torch.cat(processed, dim=2)


def resize_media(media: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of `[B, C, F, h, w]` to the pass's size (no antialiasing, like the reference)."""
    if tuple(media.shape[-2:]) == (height, width):
        return media
    batch, frames = media.shape[0], media.shape[2]
    flat = media.transpose(1, 2).flatten(0, 1)
    flat = F.interpolate(flat, size=(height, width), mode="bilinear", align_corners=False)
    return flat.unflatten(0, (batch, frames)).transpose(1, 2)


def padding_for(height: int, width: int,
                multiple: int = PIXELS_PER_LATENT) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """Padded (height, width) and centred `(left, right, top, bottom)` padding."""
    padded_h = math.ceil(height / multiple) * multiple
    padded_w = math.ceil(width / multiple) * multiple
    top, left = (padded_h - height) // 2, (padded_w - width) // 2
    return (padded_h, padded_w), (left, padded_w - width - left, top, padded_h - height - top)
