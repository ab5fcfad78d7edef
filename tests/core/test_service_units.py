"""The API's other plain-Python parts without a server: the queue seam, the prompt graph, request records and
their restart recovery, status / result / webhook JSON, keys, the config file, outcomes, uploads, status events."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import json
import time

import pytest

from support.plain_pack import REPO_ROOT, pack_module
from support.service_modules import (
    REQUEST_ID,
    access,
    graph,
    jobs,
    local_queue,
    outcome,
    retention,
    schema,
    service_config,
    store,
    webhook,
)

NODE_INPUTS = {"model", "vae", "clip", "prompt", "negative_prompt", "resolution", "seed"}


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
    auto = graph.build_prompt(generation, service_config.ServiceConfig(recipe="auto (from the checkpoint)"),
                              REQUEST_ID, node_inputs=NODE_INPUTS, media_files=["in.png"])
    assert auto[graph.OUTPUT_NODE]["inputs"]["recipe"] == "auto (from the checkpoint)"
    assert auto[graph.OUTPUT_NODE]["inputs"]["upsampler"] == ["upsampler", 0]  # in case auto picks multi-scale


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


class OutputFolder:
    """What the single server's retention asks of ComfyUI: where its mp4s are."""

    def __init__(self, folder):
        self.folder = folder

    def output_dir(self):
        return self.folder


def test_the_single_server_forgets_finished_requests_past_the_retention_with_their_mp4s(tmp_path):
    """Results were kept forever (a busy server filled its disk): a finished request older than
    result_retention_hours goes at start-up with its record and its mp4; a newer one and an unfinished one stay."""
    records, output = store.JobStore(tmp_path / "requests"), tmp_path / "output"
    old, recent, waiting = (f"{REQUEST_ID[:-1]}{digit}" for digit in "123")
    for request_id, age_hours in ((old, 3), (recent, 1)):
        (output / "ltxv097_api").mkdir(parents=True, exist_ok=True)
        (output / "ltxv097_api" / f"{request_id}.mp4").write_bytes(b"mp4")
        finished = time.time() - age_hours * 3600
        records.save(jobs.Job(request_id, seed=1, prompt="p", state=jobs.COMPLETED, created_at=finished - 5,
                              started_at=finished - 4, finished_at=finished,
                              video={"path": f"ltxv097_api/{request_id}.mp4", "file_name": "a.mp4", "file_size": 3}))
    records.save(jobs.Job(waiting, seed=1, prompt="p", created_at=time.time() - 5 * 3600))  # lost in a restart
    queue = local_queue.LocalQueue(OutputFolder(output), records, notify=None, remove_media=lambda request_id: None,
                                   retention_seconds=retention.retention_seconds(2))  # hours
    assert asyncio.run(queue.get(old)) is None and not records.path(old).exists()
    assert not (output / "ltxv097_api" / f"{old}.mp4").exists() and (output / "ltxv097_api").is_dir()
    assert asyncio.run(queue.get(recent)).state == jobs.COMPLETED
    assert (output / "ltxv097_api" / f"{recent}.mp4").is_file()
    assert asyncio.run(queue.get(waiting)).error_type == store.LOST_TYPE  # it ended at this start: kept
    forever = local_queue.LocalQueue(OutputFolder(output), records, notify=None, remove_media=lambda request_id: None,
                                     retention_seconds=None)
    assert asyncio.run(forever.get(recent)) is not None


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
    assert written["result_retention_hours"] == 168  # a week unless set (service/retention.py says why)
    (tmp_path / service_config.FILE_NAME).write_text(json.dumps({**written, "result_retention_hours": None}))
    assert service_config.load_config(tmp_path).result_retention_hours is None  # keep every result
    for bad, words in (({"recipe": "fast"}, "recipe 'fast'"), ({"upsampler": None}, "needs an upsampler"),
                       ({"checkpont": "x"}, "unknown keys checkpont"),
                       ({"result_retention_hours": 0}, "result_retention_hours must be a number of hours above 0"),
                       ({"result_retention_hours": "7d"}, "result_retention_hours must be")):
        (tmp_path / service_config.FILE_NAME).write_text(json.dumps(bad))
        with pytest.raises(service_config.ConfigError, match=words):
            service_config.load_config(tmp_path)


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
