"""Every node's schema, prompt encoding with a tiny T5, the condition nodes and the guidance settings node
(in process against the host's real modules; no sampling here)."""

from __future__ import annotations

import inspect
import os
import re

import pytest
import torch

from support import tiny_t5
from support.comfy_host import pack_nodes
from support.nodes_kit import node_module

pytest_plugins = ["support.comfy_host"]


@pytest.fixture(scope="module")
def all_nodes(ltx_pack):
    return pack_nodes(ltx_pack)


@pytest.fixture(scope="module")
def clip(comfy_host):
    return tiny_t5.tiny_t5_clip(seed=0)


@pytest.fixture(scope="module")
def text(ltx_pack):
    return node_module("text")


# ---------------------------------------------------------------------------------------------------------------
# schemas


def test_every_node_has_a_prefixed_unique_id_a_description_and_tooltips(all_nodes):
    ids = [cls.GET_SCHEMA().node_id for cls in all_nodes]
    assert len(ids) == len(set(ids))
    expected = {"LTX097ModelLoader", "LTX097UpsamplerLoader", "LTX097TextEncode", "LTX097ImageCondition",
                "LTX097VideoCondition", "LTX097GuidanceSettings", "LTX097Sampler", "LTX097Decode",
                "LTX097SaveVideo", "LTX097TextToVideo", "LTX097PromptEnhancerLoader", "LTX097PromptEnhancer",
                "LTX097SafetyCheckerLoader", "LTX097SafetyCheck"}
    assert expected <= set(ids)
    names = [cls.GET_SCHEMA().display_name for cls in all_nodes]
    assert len(names) == len(set(names))
    for cls in all_nodes:
        schema = cls.GET_SCHEMA()
        assert schema.node_id.startswith("LTX097") and schema.node_id == cls.__name__
        assert schema.category.startswith("LTX-Video 0.9.7")
        assert schema.description and schema.description.strip().endswith(".")
        assert schema.display_name.startswith("LTX-Video 0.9.7")
        for item in schema.inputs:
            assert item.tooltip, f"{schema.node_id}.{item.id} has no tooltip"
        # ComfyUI-Manager's scanner reads node ids from the source: they must be literals in define_schema
        assert f'node_id="{schema.node_id}"' in inspect.getsource(cls.define_schema)
        # the V1 view the server sends to the frontend builds
        info = cls.INPUT_TYPES()
        assert set(info["required"]) | set(info.get("optional", {})) == {i.id for i in schema.inputs}


def test_output_nodes_and_hidden_inputs(all_nodes):
    by_id = {cls.GET_SCHEMA().node_id: cls for cls in all_nodes}
    assert by_id["LTX097SaveVideo"].GET_SCHEMA().is_output_node
    assert by_id["LTX097TextToVideo"].GET_SCHEMA().is_output_node
    assert not by_id["LTX097Sampler"].GET_SCHEMA().is_output_node
    seed = next(i for i in by_id["LTX097TextToVideo"].GET_SCHEMA().inputs if i.id == "seed")
    assert seed.control_after_generate and seed.max == 0xFFFFFFFFFFFFFFFF
    t2v = {i.id: i for i in by_id["LTX097TextToVideo"].GET_SCHEMA().inputs}
    assert (t2v["resolution"].default, t2v["aspect_ratio"].default) == ("720p", "16:9")
    assert t2v["number_of_frames"].default == 89
    assert (t2v["number_of_steps"].default, t2v["frame_rate"].default) == (30, 25.0)
    assert t2v["negative_prompt"].default == ("blurry, low quality, low resolution, inconsistent motion, jittery, "
                                              "distorted")
    # every parameter of the hosted service, with its defaults
    assert (t2v["expand_prompt"].default, t2v["enable_safety_checker"].default) == (False, True)
    assert {"prompt", "negative_prompt", "loras", "resolution", "aspect_ratio", "number_of_frames", "number_of_steps",
            "frame_rate", "seed", "reverse_video", "expand_prompt", "enable_safety_checker"} <= set(t2v)


SHARED_INPUTS = {"frames": {"LTX097Sampler": "num_frames", "LTX097TextToVideo": "number_of_frames"},
                 "frame_rate": {"LTX097Sampler": "frame_rate", "LTX097TextToVideo": "frame_rate",
                                "LTX097SaveVideo": "frame_rate"},
                 "steps": {"LTX097Sampler": "steps", "LTX097TextToVideo": "number_of_steps"}}


