"""The safety checker (`enable_safety_checker`) on tiny random ViT classifiers in models/safety_checker/: the
standalone node, the one-node Text to Video (flagged: error and nothing saved, or black-out; unflagged: frames
bit-identical to the checker off), frame sampling and the missing-model error."""

from __future__ import annotations

import json

import pytest
import torch

from support import assistants_kit
from support.nodes_kit import TINY_GUIDANCE, load_models, node_module, output_directory, write_models

pytest_plugins = ["support.comfy_host"]


@pytest.fixture(scope="module")
def names(tmp_path_factory, comfy_host, ltx_pack):
    return assistants_kit.register(tmp_path_factory.mktemp("checker_models"), comfy_host.folder_paths)


@pytest.fixture(scope="module")
def safety_nodes(names):
    return node_module("safety")


def checker(safety_nodes, name, on_flagged="stop", threshold=0.5):
    return safety_nodes.LTX097SafetyCheckerLoader.execute(model=name, threshold=threshold,
                                                          on_flagged=on_flagged).result[0]


def frames(count=5, seed=0):
    return torch.rand(count, 40, 56, 3, generator=torch.Generator().manual_seed(seed))


def test_unflagged_images_pass_unchanged_with_their_scores(safety_nodes, names):
    images = frames()
    out, flagged, scores = safety_nodes.LTX097SafetyCheck.execute(
        safety_checker=checker(safety_nodes, names["checker"]), images=images).result
    assert out is images and flagged is False
    report = json.loads(scores)
    assert [r["frame"] for r in report] == [0, 1, 2, 3, 4]
    assert all(r["score"] < 0.01 and not r["flagged"] for r in report)


def test_flagged_images_stop_with_what_and_the_score(safety_nodes, names):
    from ltxv097.assistants.safety import ContentFlagged

    with pytest.raises(ContentFlagged, match=r"^The content was flagged by a content checker "
                                             r"\(content_policy_violation\): the safety checker "
                                             r"\(tiny-nsfw-flags-everything\) flagged the images: frame 0 \(score "
                                             r"0\.99\d\), frame 2 \(score 0\.99\d\), frame 4 .*nsfw, threshold 0\.5"):
        safety_nodes.LTX097SafetyCheck.execute(safety_checker=checker(safety_nodes, names["checker_flags"]),
                                               images=frames(), frames_to_check=3)


def test_black_out_option_blacks_flagged_frames(safety_nodes, names):
    images = frames()
    out, flagged, scores = safety_nodes.LTX097SafetyCheck.execute(
        safety_checker=checker(safety_nodes, names["checker_flags"], on_flagged="black out"), images=images).result
    assert flagged is True and out.shape == images.shape and not out.any()
    assert images.any()  # the input is not changed
    assert all(r["flagged"] for r in json.loads(scores))
    # a threshold above every score flags nothing
    out, flagged, _ = safety_nodes.LTX097SafetyCheck.execute(
        safety_checker=checker(safety_nodes, names["checker_flags"], on_flagged="black out", threshold=1.0),
        images=images).result
    assert flagged is False and torch.equal(out, images)


def test_a_score_at_the_threshold_is_flagged(safety_nodes, names):
    images = frames(3)
    scores = safety_nodes.safety.unsafe_scores(checker(safety_nodes, names["checker_flags"]).loaded(), images)
    top = int(scores.argmax())
    threshold = float(scores[top])
    at = checker(safety_nodes, names["checker_flags"], on_flagged="black out", threshold=threshold)
    _, _, report = safety_nodes.LTX097SafetyCheck.execute(safety_checker=at, images=images).result
    assert [r["flagged"] for r in json.loads(report)] == [i == top for i in range(3)]
    at = checker(safety_nodes, names["checker_flags"], threshold=threshold)
    with pytest.raises(safety_nodes.safety.ContentFlagged, match=rf"frame {top} \(score "):
        list(safety_nodes.checked_stream(at, iter([images]), 3))


