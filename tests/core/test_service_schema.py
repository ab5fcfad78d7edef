"""The API's request schema without a server: the service's defaults, every bad field named at once, ranges,
nulls and types, URL schemes, data-URI lengths, the family endpoints' fields."""

from __future__ import annotations

import pytest

from support.service_modules import (
    schema,
)


def test_defaults_are_the_services_and_a_missing_seed_is_drawn():
    parsed = schema.parse_input({"prompt": "a fox"}, draw_seed=lambda: 4242)
    assert parsed == schema.GenerationInput(
        prompt="a fox", negative_prompt=schema.DEFAULT_NEGATIVE_PROMPT, loras=(), resolution="720p",
        aspect_ratio="16:9", number_of_frames=89, number_of_steps=30, frame_rate=25, seed=4242,
        expand_prompt=False, reverse_video=False, enable_safety_checker=True, conditions=())
    drawn = {schema.parse_input({"prompt": "a fox", "seed": None}).seed for _ in range(20)}
    assert len(drawn) > 1 and all(0 <= seed < schema.DRAWN_SEED_LIMIT for seed in drawn)
    assert schema.parse_input({"prompt": "a fox", "seed": 0}).seed == 0


def test_every_bad_field_is_named_at_once():
    with pytest.raises(schema.InputError) as caught:
        schema.parse_input({"prompt": 3, "resolution": "4k", "number_of_frames": 300, "loras": [{"path": ""}, 5],
                            "image_url": "C:/a.png", "frame_rate": True})
    locs = {tuple(entry["loc"]) for entry in caught.value.detail}
    assert locs == {("body", "prompt"), ("body", "resolution"), ("body", "number_of_frames"),
                    ("body", "loras", 0, "path"), ("body", "loras", 1), ("body", "image_url"),
                    ("body", "frame_rate")}
    frames = next(e for e in caught.value.detail if e["loc"] == ["body", "number_of_frames"])
    assert frames["msg"] == "300 is out of range; allowed 9 to 257"
    with pytest.raises(schema.InputError, match="local files are not read"):
        schema.parse_input({"prompt": "p", "loras": [{"path": "../../secret.safetensors"}]})
    with pytest.raises(schema.InputError, match="not both"):
        schema.parse_input({"prompt": "p", "image_url": "data:,x", "video_url": "data:,y"})
    with pytest.raises(schema.InputError, match="JSON object"):
        schema.parse_input(["prompt"])


def test_ranges_include_both_ends_and_stop_there():
    ends = {"number_of_frames": (9, 257), "number_of_steps": (1, 100), "frame_rate": (1, 60),
            "seed": (0, 2 ** 64 - 1), "start_frame_number": (0, 256)}
    for name, (low, high) in ends.items():
        for value in (low, high):
            assert getattr(schema.parse_input({"prompt": "p", "image_url": "https://x/y.png", name: value}),
                           name, value) == value
        for value in (low - 1, high + 1):
            with pytest.raises(schema.InputError) as refused:
                schema.parse_input({"prompt": "p", "image_url": "https://x/y.png", name: value})
            assert refused.value.detail == [{"loc": ["body", name], "msg": f"{value} is out of range; allowed {low} "
                                                                           f"to {high}", "type": "value_error"}]


def test_a_video_start_frame_off_the_grid_is_named_at_its_own_field():
    with pytest.raises(schema.InputError) as refused:
        schema.parse_input({"prompt": "p", "video_url": "https://a/b.mp4", "start_frame_number": 12})
    (entry,) = refused.value.detail
    assert entry["loc"] == ["body", "start_frame_number"] and entry["msg"].startswith("12 is not a multiple of 8")


def test_the_default_negative_prompt_is_the_services():
    """service-api.md's default, word for word."""
    assert schema.parse_input({"prompt": "p"}).negative_prompt == (
        "blurry, low quality, low resolution, inconsistent motion, jittery, distorted")


def test_url_schemes_are_read_in_any_case_as_for_loras():
    """`HTTP://` is an http URL for a condition as for a LoRA (whose source check is `fetch.check_url`, which reads
    schemes in any case); other schemes are refused."""
    import fetch

    for url in ("HTTP://example.com/a.png", "Https://example.com/a.png", "DATA:image/png;base64,AAAA"):
        (condition,) = schema.parse_input({"prompt": "p", "image_url": url}).conditions
        assert condition.url == url
        if not url.startswith("DATA"):
            fetch.check_url(url.replace(".png", ".safetensors"), "the LoRA source")
    for url in ("FILE:///etc/passwd", "Ftp://example.com/a.png", "http//example.com/a.png"):
        with pytest.raises(schema.InputError, match="is not an http.s. URL or a base64 data URI"):
            schema.parse_input({"prompt": "p", "image_url": url})


