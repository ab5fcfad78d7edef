"""Inputs that used to fail deep inside a run (or not at all) are refused up front with a sentence that names the
input, the value and what is allowed: non-finite frame rates, tiny condition images, wrong types in a guidance
dict (issue 8, item 6)."""

from __future__ import annotations

import math

import pytest
import torch

from ltx_core import Condition, sample_video
from ltx_core.sampling.recipes import resolve_recipe
from support import e2e_workflows, workflow_api
from support.comfy_server import HostError

pytest_plugins = ["support.comfy_host"]
NAN = float("nan")


class _NoWork:
    """A checkpoint stand-in whose every use fails: validation must refuse before touching it."""

    def __getattr__(self, name):
        raise AssertionError(f"the run started (checkpoint.{name} was used) before the inputs were checked")


def _sample(**changes):
    kwargs = dict(context=torch.zeros(1, 4, 8), context_mask=torch.ones(1, 4), negative_context=torch.zeros(1, 4, 8),
                  negative_context_mask=torch.ones(1, 4), width=96, height=64, num_frames=9, frame_rate=25.0,
                  seed=0, recipe="0.9.6-2b-dev")
    kwargs.update(changes)
    return sample_video(_NoWork(), **kwargs)


@pytest.mark.parametrize("rate", [NAN, math.inf, -25.0, 0.0, True])
def test_sample_video_refuses_a_frame_rate_that_is_not_a_positive_number(rate):
    with pytest.raises(ValueError, match=r"frame_rate=.* must be a finite number of frames per second above 0"):
        _sample(frame_rate=rate)


@pytest.mark.parametrize("size", [(1, 1), (4, 300), (300, 7)])
def test_sample_video_refuses_media_too_small_to_condition_on(size):
    height, width = size
    with pytest.raises(ValueError, match=rf"conditions\[0\]: the media is {width}×{height} px.*at least 8 px"):
        _sample(conditions=[Condition(torch.rand(1, height, width, 3), 0, 1.0)])


def test_a_wide_strip_is_too_small_once_cropped_to_the_video_aspect():
    """300×6 px has enough pixels, but cropped to the video's 3:2 it keeps only 9×6."""
    with pytest.raises(ValueError, match=r"the media is 300×6 px, 9×6 once centre-cropped to the video's 96:64"):
        _sample(conditions=[Condition(torch.rand(1, 6, 300, 3), 0, 1.0)])


@pytest.mark.parametrize("overrides, message", [
    ({"first_pass": {"guidance_scale": "strong"}}, r"first_pass\.guidance_scale='strong'.*a number of 0 or more"),
    ({"guidance_scale": [3, None]}, r"guidance_scale=\[3, None\]"),
    ({"stg_mode": 1}, r"stg_mode=1.*one of attention_values"),
    ({"decode_timestep": NAN}, r"decode_timestep=nan.*a number in 0–1"),
    ({"skip_block_list": ["19"]}, r"skip_block_list=\['19'\].*block numbers"),
    ({"num_inference_steps": 2.5}, r"num_inference_steps=2\.5.*whole number of 1 or more"),
    ({"batched_guidance": "false"}, r"batched_guidance='false'.*true or false"),
    ({"second_pass": 7}, r"second_pass=7.*a dict of pass settings"),
])
def test_recipe_values_of_the_wrong_type_are_named(overrides, message):
    recipe = "0.9.7-dev" if "first_pass" in overrides or "second_pass" in overrides else "0.9.6-2b-dev"
    with pytest.raises(ValueError, match=message):
        resolve_recipe(recipe, overrides)
    with pytest.raises(ValueError, match=message):
        _sample(recipe=recipe, **overrides)


# ------------------------------------------------------------------------------------------------------------------
# The nodes


