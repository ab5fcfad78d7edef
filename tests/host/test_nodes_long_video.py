"""Long videos, per-window prompts and Extend Video through the nodes, in process on tiny models."""

from __future__ import annotations

import logging
import types

import av
import pytest
import torch

from support.nodes_kit import load_models, node_module, output_directory, write_models

pytest_plugins = ["support.comfy_host"]

SMALL = dict(recipe="0.9.6 2B distilled", steps=1, seed=3)


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory, comfy_host):
    with output_directory(tmp_path_factory.mktemp("output"), comfy_host.folder_paths) as folder:
        yield folder


@pytest.fixture(scope="module")
def models(tmp_path_factory, comfy_host, ltx_pack):
    write_models(tmp_path_factory.mktemp("long_models"), comfy_host.folder_paths)
    return load_models()


def windows(window_frames=17, overlap_frames=8, factor=0.5):
    (settings,) = node_module("long_video").LTX097LongVideoSettings.execute(
        window_frames=window_frames, overlap_frames=overlap_frames, temporal_adain_factor=factor).result
    return settings


def mp4_frames(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def saved(output_dir, ui):
    entry = (ui if isinstance(ui, dict) else ui.as_dict())["images"][0]
    return output_dir / entry["subfolder"] / entry["filename"]


def test_text_encode_splits_window_prompts_and_the_sampler_runs_windows(models, output_dir, monkeypatch, caplog):
    text, sampler_node = node_module("text"), node_module("sampler")
    positive, negative = text.LTX097TextEncode.execute(clip=models.clip, prompt="a fox\n---\na fox sleeps").result
    assert len(positive) == 2 and not torch.equal(positive[0][0], positive[1][0])
    assert torch.equal(positive[1][0], text.encode_prompt(models.clip, "a fox sleeps")[0][0])
    seen = {}
    original = node_module("sampler").ltx_core.sample_long_video

    def record(*args, **kwargs):
        seen.update(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(sampler_node.ltx_core, "sample_long_video", record)
    with caplog.at_level(logging.INFO):
        (latent,) = sampler_node.LTX097Sampler.execute(model=models.model, vae=models.vae, positive=positive,
                                                   negative=negative, width=64, height=64, num_frames=40,
                                                   frame_rate=25.0, windows=windows(), **SMALL).result
    assert len(seen["context"]) == 2 and seen["window_frames"] == 17 and seen["overlap_frames"] == 8
    assert latent["samples"].shape[2] == 6  # 40 frames → 41 = 8·5+1 → 6 latent frames, in 3 windows
    assert [r.getMessage() for r in caplog.records if "window" in r.getMessage()] == [
        f"LTX-Video: window {k} of 3" for k in (1, 2, 3)]
    (frames, _) = node_module("decode").LTX097Decode.execute(samples=latent, vae=models.vae).result
    assert frames.shape == (40, 64, 64, 3)
    with pytest.raises(ValueError, match="window prompt\\(s\\) \\[2\\] of 3 are empty"):
        text.split_prompts("a\n---\n\n---\nb")
    with pytest.raises(ValueError, match="4 prompts for 3 window"):
        sampler_node.LTX097Sampler.execute(model=models.model, vae=models.vae, positive=positive * 2, negative=negative,
                                       width=64, height=64, num_frames=40, frame_rate=25.0, windows=windows(),
                                       **SMALL)


def test_long_text_to_video_streams_to_the_mp4_when_images_are_not_connected(models, output_dir, monkeypatch):
    t2v = node_module("text_to_video")
    gathered = []
    monkeypatch.setattr(t2v, "decode", lambda *a, **k: gathered.append(1) or (_ for _ in ()).throw(AssertionError))
    hidden = types.SimpleNamespace(unique_id="9", prompt={"9": {"inputs": {}}, "10": {"inputs": {"a": ["9", 0]}}},
                                   extra_pnginfo=None)
    monkeypatch.setattr(t2v.LTX097TextToVideo, "hidden", hidden, raising=False)
    result = t2v.LTX097TextToVideo.execute(model=models.model, vae=models.vae, clip=models.clip, prompt="a fox",
                                           resolution="480p", aspect_ratio="1:1", number_of_frames=17,
                                           number_of_steps=1, seed=2, recipe="0.9.6 2B distilled",
                                           filename_prefix="tests/long", windows=windows(9, 8),
                                           enable_safety_checker=False)  # the checker reads the frames whole
    video, frames, _, _ = result.result
    assert frames is None and not gathered
    assert mp4_frames(saved(output_dir, result.ui)) == 17
    assert node_module("long_video").output_connected(t2v.LTX097TextToVideo, 0)
    assert not node_module("long_video").output_connected(t2v.LTX097TextToVideo, 1)


@pytest.mark.parametrize("direction", ["append", "prepend"])
def test_extend_keeps_the_clip_and_adds_exactly_n_frames(models, output_dir, direction):
    clip = torch.rand(20, 64, 64, 3, generator=torch.Generator().manual_seed(1))
    positive, negative = node_module("text").LTX097TextEncode.execute(clip=models.clip, prompt="a fox").result
    result = node_module("extend").LTX097ExtendVideo.execute(
        model=models.model, vae=models.vae, positive=positive, negative=negative, new_frames=11,
        direction=direction, context_frames=9, frame_rate=24.0, images=clip, filename_prefix="tests/extend",
        windows=windows(), **SMALL)
    video, frames, rate = result.result
    assert frames.shape == (31, 64, 64, 3) and rate == 24.0
    kept = frames[:20] if direction == "append" else frames[11:]
    assert torch.equal(kept, clip)  # the given frames are kept exactly, not round-tripped through the VAE
    assert mp4_frames(saved(output_dir, result.ui)) == 31


def test_extend_errors_name_the_value(models):
    positive, negative = node_module("text").LTX097TextEncode.execute(clip=models.clip, prompt="a fox").result
    extend = node_module("extend").LTX097ExtendVideo
    arguments = dict(model=models.model, vae=models.vae, positive=positive, negative=negative, **SMALL)
    with pytest.raises(ValueError, match="has 0 frames"):
        extend.execute(images=torch.zeros(0, 64, 64, 3), **arguments)
    with pytest.raises(ValueError, match="no clip to extend"):
        extend.execute(**arguments)
    with pytest.raises(ValueError, match="context_frames=4 is not allowed"):
        extend.execute(images=torch.rand(9, 64, 64, 3), context_frames=4, **arguments)
    settings = node_module("long_video").LTX097LongVideoSettings
    assert "overlap_frames=24 must be smaller than window_frames=17" in settings.validate_inputs(17, 24)
    assert "window_frames=20 is not allowed" in settings.validate_inputs(20, 8)


def test_without_settings_the_trained_length_stays_one_window(ltx_pack):
    """Up to 257 frames (what the model makes in one go) no seams are added; longer videos get 121 / 24 windows."""
    long_video = node_module("long_video")
    assert long_video.window_settings(None, 257)["window_frames"] == 257
    assert long_video.window_settings(None, 258)["window_frames"] == 121
    chosen = {"window_frames": 97, "overlap_frames": 16, "temporal_adain_factor": 0.5}
    assert long_video.window_settings(chosen, 200) == chosen


def test_a_cut_short_video_file_is_refused_by_the_nodes_that_read_it(models, output_dir, tmp_path, comfy_host):
    """Video Condition and Extend Video decode a Load Video file whole: one cut short is an error naming the input,
    not a shorter clip (core's decoding stops quietly where the data ends)."""
    from comfy_api.latest import InputImpl

    whole = tmp_path / "whole.mp4"
    node_module("video").write_mp4(str(whole), torch.linspace(0, 1, 17).view(17, 1, 1, 1).expand(17, 64, 64, 3), 24.0)
    cut = tmp_path / "cut.mp4"
    with av.open(str(whole)) as container:
        end = [packet for packet in container.demux(video=0) if packet.size][12].pos
    cut.write_bytes(whole.read_bytes()[:end])
    assert len(InputImpl.VideoFromFile(str(cut)).get_components().images) == 12  # what core makes of it
    condition = node_module("conditioning").LTX097VideoCondition
    (conditions,) = condition.execute(video=InputImpl.VideoFromFile(str(whole))).result
    assert conditions[0].media.shape[0] == 17
    with pytest.raises(ValueError, match=r"^video condition is a damaged or cut-short video: its container lists 17 "
                                         r"frames but only 12 could be decoded"):
        condition.execute(video=InputImpl.VideoFromFile(str(cut)))
    positive, negative = node_module("text").LTX097TextEncode.execute(clip=models.clip, prompt="a fox").result
    with pytest.raises(ValueError, match=r"^the clip to extend is a damaged or cut-short video"):
        node_module("extend").LTX097ExtendVideo.execute(
            model=models.model, vae=models.vae, positive=positive, negative=negative, new_frames=8,
            video=InputImpl.VideoFromFile(str(cut)), **SMALL)