def test_nulls_and_wrong_types_are_422s_naming_the_field():
    for name in ("number_of_frames", "number_of_steps", "frame_rate", "resolution", "negative_prompt", "loras",
                 "expand_prompt", "enable_safety_checker", "image_url", "strength"):
        body = {"prompt": "p", "image_url": "https://x/y.png", name: None}
        with pytest.raises(schema.InputError) as caught:
            schema.parse_input(body)
        assert [(e["loc"], e["type"]) for e in caught.value.detail] == [(["body", name], "null_type")], name
    with pytest.raises(schema.InputError) as caught:
        schema.parse_input({"prompt": "p", "resolution": ["720p"], "loras": [{"path": "a", "extra": 1}]})
    assert {tuple(e["loc"]) for e in caught.value.detail} == {("body", "resolution"), ("body", "loras", 0, "extra")}
    assert schema.parse_input({"prompt": "p", "seed": None}).seed >= 0  # seed alone is nullable (drawn)


def test_data_uris_may_be_as_long_as_the_media_limits_and_the_prompt_keeps_its_own():
    limits = schema.MediaLimits(max_image_bytes=90_000, max_video_bytes=300_000)
    uri = "data:image/jpeg;base64," + "A" * 119_996
    assert schema.parse_input({"prompt": "p", "image_url": uri}, limits=limits).conditions[0].url == uri
    with pytest.raises(schema.InputError, match="at most"):
        schema.parse_input({"prompt": "p", "image_url": uri + "A" * 400}, limits=limits)
    with pytest.raises(schema.InputError, match="string_too_long|at most"):
        schema.parse_input({"prompt": "p" * (schema.MAX_PROMPT_CHARS + 1)})


def test_the_family_endpoints_have_their_own_fields():
    i2v = schema.parse_input({"prompt": "p", "image_url": "https://x/a.png"}, endpoint=schema.IMAGE_TO_VIDEO)
    assert i2v.conditions == (schema.MediaCondition("image", "https://x/a.png", 0, 1.0),)
    with pytest.raises(schema.InputError) as caught:
        schema.parse_input({"prompt": "p", "video_url": "https://x/a.mp4"}, endpoint=schema.IMAGE_TO_VIDEO)
    assert {tuple(e["loc"]) for e in caught.value.detail} == {("body", "video_url"), ("body", "image_url")}
    multi = schema.parse_input({"prompt": "p", "images": [{"image_url": "https://x/a.png", "start_frame_number": 40,
                                                           "strength": 0.5}],
                                "videos": [{"video_url": "data:video/mp4;base64,AAAA", "start_frame_number": 8}]},
                               endpoint=schema.MULTICONDITIONING)
    assert [(c.kind, c.start_frame_number, c.strength, c.loc) for c in multi.conditions] == [
        ("image", 40, 0.5, ("images", 0, "image_url")), ("video", 8, 1.0, ("videos", 0, "video_url"))]
    with pytest.raises(schema.InputError) as caught:
        schema.parse_input({"prompt": "p", "images": [{"start_frame_number": 1}, "x"], "image_url": "https://x/a"},
                           endpoint=schema.MULTICONDITIONING)
    assert {tuple(e["loc"]) for e in caught.value.detail} == {
        ("body", "images", 0, "image_url"), ("body", "images", 1), ("body", "image_url")}
    assert schema.parse_input({"prompt": "p"}, defaults={"enable_safety_checker": False}).enable_safety_checker \
        is False


def test_conditions_and_loras_parse():
    parsed = schema.parse_input({"prompt": "p", "video_url": "https://a/b.mp4", "start_frame_number": 16,
                                 "strength": 0.5, "loras": [{"path": "org/repo", "weight_name": "w.safetensors",
                                                             "scale": 0.7}]})
    assert parsed.conditions == (schema.MediaCondition("video", "https://a/b.mp4", 16, 0.5),)
    assert parsed.loras == (schema.LoraWeight("org/repo", "w.safetensors", 0.7),)
    with pytest.raises(schema.InputError, match="multiple of 8"):
        schema.parse_input({"prompt": "p", "video_url": "https://a/b.mp4", "start_frame_number": 4})




@pytest.mark.parametrize("field,value,msg,kind", [
    ("number_of_frames", True, "True is not an integer", "int_type"),
    ("number_of_frames", 89.5, "89.5 is not an integer", "int_type"),
    ("strength", False, "False is not a number", "float_type"),
    ("strength", float("nan"), "nan is out of range; allowed 0.0 to 1.0", "value_error"),
    ("strength", float("inf"), "inf is out of range; allowed 0.0 to 1.0", "value_error"),
])
def test_a_bool_is_no_number_and_a_non_finite_number_is_out_of_range(field, value, msg, kind):
    """JSON `true` would pass for 1 and NaN passes no comparison (Python's `json` reads NaN and Infinity)."""
    with pytest.raises(schema.InputError) as refused:
        schema.parse_input({"prompt": "p", "image_url": "https://x/y.png", field: value})
    assert refused.value.detail == [{"loc": ["body", field], "msg": msg, "type": kind}]