@pytest.mark.parametrize("quantity", sorted(SHARED_INPUTS))
def test_nodes_share_one_range_per_quantity(all_nodes, quantity):
    by_id = {cls.GET_SCHEMA().node_id: cls for cls in all_nodes}
    ranges = set()
    for node_id, name in SHARED_INPUTS[quantity].items():
        widget = next(i for i in by_id[node_id].GET_SCHEMA().inputs if i.id == name)
        ranges.add((widget.min, widget.max, widget.step))
    assert len(ranges) == 1, f"{quantity}: {ranges}"
    (low, high, _), = ranges
    assert low >= 1, f"{quantity} allows {low}: no 0 / -1 'recipe default' sentinel"


def test_widgets_on_the_model_grid_with_explicit_defaults(all_nodes):
    """Sizes step by 32 px; the sampler's steps and the decode settings show the value that runs."""
    by_id = {cls.GET_SCHEMA().node_id: {i.id: i for i in cls.GET_SCHEMA().inputs} for cls in all_nodes}
    sampler, decode = by_id["LTX097Sampler"], by_id["LTX097Decode"]
    assert (sampler["width"].step, sampler["height"].step) == (32, 32)
    assert sampler["width"].default % 32 == 0 and sampler["height"].default % 32 == 0
    assert (sampler["steps"].default, by_id["LTX097TextToVideo"]["number_of_steps"].default) == (30, 30)
    assert (decode["decode_timestep"].default, decode["decode_noise_scale"].default) == (0.05, 0.025)
    assert decode["decode_timestep"].min == 0.0 and decode["decode_noise_scale"].min == 0.0


# ---------------------------------------------------------------------------------------------------------------
# prompt encoding


def hf_tokenizer():
    import comfy.text_encoders.lt
    from transformers import T5TokenizerFast

    return T5TokenizerFast.from_pretrained(os.path.join(os.path.dirname(comfy.text_encoders.lt.__file__),
                                                        "t5_tokenizer"))


@pytest.mark.parametrize("prompt", ["A red fox runs through (deep:1.3) snow, the camera follows it.",
                                    " ".join(f"word{i} and" for i in range(300)), ""])
def test_tokens_match_the_reference_tokenizer(text, clip, prompt):
    """Same ids as the reference's `tokenizer(..., truncation=True, max_length=256, padding="max_length")`."""
    tokens = text.reference_tokens(clip, prompt)["t5xxl"][0]
    expected = hf_tokenizer()(prompt, truncation=True, max_length=256, padding="max_length",
                              add_special_tokens=True)
    assert [t for t, _ in tokens] == expected["input_ids"]
    assert text.token_mask({"t5xxl": [tokens]})[0].tolist() == expected["attention_mask"]


def test_text_encode_outputs_core_conditioning_with_a_0_1_mask(text, clip):
    positive, negative = text.LTX097TextEncode.execute(clip=clip, prompt="A cat on a wall",
                                                       negative_prompt="blurry").result
    for conditioning, words in ((positive, "A cat on a wall"), (negative, "blurry")):
        assert len(conditioning) == 1
        cond, extra = conditioning[0]
        assert cond.shape == (1, 256, 64) and cond.dtype == torch.float32
        mask = extra["attention_mask"]
        assert mask.shape == (1, 256) and mask.dtype == torch.long and set(mask.unique().tolist()) == {0, 1}
        count = len(hf_tokenizer()(words)["input_ids"])  # tokens + end token
        assert mask.sum().item() == count and mask[0, :count].all()
    # deterministic: same prompt, same embedding; other prompt, other embedding
    again = text.encode_prompt(clip, "A cat on a wall")
    assert torch.equal(again[0][0], positive[0][0])
    assert not torch.equal(negative[0][0][:, :1], positive[0][0][:, :1])


def test_long_prompts_keep_the_end_token_last(text, clip):
    conditioning = text.encode_prompt(clip, "a " * 400)
    assert conditioning[0][0].shape == (1, 256, 64)
    assert conditioning[0][1]["attention_mask"].sum().item() == 256
    assert text.reference_tokens(clip, "a " * 400)["t5xxl"][0][-1] == (1, 1.0)


def test_core_clip_text_encode_output_is_accepted(text, clip):
    import nodes as core_nodes

    (conditioning,) = core_nodes.CLIPTextEncode().encode(clip, "A cat on a wall")
    context, mask = text.prompt_context(conditioning, "positive", 64)
    assert context.shape[0] == 1 and context.shape[2] == 64 and mask.shape == context.shape[:2]
    ours = text.encode_prompt(clip, "A cat on a wall")
    ours_context, ours_mask = text.prompt_context(ours, "negative", 64)
    assert mask.sum() == ours_mask.sum()
    assert ours_mask.shape == (1, 256) and context.shape[1] <= 256
    # no mask at all (e.g. a conditioning built by hand): all ones
    context, mask = text.prompt_context([[torch.zeros(1, 7, 64), {}]], "positive", 64)
    assert mask.tolist() == [[1] * 7]


