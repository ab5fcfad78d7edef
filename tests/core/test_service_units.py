"""The API's plain-Python parts without a server: schema defaults and 422s, the prompt graph, request records and
their restart recovery, status / result / webhook JSON, keys, the config file and media sniffing."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import io
import json
import struct
import threading
import zlib

import pytest
from PIL import Image

from support.plain_pack import REPO_ROOT, pack_module

access, service_config, downloads, graph, jobs, media, outcome, schema, store, webhook = (
    pack_module(f"service.{name}") for name in ("access", "config", "downloads", "graph", "jobs", "media", "outcome",
                                                "schema", "store", "webhook"))
service_limits = pack_module("media.limits")
check_media = pack_module("media").check
REQUEST_ID = "0b7e2a4c-3f1d-4c55-9a0e-5d6f7a8b9c0d"
NODE_INPUTS = {"model", "vae", "clip", "prompt", "negative_prompt", "resolution", "seed"}


def test_defaults_are_the_services_and_a_missing_seed_is_drawn():
    parsed = schema.parse_input({"prompt": "a fox"}, draw_seed=lambda: 4242)
    assert parsed == schema.GenerationInput(
        prompt="a fox", negative_prompt=schema.DEFAULT_NEGATIVE_PROMPT, loras=(), resolution="720p",
        aspect_ratio="16:9", number_of_frames=89, number_of_steps=30, frame_rate=25, seed=4242,
        expand_prompt=False, reverse_video=False, enable_safety_checker=True, conditions=())
    drawn = {schema.parse_input({"prompt": "a fox", "seed": None}).seed for _ in range(20)}
    assert len(drawn) > 1 and all(0 <= seed < schema.DRAWN_SEED_LIMIT for seed in drawn)
    assert schema.parse_input({"prompt": "a fox", "seed": 0}).seed == 0


def test_the_single_server_queue_is_a_job_queue():
    """The handlers depend on `JobQueue` alone: the queue of one server has each of its methods, async and with the
    same signature, so another queue (e.g. a shared one in a database) can take its place."""
    seam, local = pack_module("service.queue").JobQueue, pack_module("service.local_queue").LocalQueue
    fleet = pack_module("service.pgqueue.fleet").FleetQueue  # the fleet's (its driver is imported only to connect)
    methods = {name: method for name, method in vars(seam).items()
               if inspect.isfunction(method) and not name.startswith("_")}
    assert set(methods) == {"enqueue", "get", "status", "cancel", "finished"}
    for queue in (local, fleet):
        for name, method in methods.items():
            assert inspect.iscoroutinefunction(getattr(queue, name)), (queue, name)
            assert inspect.signature(getattr(queue, name)) == inspect.signature(method), (queue, name)


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


def test_graph_is_the_one_node_workflow_from_the_config():
    generation = schema.parse_input({"prompt": "p", "seed": 7, "loras": [{"path": "a.safetensors"}],
                                     "image_url": "https://x/y.png", "start_frame_number": 3})
    config = service_config.ServiceConfig(guidance={"skip_block_list": "1"})
    prompt = graph.build_prompt(generation, config, REQUEST_ID, node_inputs=NODE_INPUTS,
                                media_files=["in.png"])
    node = prompt[graph.OUTPUT_NODE]
    assert node["class_type"] == "LTX097TextToVideo" and node["inputs"]["seed"] == 7
    assert node["inputs"]["filename_prefix"] == f"ltxv097_api/{REQUEST_ID}"
    assert node["inputs"]["recipe"] == "0.9.7 dev multi-scale" and node["inputs"]["upsampler"] == ["upsampler", 0]
    assert prompt["model"]["inputs"]["ckpt_name"] == "ltxv-13b-0.9.7-dev.safetensors"
    assert prompt["text_encoder"] == {"class_type": "CLIPLoader", "inputs": {
        "clip_name": "t5xxl_fp16.safetensors", "type": "ltxv", "device": "default"}}
    assert json.loads(prompt["loras"]["inputs"]["loras"]) == [{"path": "a.safetensors", "scale": 1.0}]
    assert prompt["guidance"]["inputs"] == {"skip_block_list": "1"}
    assert prompt["load_image_0"]["inputs"] == {"image": "in.png"}
    assert prompt["image_condition_0"]["inputs"]["start_frame"] == 3
    assert node["inputs"]["conditions"] == ["image_condition_0", 0]
    assert "expand_prompt" not in node["inputs"] and "enable_safety_checker" not in node["inputs"]
    single = graph.build_prompt(generation, service_config.ServiceConfig(recipe="0.9.7 dev single-scale"),
                                REQUEST_ID, node_inputs=NODE_INPUTS, media_files=["in.png"])
    assert "upsampler" not in single and "upsampler" not in single[graph.OUTPUT_NODE]["inputs"]


def test_expand_prompt_and_safety_checker_map_onto_the_node_only_when_it_has_them():
    asked = schema.parse_input({"prompt": "p", "expand_prompt": True, "enable_safety_checker": False})
    with pytest.raises(graph.UnavailableFeature) as caught:
        graph.feature_inputs(asked, NODE_INPUTS)
    assert caught.value.detail[0]["loc"] == ["body", "expand_prompt"]
    assert graph.feature_inputs(asked, NODE_INPUTS | {"expand_prompt", "enable_safety_checker"}) == {
        "expand_prompt": True, "enable_safety_checker": False}
    assert graph.feature_inputs(schema.parse_input({"prompt": "p"}), NODE_INPUTS) == {}
    everything = NODE_INPUTS | {"expand_prompt", "enable_safety_checker", graph.LITERAL_PROMPT_INPUT}
    with pytest.raises(graph.UnavailableFeature) as caught:
        graph.feature_inputs(schema.parse_input({"prompt": "p"}), everything,
                             {"enable_safety_checker": "safety_checker/nsfw_image_detection"})
    [entry] = caught.value.detail
    assert entry["loc"] == ["body", "enable_safety_checker"] and entry["type"] == "model_missing"
    for words in ("models/safety_checker/nsfw_image_detection", "enable_safety_checker: false",
                  '"default_enable_safety_checker": false'):
        assert words in entry["msg"]
    assert graph.feature_inputs(asked, everything, {"enable_safety_checker": "safety_checker/x"}) == {
        "expand_prompt": True, "enable_safety_checker": False, graph.LITERAL_PROMPT_INPUT: False}


def test_records_survive_a_restart_and_unfinished_ones_fail_clearly(tmp_path):
    book = jobs.JobBook(store.JobStore(tmp_path).save)
    ids = [f"{REQUEST_ID[:-1]}{digit}" for digit in "123"]
    for request_id in ids:
        book.add(jobs.Job(request_id, seed=1, prompt="p"))
    book.start(ids[0])
    book.log(ids[0], "pass 1: step 1/2")
    book.complete(ids[0], {"path": "ltxv097_api/a.mp4", "file_name": "a.mp4", "file_size": 10}, "a fox")
    book.start(ids[1])
    reloaded = {job.request_id: job for job in store.JobStore(tmp_path).load_all()}
    assert reloaded[ids[0]].state == jobs.COMPLETED and reloaded[ids[0]].video["file_size"] == 10
    assert reloaded[ids[0]].logs[0]["message"] == "pass 1: step 1/2"
    for lost in ids[1:]:
        assert (reloaded[lost].state, reloaded[lost].error_type) == (jobs.FAILED, store.LOST_TYPE)
    assert store.JobStore(tmp_path).load_all()[1].error == store.LOST_MESSAGE  # saved as failed
    with pytest.raises(ValueError):
        store.JobStore(tmp_path).path("../../etc/passwd")


def test_a_record_is_replaced_whole_never_rewritten_in_place(tmp_path):
    """A reader (or a crash) in the middle of a save sees the old record or the new one, never half of one: the
    new record is written beside it and renamed over it (a new file), and no temporary file stays."""
    records = store.JobStore(tmp_path)
    job = jobs.Job(REQUEST_ID, seed=1, prompt="p")
    records.save(job)
    before = records.path(REQUEST_ID).stat().st_ino
    held = open(records.path(REQUEST_ID))  # a reader that opened the old record keeps reading all of it
    job.prompt = "another prompt, longer than the first one"
    records.save(job)
    with held:
        assert json.loads(held.read())["prompt"] == "p"
    assert records.path(REQUEST_ID).stat().st_ino != before
    assert json.loads(records.path(REQUEST_ID).read_text())["prompt"] == job.prompt
    assert [p.name for p in tmp_path.iterdir()] == [f"{REQUEST_ID}.json"]


def test_status_result_and_webhook_json_shapes():
    urls = jobs.Urls("https://h:1/queue/fal-ai/ltx-video-lora")
    job = jobs.Job(REQUEST_ID, seed=5, prompt="p", logs=[{"message": "m"}])
    queued = jobs.status_json(job, urls, queue_position=3, with_logs=False)
    assert queued["status"] == "IN_QUEUE" and queued["queue_position"] == 3 and queued["logs"] is None
    assert queued["status_url"] == f"https://h:1/queue/fal-ai/ltx-video-lora/requests/{REQUEST_ID}/status"
    job.state, job.error, job.error_type = jobs.CANCELLED, "gone", "request_cancelled"
    done = jobs.status_json(job, urls, queue_position=None, with_logs=True)
    assert done["status"] == "COMPLETED" and done["error_type"] == "request_cancelled" and done["logs"]
    assert webhook.webhook_body(job, None)["status"] == "ERROR"
    job.state, job.video = jobs.COMPLETED, {"file_name": "a.mp4", "file_size": 9, "path": "x/a.mp4"}
    output = jobs.result_json(job, "https://h:1/f/a.mp4")
    assert output == {"video": {"url": "https://h:1/f/a.mp4", "content_type": "video/mp4", "file_name": "a.mp4",
                                "file_size": 9}, "seed": 5, "prompt": "p"}
    assert webhook.webhook_body(job, output) == {"request_id": REQUEST_ID, "gateway_request_id": REQUEST_ID,
                                                 "status": "OK", "payload": output}


def test_keys_and_the_public_address_warning():
    assert access.key_accepted(None, [])
    assert access.key_accepted("Key abc", ["abc"]) and not access.key_accepted("Key abd", ["abc"])
    assert not access.key_accepted("Bearer abc", ["abc"]) and not access.key_accepted(None, ["abc"])
    assert access.public_without_key(["127.0.0.1"], []) is None
    assert access.public_without_key(["0.0.0.0"], ["k"]) is None
    assert "0.0.0.0" in access.public_without_key(["127.0.0.1", "0.0.0.0"], [])


def test_config_file_defaults_and_errors(tmp_path):
    assert service_config.load_config(tmp_path) == service_config.ServiceConfig()
    written = json.loads((tmp_path / service_config.FILE_NAME).read_text())
    assert written["checkpoint"] == "ltxv-13b-0.9.7-dev.safetensors" and written["api_keys"] == []
    (tmp_path / service_config.FILE_NAME).write_text(json.dumps({**written, "api_keys": ["k"]}))
    assert service_config.load_config(tmp_path).api_keys == ("k",)
    for bad, words in (({"recipe": "fast"}, "recipe 'fast'"), ({"upsampler": None}, "needs an upsampler"),
                       ({"checkpont": "x"}, "unknown keys checkpont")):
        (tmp_path / service_config.FILE_NAME).write_text(json.dumps(bad))
        with pytest.raises(service_config.ConfigError, match=words):
            service_config.load_config(tmp_path)


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


def test_failed_prompts_become_the_services_errors():
    def entry(name, data):
        return {"status": {"status_str": "error", "messages": [["execution_start", {}], [name, data]]}}

    assert outcome.failure(entry("execution_interrupted", {})) == (
        "the request was cancelled: its generation was interrupted in ComfyUI (its UI or /interrupt)",
        "request_cancelled", True)
    assert outcome.failure(entry("execution_error", {"node_type": "LTX097TextToVideo",
                                                     "exception_message": "out of memory"})) == (
        "LTX097TextToVideo: out of memory", "execution_error", False)
    flagged = entry("execution_error", {"exception_message": "The content was flagged by a content checker "
                                                              "(content_policy_violation): frame 0 (score 0.97)"})
    assert outcome.failure(flagged) == (outcome.FLAGGED, "content_policy_violation", False)
    assert outcome.error_answer("failed", outcome.FLAGGED, "content_policy_violation") == (422, {"detail": [
        {"loc": ["body"], "msg": outcome.FLAGGED, "type": "content_policy_violation"}]})


def test_a_lora_that_fails_while_running_is_a_422_naming_it_and_no_server_path_shows():
    lora = {"status": {"messages": [["execution_error", {
        "node_type": "LTX097TextToVideo", "exception_message":
            "LoRA 2 of 2: LoRA file '/srv/comfy/models/loras/ltx097_downloads/a.safetensors' is cut short"}]]}}
    message, kind, _ = outcome.failure(lora)
    assert (message, kind) == ("LoRA 2 of 2: LoRA file 'models/loras/ltx097_downloads/a.safetensors' is cut short",
                               outcome.LORA_ERROR)
    status, body = outcome.error_answer("failed", message, kind)
    assert status == 422 and body["detail"][0]["loc"] == ["body", "loras", 1, "path"]
    crash = {"status": {"messages": [["execution_error", {
        "node_type": "X", "exception_message": "open failed: /home/me/secret/thing.bin"}]]}}
    assert outcome.failure(crash)[0] == "X: open failed: thing.bin"
    assert outcome.hide_paths("C:\\ComfyUI\\output\\a.mp4 at 16:9, 1/2") == "output/a.mp4 at 16:9, 1/2"
    assert outcome.error_answer("cancelled", "stopped", "request_cancelled")[0] == 499  # as fal answers one
    assert outcome.error_answer("failed", "too late", "request_timeout")[0] == 504


def test_results_of_failed_cancelled_and_flagged_requests_answer_as_the_service_does():
    """A cancelled request answers 499 (fal's `RequestCancelledException`), flagged content 422
    `content_policy_violation`, any other failure 500 with its error type."""
    routes = pack_module("service.routes")
    handlers = routes.ApiRoutes(None, None, service_config.ServiceConfig(), None)

    def answer(state, error, error_type):
        job = jobs.Job(REQUEST_ID, seed=1, prompt="p", state=state, error=error, error_type=error_type)
        response = handlers.outcome(None, job)
        return response.status, json.loads(response.body)

    assert answer(jobs.CANCELLED, "the request was cancelled", "request_cancelled") == (
        499, {"detail": "the request was cancelled", "error_type": "request_cancelled"})
    assert answer(jobs.FAILED, outcome.FLAGGED, "content_policy_violation") == (
        422, {"detail": [{"loc": ["body"], "msg": outcome.FLAGGED, "type": "content_policy_violation"}]})
    assert answer(jobs.FAILED, "LTX097TextToVideo: out of memory", "execution_error") == (
        500, {"detail": "LTX097TextToVideo: out of memory", "error_type": "execution_error"})


def test_the_result_prompt_is_the_prompt_the_node_used():
    """With expand_prompt on, the one node's UI output carries the expanded prompt; the result reports it."""
    done = {"outputs": {graph.OUTPUT_NODE: {"images": [], "prompt": ["A red fox trots through deep snow, ..."]}}}
    assert outcome.prompt_used(done) == "A red fox trots through deep snow, ..."
    assert outcome.prompt_used({"outputs": {graph.OUTPUT_NODE: {"images": []}}}) is None


def test_run_log_names_every_phase_of_a_multi_scale_run():
    spec = importlib.util.spec_from_file_location("ltxv097_run_log", REPO_ROOT / "nodes" / "run_log.py")
    run_log = importlib.util.module_from_spec(spec)  # plain Python, loaded without the nodes package
    spec.loader.exec_module(run_log)
    lines, loaded = [], []
    run_log.add_listener(lines.append)
    run_log.add_listener(lambda line: 1 / 0)  # a failing listener is logged, never raised into the run
    passes = run_log.PassLog(loaded.append)
    for name, steps in (("vae", 0), ("transformer", 2), ("upsampler", 0), ("transformer", 1)):
        passes.model(name)
        for step in range(steps):
            passes.step(step, steps)
    assert lines == ["encode: conditioning media (VAE)", "pass 1: denoising", "pass 1: step 1/2",
                     "pass 1: step 2/2", "upsample: 2× latent upsampler", "pass 2: denoising", "pass 2: step 1/1"]
    assert loaded == ["vae", "transformer", "upsampler", "transformer"]


def test_uploads_are_kept_for_their_lifetime_and_read_back_by_url(tmp_path):
    uploads = pack_module("service.uploads")

    store = uploads.UploadStore(tmp_path, service_config.ServiceConfig(upload_lifetime_seconds=3600))
    upload, token = store.create("image/png", "../My Photo (1).png", lifetime=120, multipart=False)
    assert upload.file_name == "My_Photo_1_.png" and uploads.UPLOAD_ID.match(upload.upload_id)
    assert 60 < upload.expires_at - __import__("time").time() <= 120  # the client asked for less than the setting
    with pytest.raises(uploads.UploadError):
        store.authorized(upload.upload_id, "wrong")
    incoming = tmp_path / "in.bin"
    incoming.write_bytes(b"<html>")
    with pytest.raises(uploads.UploadError) as refused:
        store.finish(store.authorized(upload.upload_id, token), incoming)
    assert refused.value.status == 415 and not incoming.exists()
    incoming.write_bytes(b"\x89PNG\r\n\x1a\n....")
    store.finish(store.authorized(upload.upload_id, token), incoming)
    url = f"https://127.0.0.1:8188{uploads.UPLOADS_PREFIX}/{upload.upload_id}/{upload.file_name}"
    assert store.local(url, "https://127.0.0.1:8188") == (b"\x89PNG\r\n\x1a\n....", "image/png")
    assert store.local(url, "https://other:1") is None and store.local("https://x/y.png", "https://x") is None
    with pytest.raises(uploads.UploadMissing):
        store.local(url.replace(upload.upload_id, "0" * 32), "https://127.0.0.1:8188")
    record = tmp_path / f"{upload.upload_id}.json"
    record.write_text(record.read_text().replace(str(upload.expires_at), "1.0"))
    store.remove_expired()
    assert not list(tmp_path.glob(f"{upload.upload_id}.*"))
    assert uploads.requested_lifetime('{"expiration_duration_seconds": 3600}') == 3600.0
    assert uploads.requested_lifetime("not json") is None


def test_a_fleet_instance_reads_uploads_made_through_any_other(tmp_path):
    """In the fleet mode the uploads folder is shared: instance B accepts A's upload token and reads a file_url
    naming A's host; an unknown upload under another host is an ordinary URL (fetched), under its own a 'gone'."""
    uploads = pack_module("service.uploads")
    config = service_config.ServiceConfig()
    through_a = uploads.UploadStore(tmp_path, config, shared=True)
    on_b = uploads.UploadStore(tmp_path, config, shared=True)
    upload, token = through_a.create("image/png", "a.png", lifetime=None, multipart=False)
    incoming = tmp_path / "in.bin"
    incoming.write_bytes(b"\x89PNG\r\n\x1a\n....")
    on_b.finish(on_b.authorized(upload.upload_id, token), incoming)
    url = f"https://a:8188{uploads.UPLOADS_PREFIX}/{upload.upload_id}/{upload.file_name}"
    assert on_b.local(url, "https://b:8189") == (b"\x89PNG\r\n\x1a\n....", "image/png")
    assert uploads.UploadStore(tmp_path, config).local(url, "https://b:8189") is None  # not shared: a URL
    unknown = url.replace(upload.upload_id, "0" * 32)
    assert on_b.local(unknown, "https://b:8189") is None
    with pytest.raises(uploads.UploadMissing):
        on_b.local(unknown, "https://a:8188")


def test_status_events_carry_new_log_lines_only():
    events = pack_module("service.events")

    stream = events.StatusEvents(with_logs=True)
    line = {"message": "a"}
    first = stream.next({"status": "IN_QUEUE", "queue_position": 1, "logs": []})
    assert first["status"] == "IN_QUEUE" and first["logs"] == []
    assert stream.next({"status": "IN_QUEUE", "queue_position": 1, "logs": []}) is None
    assert stream.next({"status": "IN_PROGRESS", "logs": [line]})["logs"] == [line]
    assert stream.next({"status": "IN_PROGRESS", "logs": [line, {"message": "b"}]})["logs"] == [{"message": "b"}]
    assert stream.next({"status": "COMPLETED", "logs": [line, {"message": "b"}]})["logs"] == []
    assert events.event({"a": 1}) == b'data: {"a":1}\n\n'


def test_aiohttp_errors_become_json_with_detail():
    from aiohttp import web

    errors = pack_module("service.errors")

    answer = errors.json_error(web.HTTPMethodNotAllowed("GET", ["POST"]))
    assert answer.status == 405 and json.loads(answer.text)["detail"] and answer.headers["Allow"] == "POST"
    assert json.loads(errors.json_error(web.HTTPNotFound()).text) == {"detail": "Not Found"}
    kept = errors.json_error(web.HTTPNotFound(text='{"detail": "request x not found"}',
                                              content_type="application/json"))
    assert json.loads(kept.text) == {"detail": "request x not found"}
    assert errors.api_path("/queue/fal-ai/ltx-video-lora/requests/x", ("/queue/fal-ai/ltx-video-lora",))
    assert not errors.api_path("/queue", ("/queue/fal-ai/ltx-video-lora",))


def test_lora_urls_and_files_are_checked_before_queueing():
    lora_checks = pack_module("service.lora_checks")

    class Refused(ValueError):
        pass

    def check_reachable(url, what):
        if "127.0.0.2" in url or url.startswith("ftp"):
            raise Refused(f"{what}: {url} is not allowed")

    generation = schema.parse_input({"prompt": "p", "loras": [
        {"path": "https://ok.example/a.safetensors"}, {"path": "http://127.0.0.2/b.safetensors"},
        {"path": "here.safetensors"}, {"path": "gone.safetensors"}, {"path": "owner/repo"}]})
    found = lora_checks.lora_errors(generation, file_missing=lambda name: name == "gone.safetensors",
                                    check_reachable=check_reachable, fetch_error=Refused)
    assert [(e["loc"], e["type"]) for e in found] == [
        (["body", "loras", 1, "path"], "url_not_allowed"), (["body", "loras", 3, "path"], "value_error")]
    assert "loras.1.path" in found[0]["msg"]


def test_a_webhook_for_an_error_carries_its_results_error_body():
    for error_type, message in (("content_policy_violation", outcome.FLAGGED), ("request_cancelled", "stopped"),
                                (outcome.LORA_ERROR, "LoRA 1 of 1: answered 404")):
        job = jobs.Job(REQUEST_ID, 1, "p", state=jobs.FAILED, error=message, error_type=error_type,
                       webhook_url="https://hook")
        body = webhook.webhook_body(job, None)
        assert body["status"] == "ERROR" and body["payload"] == outcome.error_answer(job.state, message, error_type)[1]
    flagged = webhook.webhook_body(jobs.Job(REQUEST_ID, 1, "p", state=jobs.FAILED, error=outcome.FLAGGED,
                                            error_type="content_policy_violation"), None)
    assert flagged["payload"] == {"detail": [{"loc": ["body"], "msg": outcome.FLAGGED,
                                              "type": "content_policy_violation"}]}