def test_sampling_covers_first_and_last_and_neighbours_follow_the_nearest(ltx_pack):
    from ltxv097.assistants.safety import FrameVerdict, black_out, frame_flags, sample_indices

    assert sample_indices(89, 9) == [0, 11, 22, 33, 44, 55, 66, 77, 88]
    assert sample_indices(5, 0) == sample_indices(5, 9) == [0, 1, 2, 3, 4]
    assert sample_indices(7, 2) == [0, 6] and sample_indices(7, 1) == [0]
    flags = frame_flags(9, [FrameVerdict(0, 0.1, False), FrameVerdict(4, 0.9, True), FrameVerdict(8, 0.1, False)])
    assert flags.tolist() == [False, False, True, True, True, True, True, False, False]
    video = torch.ones(9, 2, 2, 3)
    assert black_out(video, flags).sum(dim=(1, 2, 3)).tolist() == [12, 12, 0, 0, 0, 0, 0, 12, 12]


def test_missing_model_names_the_files_and_folder(safety_nodes):
    with pytest.raises(FileNotFoundError, match=r"safety checker 'nsfw_image_detection_v2' was not found: put "
                                                r"config\.json, preprocessor_config\.json, model\.safetensors .* in "
                                                r".*safety_checker.nsfw_image_detection_v2"):
        safety_nodes.LTX097SafetyCheckerLoader.execute(model="nsfw_image_detection_v2")


# ---------------------------------------------------------------------------------------------------------------
# one-node text to video


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory, comfy_host):
    with output_directory(tmp_path_factory.mktemp("checker_output"), comfy_host.folder_paths) as folder:
        yield folder


@pytest.fixture(scope="module")
def models(tmp_path_factory, comfy_host, names):
    write_models(tmp_path_factory.mktemp("checker_t2v_models"), comfy_host.folder_paths)
    return load_models()


def run_t2v(models, **kwargs):
    arguments = dict(model=models.model, vae=models.vae, clip=models.clip, prompt="A red fox runs through snow",
                     resolution="480p", aspect_ratio="1:1", number_of_frames=9, number_of_steps=2, frame_rate=25.0,
                     seed=11, recipe="0.9.6 2B distilled", filename_prefix="tests/checked",
                     guidance=TINY_GUIDANCE["0.9.6 2B distilled"])
    arguments.update(kwargs)
    return node_module("text_to_video").LTX097TextToVideo.execute(**arguments)


def saved_files(output_dir):
    return sorted(p.name for p in output_dir.rglob("*.mp4"))


def test_one_node_checker_on_by_default_gives_the_same_frames_as_off(models, output_dir, safety_nodes):
    schema = {i.id: i for i in node_module("text_to_video").LTX097TextToVideo.GET_SCHEMA().inputs}
    assert schema["enable_safety_checker"].default is True and schema["expand_prompt"].default is False
    checked = run_t2v(models).result[1]  # the default folder models/safety_checker/nsfw_image_detection/
    unchecked = run_t2v(models, enable_safety_checker=False).result[1]
    assert torch.equal(checked, unchecked)


def test_one_node_flagged_video_stops_and_saves_nothing(models, output_dir, safety_nodes, names):
    from ltxv097.assistants.safety import ContentFlagged

    before = saved_files(output_dir)
    with pytest.raises(ContentFlagged, match=r"flagged the generated video: frame 0 \(score 0\.99\d\), frame 1 "):
        run_t2v(models, safety_checker=checker(safety_nodes, names["checker_flags"]))
    assert saved_files(output_dir) == before


def test_one_node_checks_the_conditioning_images(models, output_dir, safety_nodes, names):
    from ltxv097.assistants.safety import ContentFlagged

    (conditions,) = node_module("conditioning").LTX097ImageCondition.execute(image=frames(1)).result
    with pytest.raises(ContentFlagged, match=r"flagged the conditioning media \(image condition at frame 0\)"):
        run_t2v(models, conditions=conditions, safety_checker=checker(safety_nodes, names["checker_flags"]))


def test_one_node_black_out_saves_black_frames(models, output_dir, safety_nodes, names):
    result = run_t2v(models, safety_checker=checker(safety_nodes, names["checker_flags"], on_flagged="black out"))
    assert result.result[1].shape == (9, 480, 480, 3) and not result.result[1].any()


def test_one_node_without_a_checker_model_names_file_and_folder(models, output_dir, comfy_host, monkeypatch):
    folder_paths = comfy_host.folder_paths
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "safety_checker",
                        ([str(output_dir / "empty_models")], set()))
    with pytest.raises(FileNotFoundError, match=r"safety checker 'nsfw_image_detection' was not found: put "
                                                r"config\.json, .* in .*empty_models.nsfw_image_detection.* "
                                                r"\(from https://huggingface.co/Falconsai/nsfw_image_detection"):
        run_t2v(models)
    assert run_t2v(models, enable_safety_checker=False).result[1].shape == (9, 480, 480, 3)