def test_prompt_errors_are_sentences(text, clip):
    with pytest.raises(ValueError, match="has 768 channels but this model reads 64"):
        text.prompt_context([[torch.zeros(1, 77, 768), {"pooled_output": None}]], "positive", 64)
    with pytest.raises(ValueError, match="the negative conditioning is empty"):
        text.prompt_context([], "negative", 64)

    class ClipL:
        def tokenize(self, text, **kwargs):
            return {"l": [[(49406, 1.0), (49407, 1.0)]]}

    with pytest.raises(ValueError, match="not a T5-XXL text encoder; load t5xxl_fp16.safetensors"):
        text.encode_prompt(ClipL(), "a cat")
    with pytest.raises(ValueError, match="no text encoder is connected"):
        text.encode_prompt(None, "a cat")


def test_tiny_t5_file_round_trip(clip, tmp_path, text):
    path = tiny_t5.write_tiny_t5(tmp_path / tiny_t5.FILE_NAME, seed=0)
    loaded = tiny_t5.load_tiny_t5(path)
    assert torch.equal(text.encode_prompt(loaded, "a cat")[0][0], text.encode_prompt(clip, "a cat")[0][0])
    other = tiny_t5.tiny_t5_clip(seed=1)
    assert not torch.equal(text.encode_prompt(other, "a cat")[0][0], text.encode_prompt(clip, "a cat")[0][0])
    link = tiny_t5.install_test_nodes(tmp_path / "custom_nodes")
    assert (link / "__init__.py").is_file()


# ---------------------------------------------------------------------------------------------------------------
# conditions


@pytest.fixture(scope="module")
def conditioning(ltx_pack):
    return node_module("conditioning")


def frames(count: int, height: int = 48, width: int = 64) -> torch.Tensor:
    return torch.linspace(0, 1, count).view(count, 1, 1, 1).expand(count, height, width, 3).contiguous()


def test_image_condition_pins_one_image_and_chains(conditioning, ltx_pack):
    node = conditioning.LTX097ImageCondition
    (first,) = node.execute(image=frames(1), start_frame=0, strength=1.0).result
    assert len(first) == 1 and isinstance(first[0], ltx_pack.ltx_core.Condition)
    assert first[0].media.shape == (1, 48, 64, 3) and first[0].start_frame == 0 and first[0].crf == 29
    batch = frames(5)
    (both,) = node.execute(image=batch, start_frame=-1, strength=0.8, crf=35, batch_index=-1,
                           conditions=first).result
    assert len(both) == 2 and both[0] is first[0]
    assert torch.equal(both[1].media[0], batch[-1]) and both[1].strength == 0.8 and both[1].crf == 35
    resolved = conditioning.resolve_conditions(both[1:], 97)
    assert resolved[0].start_frame == 96 and resolved[0].crf == 35
    with pytest.raises(ValueError, match="batch_index 5 does not exist in a batch of 5"):
        node.execute(image=batch, batch_index=5)
    rgba = torch.rand(1, 8, 8, 4)
    (item,) = node.execute(image=rgba).result
    assert item[0].media.shape == (1, 8, 8, 3)


def test_video_condition_takes_video_or_images(conditioning, comfy_host):
    from fractions import Fraction

    from comfy_api.latest import InputImpl, Types

    node = conditioning.LTX097VideoCondition
    (items,) = node.execute(images=frames(12), start_frame=8, strength=0.9).result
    assert items[0].media.shape[0] == 9 and items[0].start_frame == 8  # cut to 8k+1
    video = InputImpl.VideoFromComponents(Types.VideoComponents(images=frames(17), frame_rate=Fraction(25)))
    (items,) = node.execute(video=video, start_frame=0, conditions=items).result
    assert len(items) == 2 and items[1].media.shape == (17, 48, 64, 3)


@pytest.mark.parametrize("kwargs,message", [
    ({"images": frames(5)}, "the clip has 5 frame.*needs at least 9 frames \\(8k\\+1"),
    ({"images": frames(9), "start_frame": 4}, "start frame 4 is not a multiple of 8"),
    ({}, "connect a video \\(Load Video\\) or an image batch"),
    ({"images": torch.rand(9, 8, 8)}, "expected an IMAGE batch"),
])
def test_video_condition_errors_are_sentences(conditioning, kwargs, message):
    with pytest.raises(ValueError, match=message):
        conditioning.LTX097VideoCondition.execute(**kwargs)


