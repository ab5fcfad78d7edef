"""Strict media decoding (the `media` package, no ComfyUI): whole images and videos pass, cut-short or corrupt
ones are refused by name, whatever Pillow's global truncation setting is."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from media import MediaError, check_image, check_video, read_video
from mp4 import write_mp4


def _image(kind: str) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, kind)
    return buffer.getvalue()


@pytest.fixture(params=[False, True], ids=["strict-pillow", "lenient-pillow"])
def pillow_setting(request, monkeypatch):
    """Pillow's global truncation setting, as another pack (or ComfyUI's retry) may have left it."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", request.param)
    return request.param


@pytest.mark.parametrize("kind", ["PNG", "JPEG", "WEBP", "GIF"])
def test_whole_images_pass_and_cut_short_ones_are_refused(kind, pillow_setting):
    data = _image(kind)
    assert check_image(data, "the image_url") == (64, 48)
    for cut in (data[: len(data) * 2 // 3], data[:-20] if kind == "PNG" else data[: len(data) // 3]):
        with pytest.raises(MediaError, match=r"^the image_url is a damaged or cut-short image: it cannot be decoded "
                                             r"whole"):
            check_image(cut, "the image_url")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is pillow_setting  # restored


def test_not_an_image_is_named():
    with pytest.raises(MediaError, match=r"^the image_url is not an image file that can be read$"):
        check_image(b"\x89PNG\r\n\x1a\n" + bytes(40), "the image_url")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames = torch.linspace(0, 1, 17).view(17, 1, 1, 1).expand(17, 64, 96, 3).contiguous()
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_mp4(str(path), frames, 24.0)
    return path.read_bytes()


def test_a_whole_video_decodes_to_every_frame(clip):
    assert check_video(clip, "the video_url") == 17
    video = read_video(io.BytesIO(clip), "the video")
    assert video.frames.shape == (17, 64, 96, 3) and video.frame_rate == 24
    assert video.frames[0].mean() < 0.1 and video.frames[-1].mean() > 0.9


@pytest.mark.parametrize("keep", [0.98, 0.6, 0.2])
def test_a_cut_short_video_is_refused(clip, keep):
    with pytest.raises(MediaError, match=r"^the video_url is a damaged or cut-short video: "):
        check_video(clip[: int(len(clip) * keep)], "the video_url")


def test_a_video_whose_frames_end_early_is_refused(clip, tmp_path):
    """The container lists 17 frames; the data of the last ones is missing (cut at a frame boundary)."""
    with av.open(io.BytesIO(clip)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
        cut = packets[12].pos
    with pytest.raises(MediaError, match=r"its container lists 17 frames but only 12 could be decoded$"):
        check_video(clip[:cut], "the video_url")


def test_junk_is_not_a_video():
    with pytest.raises(MediaError, match=r"^the video is a damaged or cut-short video: it cannot be decoded whole"):
        check_video(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8, "the video")