def test_condition_nodes_refuse_a_one_pixel_image(ltx_pack):
    conditioning = ltx_pack.nodes.conditioning
    with pytest.raises(ValueError, match=r"image condition: the image is 1×1 px; .* at least 8×8 px"):
        conditioning.LTX097ImageCondition.execute(image=torch.rand(1, 1, 1, 3))
    with pytest.raises(ValueError, match=r"video condition: the image is 5×64 px"):
        conditioning.LTX097VideoCondition.execute(images=torch.rand(9, 64, 5, 3))


@pytest.mark.parametrize("node", ["sampler.LTX097Sampler", "text_to_video.LTX097TextToVideo",
                                  "video.LTX097SaveVideo"])
def test_frame_rate_widgets_refuse_nan(ltx_pack, node):
    module, name = node.split(".")
    cls = getattr(getattr(ltx_pack.nodes, module), name)
    assert cls.validate_inputs(frame_rate=25.0) is True
    for value in (NAN, 0.5, 1e6):
        answer = cls.validate_inputs(frame_rate=value)
        assert isinstance(answer, str) and f"frame_rate={value!r} is not allowed" in answer


def test_save_video_refuses_nan_before_writing(ltx_pack, tmp_path):
    video = ltx_pack.nodes.video
    path = tmp_path / "clip.mp4"
    with pytest.raises(ValueError, match="frame_rate=nan is not allowed"):
        video.write_mp4(str(path), torch.rand(3, 16, 16, 3), NAN)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("conditions, message", [
    ("frame 0: cat.png", r"conditions='frame 0: cat.png' is not allowed"),
    ([{"image": "cat.png", "start_frame": 0}], r"conditions: item 1 is \{'image': 'cat.png'.*not an image or video"),
])
def test_conditions_that_are_not_condition_items_are_named(ltx_pack, conditions, message):
    with pytest.raises(ValueError, match=message):
        ltx_pack.nodes.conditioning.resolve_conditions(conditions, 97)


def test_sampler_refuses_a_guidance_input_that_is_not_a_dict(ltx_pack):
    sampler_node, choices = ltx_pack.nodes.sampler, ltx_pack.nodes.recipe_choices
    with pytest.raises(ValueError, match=r"guidance='cfg 3' is not allowed \(allowed: a dict of recipe settings"):
        sampler_node.recipe_overrides(choices.recipe_choice(choices.DEFAULT_RECIPE), "cfg 3")


# ------------------------------------------------------------------------------------------------------------------
# Through the real server: refused at queue time, or failed before any sampling and with no file written


@pytest.fixture(scope="module")
def one_node(comfy_server):
    workflow = e2e_workflows.load_workflow("ltxv097_text_to_video_one_node")
    return e2e_workflows.tiny_prompt(workflow, comfy_server.object_info(), comfy_server.models)


def test_server_refuses_a_nan_frame_rate_at_queue_time(comfy_server, one_node):
    prompt = workflow_api.set_inputs(one_node, "LTX097TextToVideo", frame_rate=NAN)
    with pytest.raises(HostError) as error:
        comfy_server.post_prompt(prompt)
    (node,) = workflow_api.nodes_of(prompt, "LTX097TextToVideo")
    assert "frame_rate=nan is not allowed (allowed: a number in 1–120)" in str(error.value.detail["node_errors"][node])


def test_server_names_a_wrongly_typed_guidance_value_before_sampling(comfy_server, one_node):
    outputs = sorted(comfy_server.output_dir.rglob("*.mp4"))
    prompt = workflow_api.set_inputs(one_node, "LTX097TextToVideo",
                                     guidance={"first_pass": {"guidance_scale": "strong"}})
    entry = comfy_server.wait(comfy_server.post_prompt(prompt), timeout=120)
    error = comfy_server.execution_error(entry)
    assert error is not None and error["node_type"] == "LTX097TextToVideo", entry["status"]
    assert "guidance_scale='strong' is not allowed" in error["exception_message"]
    assert "Tensor" not in error["exception_message"]
    assert sorted(comfy_server.output_dir.rglob("*.mp4")) == outputs