def test_conditions_are_checked_against_the_video(conditioning):
    image = conditioning.LTX097ImageCondition
    (items,) = image.execute(image=frames(1), start_frame=20).result
    with pytest.raises(ValueError, match="start frame 20 is outside the video, which has 17 frames"):
        conditioning.resolve_conditions(items, 17)
    (items,) = conditioning.LTX097VideoCondition.execute(images=frames(9), start_frame=16).result
    with pytest.raises(ValueError, match="only 1 frames of the video remain after frame 16; a video condition "
                                         "needs at least 9"):
        conditioning.resolve_conditions(items, 17)
    (items,) = image.execute(image=frames(1), crf=20).result
    (items,) = image.execute(image=frames(1), start_frame=8, crf=30, conditions=items).result
    assert [item.crf for item in conditioning.resolve_conditions(items, 17)] == [20, 30]  # each keeps its own


# ---------------------------------------------------------------------------------------------------------------
# guidance settings


@pytest.fixture(scope="module")
def guidance(ltx_pack):
    return node_module("guidance")


def test_guidance_settings_parse_schedules(guidance):
    node = guidance.LTX097GuidanceSettings
    (first,) = node.execute(apply_to="first pass", cfg_scale="1, 1, 6, 8, 6, 1, 1", stg_scale="[0,0,4,4,4,2,1]",
                            rescaling_scale="0.7", guidance_timesteps="1.0, 0.996, 0.9933, 0.985, 0.9767, 0.9008, "
                                                                      "0.618",
                            skip_block_list="[[], [11, 25, 35, 39], [22, 35, 39], [28], [28], [28], [28]]",
                            cfg_star_rescale="off", stg_mode="attention_skip", image_cond_noise_scale=-1.0,
                            decode_timestep=0.05, decode_noise_scale=0.0, adain_factor=-1.0,
                            save_memory=True).result
    assert first["first_pass"] == {
        "guidance_scale": [1.0, 1.0, 6.0, 8.0, 6.0, 1.0, 1.0], "stg_scale": [0.0, 0.0, 4.0, 4.0, 4.0, 2.0, 1.0],
        "rescaling_scale": 0.7, "guidance_timesteps": [1.0, 0.996, 0.9933, 0.985, 0.9767, 0.9008, 0.618],
        "skip_block_list": [[], [11, 25, 35, 39], [22, 35, 39], [28], [28], [28], [28]], "cfg_star_rescale": False}
    assert first["stg_mode"] == "attention_skip" and first["batched_guidance"] is False
    assert first["decode_timestep"] == 0.05 and first["decode_noise_scale"] == 0.0
    assert "image_cond_noise_scale" not in first and "adain_factor" not in first and "second_pass" not in first
    (both,) = node.execute(apply_to="second pass", skip_block_list="27", stg_scale="1", guidance=first).result
    assert both["second_pass"] == {"skip_block_list": [27], "stg_scale": 1.0}
    assert both["first_pass"] == first["first_pass"] and "second_pass" not in first  # input left unchanged
    (empty,) = node.execute().result
    assert empty == {"first_pass": {}}
    (everything,) = node.execute(apply_to="both passes", cfg_scale="3").result
    assert everything["first_pass"] == everything["second_pass"] == {"guidance_scale": 3.0}


@pytest.mark.parametrize("kwargs,message", [
    ({"cfg_scale": "high"}, "cfg_scale: 'high' is not a number or a comma-separated list of numbers"),
    ({"stg_scale": "1, -2"}, "stg_scale: every value must be a finite number of 0 or more"),
    ({"guidance_timesteps": "0.5, 0.9"}, "guidance_timesteps: the timesteps must decrease"),
    ({"guidance_timesteps": "1.5"}, "every timestep must lie in \\(0, 1\\]"),
    ({"skip_block_list": "[[1], 2]"}, "skip_block_list: '\\[\\[1\\], 2\\]' is neither a list of block numbers"),
    ({"skip_block_list": "block 28"}, "skip_block_list: 'block 28' is not a list of block numbers"),
    ({"cfg_scale": "1, 2, 3", "guidance_timesteps": "1.0, 0.9"},
     "guidance settings: recipe: cfg_scale has 3 values but guidance_timesteps has 2"),
])
def test_bad_guidance_text_is_a_sentence(guidance, kwargs, message):
    with pytest.raises(ValueError, match=message):
        guidance.LTX097GuidanceSettings.execute(**kwargs)
    # the same message is the HTTP 400 the server answers before running anything
    result = guidance.LTX097GuidanceSettings.validate_inputs(**{k: v for k, v in kwargs.items()})
    assert isinstance(result, str) and re.search(message, result)
