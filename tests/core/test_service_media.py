"""The API's condition media without a server: sniffing, writing to the input folder, damaged files, pixel and
memory limits decided from headers, the download pool."""

from __future__ import annotations

import asyncio
import io
import struct
import threading
import zlib

import pytest
from PIL import Image

from support.service_modules import (
    REQUEST_ID,
    check_media,
    downloads,
    media,
    schema,
    service_config,
    service_limits,
)


def png_header_bomb(width: int, height: int) -> bytes:
    """A real, valid 1-bit PNG of width × height black pixels: tiny on the wire, huge once decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(bytes(height * (1 + (width + 7) // 8)), 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def jpeg(width: int = 64, height: int = 48) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


def test_media_is_sniffed_and_written_to_the_input_folder(tmp_path):
    assert media.sniff("image", b"\x89PNG\r\n\x1a\n....") == "png"
    assert media.sniff("image", b"RIFF\0\0\0\0WEBPVP8 ") == "webp"
    assert media.sniff("video", b"\0\0\0\x18ftypisom") == "mp4"
    assert media.sniff("image", b"<html>") is None and media.sniff("video", b"\x89PNG\r\n\x1a\n") is None
    fetched = []

    def fetch_bytes(url, *, max_bytes, what):
        fetched.append((url, max_bytes, what))
        return jpeg(), "image/jpeg"

    config = service_config.ServiceConfig(max_image_bytes=123)
    checked = []
    loader = media.ConditionMedia(fetch_bytes, ValueError, tmp_path, config,
                                  check_media=lambda kind, data, what: checked.append((kind, data[:3], what)))
    generation = schema.parse_input({"prompt": "p", "image_url": "https://x/y"})
    files = asyncio.run(loader(generation, REQUEST_ID))
    assert files == [f"ltxv097_api_{REQUEST_ID}_0_image.jpg"]
    assert fetched == [("https://x/y", 123, "the image_url")]
    assert (tmp_path / files[0]).read_bytes().startswith(b"\xff\xd8\xff")
    assert checked == [("image", b"\xff\xd8\xff", "the image_url")]
    uploaded = {"https://me/up/1": (png_header_bomb(4, 4), "image/png")}  # a real (tiny) PNG
    several = schema.parse_input({"prompt": "p", "images": [{"image_url": "https://me/up/1"},
                                                            {"image_url": "https://x/z", "start_frame_number": 8}]},
                                 endpoint=schema.MULTICONDITIONING)
    files = asyncio.run(loader(several, REQUEST_ID, uploaded.get))
    assert files == [f"ltxv097_api_{REQUEST_ID}_0_image.png", f"ltxv097_api_{REQUEST_ID}_1_image.jpg"]
    assert fetched[-1] == ("https://x/z", 123, "the images.1.image_url")  # the upload needed no fetch
    too_big = {"https://me/up/1": (b"\x89PNG\r\n\x1a\n" + bytes(200), "image/png")}
    with pytest.raises(schema.InputError) as caught:
        asyncio.run(loader(several, "0" + REQUEST_ID[1:], too_big.get))
    assert caught.value.detail[0]["loc"] == ["body", "images", 0, "image_url"]


def test_leftover_condition_files_are_removed_and_users_files_kept(tmp_path):
    ours = [media.input_name(REQUEST_ID, 0, "image", "png"), media.input_name(REQUEST_ID, 3, "video", "webm")]
    users = ["photo.png", "ltxv097_api_notes.png", f"ltxv097_api_{REQUEST_ID}_0_image.png.bak",
             f"my_ltxv097_api_{REQUEST_ID}_0_image.png", f"ltxv097_api_{REQUEST_ID}_0_mask.png"]
    for name in ours + users:
        (tmp_path / name).write_bytes(b"x")
    assert media.remove_leftover_inputs(tmp_path) == sorted(ours)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(users)
    assert media.remove_leftover_inputs(tmp_path / "missing") == []


def test_damaged_media_is_a_422_naming_the_field_and_nothing_is_written(tmp_path):
    pixels = bytes(range(256)) * 48
    buffer = io.BytesIO()
    Image.frombytes("RGB", (64, 64), pixels).save(buffer, "PNG")
    png = buffer.getvalue()
    for data, field in ((png[: len(png) // 2], "image_url"), (png[:-20], "image_url")):
        loader = media.ConditionMedia(lambda url, data=data, **_: (data, "image/png"), ValueError, tmp_path,
                                      service_config.ServiceConfig(), check_media=check_media)
        with pytest.raises(schema.InputError) as refused:
            asyncio.run(loader(schema.parse_input({"prompt": "p", field: "https://x/y"}), REQUEST_ID))
        (entry,) = refused.value.detail
        assert entry["loc"] == ["body", field] and entry["type"] == "file_damaged", entry
        assert entry["msg"].startswith("the image_url is a damaged or cut-short image"), entry
    assert list(tmp_path.iterdir()) == []


def refusal(loader, body: dict) -> dict:
    with pytest.raises(schema.InputError) as caught:
        asyncio.run(loader(schema.parse_input({"prompt": "p", **body}), REQUEST_ID))
    [entry] = caught.value.detail
    return entry


def test_condition_pixels_are_limited_from_the_header_before_decoding(tmp_path):
    """A 12000×12000 PNG of a few KB once took 20 GB: its header alone decides now (issue 17, 1)."""
    bomb = png_header_bomb(12000, 12000)
    assert len(bomb) < 100_000
    served = {"https://x/bomb.png": bomb, "https://x/small.jpg": jpeg(64, 48)}

    def fetch_bytes(url, *, max_bytes, what):
        return served[url], ""

    loader = media.ConditionMedia(fetch_bytes, ValueError, tmp_path, service_config.ServiceConfig())
    entry = refusal(loader, {"image_url": "https://x/bomb.png"})
    assert entry["loc"] == ["body", "image_url"] and entry["type"] == "file_too_large"
    assert "12000×12000 px = 144,000,000 pixels; at most 67,108,864" in entry["msg"], entry
    small = media.ConditionMedia(fetch_bytes, ValueError, tmp_path,
                                 service_config.ServiceConfig(max_image_pixels=64 * 48 - 1))
    assert refusal(small, {"image_url": "https://x/small.jpg"})["type"] == "file_too_large"
    assert asyncio.run(media.ConditionMedia(fetch_bytes, ValueError, tmp_path, service_config.ServiceConfig(
        max_image_pixels=64 * 48))(schema.parse_input({"prompt": "p", "image_url": "https://x/small.jpg"}),
                                   REQUEST_ID)) == [f"ltxv097_api_{REQUEST_ID}_0_image.jpg"]
    served["https://x/cut.png"] = bomb[:20]
    entry = refusal(loader, {"image_url": "https://x/cut.png"})
    assert entry["type"] == "file_type" and "not a readable png file" in entry["msg"]
    assert not list(tmp_path.glob("*.png"))


def test_video_pixels_come_from_the_container(tmp_path):
    from support import e2e_workflows

    clip = e2e_workflows.write_video(tmp_path / "clip.mp4", frames=9).read_bytes()
    width, height = e2e_workflows.INPUT_MEDIA_SIZE
    assert service_limits.video_size(clip) == service_limits.MediaSize(width, height, 9)

    def fetch_bytes(url, *, max_bytes, what):
        return clip, "video/mp4"

    tight = media.ConditionMedia(fetch_bytes, ValueError, tmp_path / "in",
                                 service_config.ServiceConfig(max_video_pixels=width * height * 9 - 1))
    entry = refusal(tight, {"video_url": "https://x/clip.mp4"})
    assert entry["loc"] == ["body", "video_url"] and entry["type"] == "file_too_large"
    assert f"{width}×{height} px × 9 frames" in entry["msg"]


def test_a_request_larger_than_the_free_memory_is_refused(tmp_path):
    def fetch_bytes(url, *, max_bytes, what):
        return jpeg(640, 480), "image/jpeg"

    config = service_config.ServiceConfig()
    needs = media.request_memory(schema.parse_input({"prompt": "p", "number_of_frames": 89}), [])
    assert needs == 1280 * 720 * 89 * service_limits.OUTPUT_BYTES_PER_PIXEL
    short = media.ConditionMedia(fetch_bytes, ValueError, tmp_path, config,
                                 free_memory=lambda: needs + 640 * 480 * service_limits.IMAGE_BYTES_PER_PIXEL - 1)
    entry = refusal(short, {"image_url": "https://x/a.jpg", "number_of_frames": 89})
    assert entry["loc"] == ["body", "image_url"] and entry["type"] == "insufficient_memory"
    assert "free" in entry["msg"] and not list(tmp_path.iterdir())
    enough = media.ConditionMedia(fetch_bytes, ValueError, tmp_path, config,
                                  free_memory=lambda: needs + 640 * 480 * service_limits.IMAGE_BYTES_PER_PIXEL)
    assert asyncio.run(enough(schema.parse_input({"prompt": "p", "image_url": "https://x/a.jpg"}), REQUEST_ID))
    text_only = media.ConditionMedia(fetch_bytes, ValueError, tmp_path, config, free_memory=lambda: 1000)
    assert refusal(text_only, {})["loc"] == ["body", "number_of_frames"]


def test_the_download_pool_answers_busy_instead_of_waiting():
    pool = downloads.DownloadPool(workers=2, per_request=1)
    release = threading.Event()

    async def scenario():
        slow = [asyncio.ensure_future(pool.run([release.wait])) for _ in range(2)]
        await asyncio.sleep(0.05)
        try:  # a third download must be refused at once; waiting behind the two would never end before release
            with pytest.raises(downloads.ServerBusy, match="downloading 2 files for other requests"):
                await asyncio.wait_for(pool.run([lambda: 1]), timeout=10)
        finally:
            release.set()
        assert await asyncio.gather(*slow) == [[True], [True]]
        assert await pool.run([lambda: 1, lambda: 2]) == [1, 2]
        assert pool.in_flight == 0

    asyncio.run(scenario())