def test_one_node_expand_prompt_outputs_the_prompt_used(models, output_dir, names, safety_nodes):
    (enhancer,) = node_module("enhancer").LTX097PromptEnhancerLoader.execute(llm=names["llm"],
                                                                             captioner="none").result
    output = run_t2v(models, expand_prompt=True, prompt_enhancer=enhancer, enable_safety_checker=False)
    result = output.result
    assert result[2] != "A red fox runs through snow" and result[2]
    assert output.ui["prompt"] == [result[2]]  # in the history too, where the HTTP API reads "the prompt used"
    plain = run_t2v(models, enable_safety_checker=False).result
    assert plain[2] == "A red fox runs through snow" and not torch.equal(result[1], plain[1])


def test_one_node_plans_the_expansion_from_its_conditions(models, output_dir, names, caplog):
    """The one node hands its conditions to the enhancer, as the Prompt Enhancer node takes them: with a video at
    frame 0 (which the official enhancer does not rewrite for) the prompt is kept as written, where without
    conditions it would be expanded as text-to-video."""
    (enhancer,) = node_module("enhancer").LTX097PromptEnhancerLoader.execute(llm=names["llm"],
                                                                             captioner="none").result
    (conditions,) = node_module("conditioning").LTX097VideoCondition.execute(images=frames(9, seed=4)).result
    with caplog.at_level("INFO"):
        output = run_t2v(models, expand_prompt=True, prompt_enhancer=enhancer, conditions=conditions,
                         enable_safety_checker=False)
    assert output.result[2] == "A red fox runs through snow"
    assert "prompt expansion (t2v)" not in caplog.text


@pytest.fixture
def images_unconnected(monkeypatch):
    """The one node queued with nothing reading its images output: the frames stream into the mp4."""
    import types

    t2v = node_module("text_to_video")
    hidden = types.SimpleNamespace(unique_id="9", prompt={"9": {"inputs": {}}, "10": {"inputs": {"a": ["9", 0]}}},
                                   extra_pnginfo=None)
    monkeypatch.setattr(t2v.LTX097TextToVideo, "hidden", hidden, raising=False)
    monkeypatch.setattr(t2v, "decode", lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded whole")))


def test_streamed_video_is_checked_on_the_way_and_a_flag_saves_nothing(models, output_dir, safety_nodes, names,
                                                                       images_unconnected):
    from ltxv097.assistants.safety import ContentFlagged

    before = saved_files(output_dir)
    with pytest.raises(ContentFlagged, match=r"flagged the generated video: frame 0 \(score 0\.99\d\)"):
        run_t2v(models, safety_checker=checker(safety_nodes, names["checker_flags"]))
    assert saved_files(output_dir) == before
    passed = run_t2v(models, safety_checker=checker(safety_nodes, names["checker"]))
    assert passed.result[1] is None and len(saved_files(output_dir)) == len(before) + 1


def test_streamed_video_checks_the_conditioning_media_first(models, output_dir, safety_nodes, names,
                                                           images_unconnected):
    from ltxv097.assistants.safety import ContentFlagged

    before = saved_files(output_dir)
    (conditions,) = node_module("conditioning").LTX097ImageCondition.execute(image=frames(1)).result
    with pytest.raises(ContentFlagged, match=r"flagged the conditioning media \(image condition at frame 0\)"):
        run_t2v(models, conditions=conditions, safety_checker=checker(safety_nodes, names["checker_flags"]))
    assert saved_files(output_dir) == before


def test_streamed_check_looks_at_the_frames_check_generation_samples(models, safety_nodes, names, monkeypatch):
    seen = []
    original = safety_nodes.safety.unsafe_scores

    def spy(classifier, frames):
        seen.append(frames.clone())
        return original(classifier, frames)

    monkeypatch.setattr(safety_nodes.safety, "unsafe_scores", spy)
    video = frames(20, seed=3)
    chunks = [video[:7], video[7:15], video[15:]]
    streamed = list(safety_nodes.checked_stream(checker(safety_nodes, names["checker"]), iter(chunks), 20))
    assert all(a is b for a, b in zip(streamed, chunks))
    indices = safety_nodes.safety.sample_indices(20, safety_nodes.VIDEO_SAMPLE)
    assert torch.equal(torch.cat(seen), video[indices])
