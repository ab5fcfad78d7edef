"""Check that the tests catch realistic one-line bugs (the mutation audits of issues 8 and 17); `make test` runs it.

Each mutant is one text replacement in one file. The repo's files are copied to temporary folders (the working
tree is never touched), the mutant applied in one of them, and only the tests named for it run there, in a child
forked from this process (torch and the other heavy libraries are imported once, before the first fork); a mutant
is caught when they fail. `--jobs` copies run at once (one per CPU by default). Before any test runs, every
mutant's text must be found exactly once in its file: a pattern the code has moved away from is an error naming the
mutant (exit 2), never a silent pass.

Usage: `.venv/bin/python scripts/check_mutants.py [name ...]` (all by default; `--patterns` checks the patterns
only, in a second). Exits 1 when a mutant survives, 2 when a pattern does not match exactly once or a
mutant's tests cannot run (not found, not collected, a set-up error).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINKED = (".venv", ".comfyui", ".api_clients", ".venv-tools", ".transformers")
"""Set-up folders (ignored by git) that the copy links to instead of copying."""
PARITY = "tests/core/test_pipeline_parity.py"
FETCH = "tests/core/test_fetch.py"
FETCH_POLICY = "tests/core/test_fetch_policy.py"
SAFETY = "tests/host/test_safety_checker.py"
LONG = "tests/core/test_long_video.py"
BAD_FILES = "tests/core/test_bad_model_files.py"
LORA_SOURCES = "tests/host/test_lora_sources.py"
SERVICE_UNITS = "tests/core/test_service_units.py"
SERVICE_QUEUE = "tests/server/test_service_queue.py"
SERVICE_INPUTS = "tests/server/test_service_inputs.py"
MEDIA = "tests/core/test_media_strict.py"
GUIDES = "tests/core/test_guides_parity.py"
REFINE = "tests/core/test_refine.py::test_the_distilled_second_pass_refines_the_given_latents"
AUTO = "tests/core/test_checkpoint_recipes.py"

logger = logging.getLogger("check_mutants")


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    original: str
    mutated: str
    tests: tuple[str, ...]


MUTANTS = (
    # issue 8
    Mutant("uncond-uses-positive", "ltx_core/sampling/denoise.py",
           'contexts = {"uncond": (prompts.negative_context, prompts.negative_mask)}',
           'contexts = {"uncond": (prompts.context, prompts.mask)}',
           (f"{PARITY}::test_single_scale_cfg_stg", f"{PARITY}::test_multi_scale_dev_recipe")),
    Mutant("t2v-ignores-negative-prompt", "nodes/text_to_video.py",
           "encode_prompts(clip, prompt, split_prompt), encode_prompt(clip, negative_prompt)",
           "encode_prompts(clip, prompt, split_prompt), encode_prompt(clip, DEFAULT_NEGATIVE_PROMPT)",
           ("tests/host/test_nodes_video.py::test_text_to_video_uses_its_negative_prompt",)),
    Mutant("stg-mode-ignored", "ltx_core/sampling/passes.py", 'skip_strategy=recipe["stg_mode"]',
           'skip_strategy="attention_values"', (f"{PARITY}::test_stg_strategies",)),
    Mutant("decode-timestep-fixed", "ltx_core/sampling/preparation.py",
           'decode_timestep = float(self.settings["decode_timestep"])', "decode_timestep = 0.05",
           (f"{PARITY}::test_decode_timestep_noise_and_tone_map",)),
    Mutant("adain-factor-ignored", "ltx_core/sampling/pipeline.py",
           'runner.upsample(upsampler, first, settings["adain_factor"])', "runner.upsample(upsampler, first, 1.0)",
           (f"{PARITY}::test_multi_scale_adain_factor",)),
    Mutant("tone-map-skipped", "ltx_core/decoding.py",
           "latents = tone_map(latents, video.tone_map_compression_ratio)", "latents = latents",
           (f"{PARITY}::test_decode_timestep_noise_and_tone_map",)),
    Mutant("keyframe-offset-dropped", "ltx_core/sampling/conditioning.py", "coords[:, 0] += start_frame",
           "coords[:, 0] += 0", (f"{PARITY}::test_keyframe_at_frame_16",)),
    Mutant("frame-rate-fixed", "ltx_core/models/positions.py", "positions[:, 0] * (1.0 / frame_rate)",
           "positions[:, 0] * (1.0 / 25.0)", (f"{PARITY}::test_padding_and_cropping",)),
    Mutant("cfg-star-ignored", "ltx_core/sampling/guidance.py", "        if cfg_star_rescale:", "        if False:",
           ("tests/core/test_pipeline_units.py::test_guidance_arithmetic_matches_the_reference_loop",)),
    Mutant("stg-rescale-ignored", "ltx_core/sampling/guidance.py", "        if step.rescale != 1.0:",
           "        if False:",
           ("tests/core/test_pipeline_units.py::test_guidance_arithmetic_matches_the_reference_loop",)),
    Mutant("api-null-means-default", "service/schema.py", "if src[name] is None and not nullable:",
           "if False:", ("tests/core/test_service_schema.py::test_nulls_and_wrong_types_are_422s_naming_the_field",)),
    Mutant("api-webhook-error-payload-differs", "service/webhook.py",
           'body["payload"] = error_answer(job.state, job.error, job.error_type)[1]',
           'body["payload"] = {"detail": job.error, "error_type": job.error_type}',
           ("tests/core/test_service_units.py::test_a_webhook_for_an_error_carries_its_results_error_body",)),
    Mutant("api-stream-repeats-logs", "service/events.py", "self.last, self.logs_sent = key, len(logs)",
           "self.last = key", ("tests/core/test_service_units.py::test_status_events_carry_new_log_lines_only",)),
    Mutant("api-lora-failure-is-500", "service/outcome.py", "LORA_FAILURE.match(message or \"\") if",
           "None if", ("tests/core/test_service_units.py::"
                       "test_a_lora_that_fails_while_running_is_a_422_naming_it_and_no_server_path_shows",)),
    Mutant("fleet-late-result-accepted", "service/pgqueue/queue.py",
           """"AND lease = %s AND state = 'running' RETURNING 1",""",
           """"AND (lease = %s OR true) AND state = 'running' RETURNING 1",""",
           ("tests/server/test_pg_queue.py::test_a_lost_lease_requeues_the_job_and_the_late_result_is_discarded",)),
    Mutant("fleet-low-priority-not-last", "service/pgqueue/queue.py", "ORDER BY priority, queued_at",
           "ORDER BY queued_at", ("tests/server/test_pg_queue.py::test_claims_follow_priority_then_age_and_positions_"
                                  "count_the_whole_queue",)),
    Mutant("fleet-late-job-claimed", "service/pgqueue/queue.py", "AND NOT {LATE} ", "",
           ("tests/server/test_pg_queue.py::test_a_job_not_started_within_its_start_timeout_is_never_claimed_and_"
            "fails_once",)),
    # issue 17 in a fleet: what one instance keeps for itself (the gate's secret, sealed URLs) must reach the others
    Mutant("fleet-gate-secret-per-instance", "service/pgqueue/queue.py",
           "        return row[0]\n\n    async def submit", "        return new_value\n\n    async def submit",
           ("tests/server/test_pg_queue.py::test_instances_starting_together_share_one_gate_secret_so_each_serves_"
            "the_urls_another_signed",)),
    Mutant("fleet-sealed-urls-kept-after-the-job", "service/pgqueue/migrations.py", "NEW.sealed := '{}';", "NULL;",
           ("tests/server/test_pg_queue.py::test_sealed_lora_urls_go_with_the_job_to_its_worker_only_and_are_"
            "forgotten_when_it_ends",)),
    # the retention: finished jobs (and only they) go once past it, in the fleet and on one server
    Mutant("fleet-prune-by-age-whatever-the-state", "service/pgqueue/pruning.py",
           "WHERE state IN ('completed', 'failed', 'cancelled') \"\n                \"AND finished_at <",
           "WHERE \"\n                \"queued_at <",
           ("tests/server/test_pg_queue.py::test_finished_jobs_past_the_retention_go_with_their_files_and_"
            "unfinished_ones_stay",)),
    Mutant("fleet-prune-by-queue-time", "service/pgqueue/pruning.py", "AND finished_at < clock_timestamp()",
           "AND queued_at < clock_timestamp()",
           ("tests/server/test_pg_queue.py::test_finished_jobs_past_the_retention_go_with_their_files_and_"
            "unfinished_ones_stay",)),
    Mutant("fleet-prune-without-lock", "service/pgqueue/pruning.py", "            if not locked[0]:\n",
           "            if False:\n",
           ("tests/server/test_pg_queue.py::test_finished_jobs_past_the_retention_go_with_their_files_and_"
            "unfinished_ones_stay",)),
    Mutant("fleet-pruned-files-kept", "service/pgqueue/pruning.py",
           "await asyncio.to_thread(self.storage.remove_results, request_id, path)", "pass",
           ("tests/server/test_pg_queue.py::test_finished_jobs_past_the_retention_go_with_their_files_and_"
            "unfinished_ones_stay",)),
    Mutant("retention-ignored", "service/local_queue.py",
           "expired = self.book.finished_before(time.time() - self.retention_seconds)", "expired = []",
           ("tests/core/test_service_units.py::test_the_single_server_forgets_finished_requests_past_the_"
            "retention_with_their_mp4s",)),
    Mutant("retention-hours-as-seconds", "service/retention.py", "float(hours) * 3600.0", "float(hours)",
           ("tests/core/test_service_units.py::test_the_single_server_forgets_finished_requests_past_the_"
            "retention_with_their_mp4s",)),
    Mutant("fleet-uploads-not-shared", "service/uploads.py", "if not (here or self.shared) or", "if not here or",
           ("tests/core/test_service_units.py::test_a_fleet_instance_reads_uploads_made_through_any_other",)),
    Mutant("guide-offset-dropped", "ltx_core/sampling/guides.py", "pixel[:, 0] += start_frame", "pixel[:, 0] += 0",
           (f"{GUIDES}::test_guided_step_matches_the_official_transformer",)),
    Mutant("guide-causal-fix-everywhere", "ltx_core/sampling/guides.py", "causal_fix=causal_fix and start_frame == 0",
           "causal_fix=causal_fix", (f"{GUIDES}::test_guided_step_matches_the_official_transformer",)),
    Mutant("guide-noised", "ltx_core/sampling/denoise.py", "hard[:, hard.shape[1] - latents.num_guide:] = False",
           "pass", (f"{GUIDES}::test_guided_step_matches_the_official_transformer",)),
    Mutant("guide-left-in-latents", "ltx_core/sampling/conditioning.py",
           "return tokens[:, self.num_extra:tokens.shape[1] - self.num_guide]", "return tokens[:, self.num_extra:]",
           ("tests/core/test_guides_sampling.py::test_guide_moves_the_video_but_never_appears_in_it",)),
    Mutant("guide-strength-0-kept", "ltx_core/sampling/preparation.py", "if item.guide and item.strength == 0:",
           "if False:", ("tests/core/test_guides_sampling.py::test_strength_0_guide_is_no_guide_bit_for_bit",)),
    Mutant("tone-map-098-dropped", "ltx_core/sampling/recipes.py",
           '"0.9.8-distilled": {**_DISTILLED, "tone_map_compression_ratio": 0.6}', '"0.9.8-distilled": _DISTILLED',
           (f"{PARITY}::test_098_distilled_recipes",)),
    Mutant("auto-ignores-allowed-steps", "ltx_core/sampling/checkpoint_recipes.py",
           'metadata_kind = "distilled" if allowed else None', "metadata_kind = None",
           (f"{AUTO}::test_ambiguous_files_fall_back_and_say_why",)),
    Mutant("auto-distilled-file-gets-dev", "ltx_core/sampling/checkpoint_recipes.py",
           '(?P<kind>dev|distilled)', '(?P<kind>dev)', (f"{AUTO}::test_each_official_file_gets_its_recipe",)),
    Mutant("auto-trusts-a-renamed-file", "ltx_core/sampling/checkpoint_recipes.py",
           "        if size is not None and size != named_size:", "        if False:",
           (f"{AUTO}::test_ambiguous_files_fall_back_and_say_why",)),
    Mutant("released-lora-without-alpha-divided-by-rank", "ltx_core/lora/mapping.py",
           "        if self.alpha is None or not self.rank:\n            return 1.0\n",
           "        if self.alpha is None or not self.rank:\n            return 1.0 / max(self.rank, 1)\n",
           ("tests/core/test_lora_release_layouts.py::test_released_layouts_place_every_tensor",)),
    Mutant("refine-ignores-denoise", "ltx_core/sampling/refine.py", "    plan = capped(plan, float(denoise))\n",
           "    plan = plan\n", (REFINE,)),
    Mutant("refine-starts-from-noise", "ltx_core/sampling/refine.py",
           "init_latents=video.latents.to(prepared.device)", "init_latents=None", (REFINE,)),
    Mutant("sampler-refine-ignores-denoise", "nodes/sampler.py",
           "latent=latent, recipe=recipe, seed=seed, denoise=denoise",
           "latent=latent, recipe=recipe, seed=seed, denoise=1.0",
           ("tests/host/test_nodes_upsample.py::test_temporal_upsample_doubles_the_frame_rate_and_the_sampler_"
            "refines_it",)),
    # issue 17: the URL policy and the wire
    Mutant("nat64-not-embedded", "fetch/policy.py", "        if embedded is None and address in _NAT64:",
           "        if False:", (f"{FETCH_POLICY}::test_only_public_addresses_count_as_public",)),
    Mutant("user-without-password-passes", "fetch/policy.py",
           "if parts.username is not None or parts.password is not None:", "if parts.password is not None:",
           (f"{FETCH_POLICY}::test_check_url_refuses_before_anything_runs",)),
    Mutant("second-dns-lookup", "fetch/wire.py", "        sock = _connect_one(address, target.port, pace)",
           "        sock = _connect_one(type(address)(socket.gethostbyname(target.host)), "
           "target.port, pace)",
           (f"{FETCH_POLICY}::test_the_connection_goes_to_the_address_the_policy_checked",)),
    Mutant("rate-over-all-bytes", "fetch/pace.py", "rate = (done - self.window_done) / span", "rate = done / span",
           (f"{FETCH}::test_the_minimum_rate_counts_each_windows_own_bytes",)),
    # issue 17: windows, acceleration, checks
    Mutant("adain-window-2-only", "ltx_core/windows/long_video.py", "        elif self.adain_factor:",
           "        elif self.adain_factor and window.index == 1:",
           (f"{LONG}::test_every_later_window_takes_the_first_windows_statistics",)),
    Mutant("cross-fade-reversed", "ltx_core/windows/long_video.py",
           "torch.lerp(previous, latents[:, :, :overlap].float(), weights[None, None, :, None, None])",
           "torch.lerp(latents[:, :, :overlap].float(), previous, weights[None, None, :, None, None])",
           (f"{LONG}::test_the_cross_fade_goes_from_the_previous_window_to_the_new_one",)),
    Mutant("compile-twice", "ltx_core/acceleration/compiled.py",
           'if getattr(transformer, "blocks_compiled", False):', "if False:",
           ("tests/core/test_compiled_blocks.py::test_compiling_twice_leaves_the_compiled_blocks_as_they_are",)),
    Mutant("inner-dim-unbounded", "ltx_core/loading/config_checks.py", "    if inner > MAX_DIM:",
           "    if inner > MAX_DIM * MAX_DIM:", (f"{BAD_FILES}::test_forged_dims_are_refused_naming_the_field",)),
    Mutant("trailing-bytes-pass", "ltx_core/loading/safetensors_check.py", "    if expected < size:", "    if False:",
           ("tests/core/test_safetensors_check.py::test_trailing_bytes_after_the_last_tensor_are_refused",)),
    Mutant("duplicate-keys-kept", "ltx_core/loading/safetensors_check.py",
           "json.loads(raw, object_pairs_hook=_refuse_duplicates)", "json.loads(raw)",
           ("tests/core/test_safetensors_check.py::test_a_key_written_twice_in_the_header_is_named_as_a_duplicate",)),
    Mutant("finite-checks-nan-only", "ltx_core/non_finite.py", "if not bool(torch.isfinite(tensor).all()):",
           "if bool(torch.isnan(tensor).any()):",
           (f"{BAD_FILES}::test_check_finite_stops_on_nan_and_on_either_infinity",)),
    # issue 17: mp4, assistants, the one node
    Mutant("part-file-kept-on-failure", "mp4/writer.py", "            if os.path.exists(self._partial):",
           "            if kind is None and os.path.exists(self._partial):",
           ("tests/core/test_mp4.py::test_a_failed_write_leaves_nothing_behind",)),
    Mutant("flag-above-threshold-only", "assistants/safety.py",
           "FrameVerdict(frame, float(score), float(score) >= threshold)",
           "FrameVerdict(frame, float(score), float(score) > threshold)",
           (f"{SAFETY}::test_a_score_at_the_threshold_is_flagged",)),
    Mutant("stream-skips-conditions", "nodes/text_to_video.py", "                check_conditions(checker, conditions)",
           "                pass", (f"{SAFETY}::test_streamed_video_checks_the_conditioning_media_first",)),
    Mutant("expand-without-conditions", "nodes/text_to_video.py",
           "run_enhancer(prompt_enhancer or default_enhancer(), prompt, conditions, seed=seed)",
           "run_enhancer(prompt_enhancer or default_enhancer(), prompt, None, seed=seed)",
           (f"{SAFETY}::test_one_node_plans_the_expansion_from_its_conditions",)),
    # issue 17: the API (schema, store, handlers, queue)
    Mutant("ranges-exclude-upper-bound", "service/schema.py",
           '"int_type")\n        low, high = bounds\n        if not is_whole(value, low, high):',
           '"int_type")\n        low, high = bounds\n        if not is_whole(value, low, high - 1):',
           ("tests/core/test_service_schema.py::test_ranges_include_both_ends_and_stop_there",)),
    Mutant("video-start-error-at-video-url", "service/schema.py",
           'start = self.fail((*loc, "start_frame_number"), f"{start} is not a multiple of 8',
           'start = self.fail((*loc, "video_url"), f"{start} is not a multiple of 8',
           ("tests/core/test_service_schema.py::test_a_video_start_frame_off_the_grid_is_named_at_its_own_field",)),
    Mutant("negative-prompt-differs", "hosted/defaults.py", 'DEFAULT_NEGATIVE_PROMPT = "blurry, low quality, ',
           'DEFAULT_NEGATIVE_PROMPT = "blurry, worst quality, low quality, ',
           ("tests/core/test_service_schema.py::test_the_default_negative_prompt_is_the_services",)),
    Mutant("record-written-in-place", "service/store.py", 'temporary = path.with_suffix(".tmp")',
           "temporary = path",
           (f"{SERVICE_UNITS}::test_a_record_is_replaced_whole_never_rewritten_in_place",)),
    Mutant("flagged-answered-500", "service/outcome.py", '    if error_type == "content_policy_violation":',
           "    if False:", (f"{SERVICE_UNITS}::test_results_of_failed_cancelled_and_flagged_requests_answer_as_the_"
                         "service_does",)),
    Mutant("cancelled-answered-400", "service/outcome.py", "CANCELLED_STATUS = 499", "CANCELLED_STATUS = 400",
           (f"{SERVICE_UNITS}::test_results_of_failed_cancelled_and_flagged_requests_answer_as_the_service_does",)),
    Mutant("queue-position-from-1", "service/routes.py",
           '"queue_position": (standing.queue_position if standing else None) or 0}',
           '"queue_position": ((standing.queue_position if standing else None) or 0) + 1}',
           (f"{SERVICE_QUEUE}::test_an_interrupt_from_comfyuis_ui_cancels_the_api_request",)),
    Mutant("unfinished-result-answered", "service/routes.py",
           "        if not job.finished:\n            return json_response({\"detail\": \"the request is still",
           "        if False:\n            return json_response({\"detail\": \"the request is still",
           (f"{SERVICE_QUEUE}::test_an_interrupt_from_comfyuis_ui_cancels_the_api_request",)),
    Mutant("ui-interrupt-is-a-failure", "service/outcome.py", '"request_cancelled", True)', '"execution_error", True)',
           (f"{SERVICE_QUEUE}::test_an_interrupt_from_comfyuis_ui_cancels_the_api_request",)),
    Mutant("webhook-only-on-success", "service/local_queue.py",
           "if record is not None and record.finished and record.webhook_url:",
           "if record is not None and record.finished and record.webhook_url and record.state == COMPLETED:",
           (f"{SERVICE_INPUTS}::test_a_lora_that_fails_while_running_answers_422_naming_it_and_its_webhook_"
                            "carries_that_body",)),
    # issue 17: what this round fixed (LoRA cache, strict media, schemes, metadata, leftovers)
    Mutant("cache-key-keeps-query", "nodes/lora_cache.py", 'hashlib.sha256(redact_url(url).encode("utf-8"))',
           'hashlib.sha256(url.encode("utf-8"))',
           (f"{LORA_SOURCES}::test_query_variants_of_a_url_share_one_cached_file",)),
    Mutant("cache-never-evicts", "nodes/lora_sources.py", "        lora_cache.evict(final.parent, final, cache_limit)",
           "        pass", (f"{LORA_SOURCES}::test_the_cache_keeps_the_most_recently_used_files_under_its_cap",)),
    Mutant("cache-hit-not-marked-used", "nodes/lora_sources.py", "                lora_cache.mark_used(final)",
           "                pass",
           (f"{LORA_SOURCES}::test_the_cache_keeps_the_most_recently_used_files_under_its_cap",)),
    Mutant("cache-evicts-the-newest", "nodes/lora_cache.py", "sorted(entries, key=lambda entry: entry[0])",
           "sorted(entries, key=lambda entry: -entry[0])",
           (f"{LORA_SOURCES}::test_the_cache_keeps_the_most_recently_used_files_under_its_cap",)),
    Mutant("scheme-case-sensitive", "service/schema.py", 'if not url.lower().startswith(("http://", "https://")):',
           'if not url.startswith(("http://", "https://")):',
           ("tests/core/test_service_schema.py::test_url_schemes_are_read_in_any_case_as_for_loras",)),
    Mutant("media-not-decoded-at-submit", "service/media.py",
           "for item in media if self.check_media is not None else ():",
           "for item in ():",
           ("tests/core/test_service_media.py::test_damaged_media_is_a_422_naming_the_field_and_nothing_is_written",)),
    Mutant("png-structure-not-verified", "media/strict.py", "                image.verify()", "                pass",
           (f"{MEDIA}::test_whole_images_pass_and_cut_short_ones_are_refused",)),
    Mutant("lenient-pillow-setting-kept", "media/strict.py",
           "lenient, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False",
           "lenient = ImageFile.LOAD_TRUNCATED_IMAGES",
           (f"{MEDIA}::test_whole_images_pass_and_cut_short_ones_are_refused",)),
    Mutant("video-frame-count-unchecked", "media/strict.py", "    if listed and count < listed:", "    if False:",
           (f"{MEDIA}::test_a_video_whose_frames_end_early_is_refused",)),
    Mutant("nodes-decode-video-leniently", "nodes/conditioning.py",
           "    if isinstance(video, InputImpl.VideoFromFile):", "    if False:",
           ("tests/host/test_nodes_long_video.py::test_a_cut_short_video_file_is_refused_by_the_nodes_that_read_it",)),
    Mutant("without-metadata-ignored", "nodes/video.py",
           " or (hidden.extra_pnginfo or {}).get(WITHOUT_METADATA):", ":",
           ("tests/host/test_nodes_video.py::test_a_prompt_can_ask_for_files_without_metadata",)),
    Mutant("api-mp4-keeps-metadata", "service/host.py", ', "extra_pnginfo": {WITHOUT_METADATA: True}}', "}",
           (f"{SERVICE_QUEUE}::test_identical_requests_give_identical_mp4_files",)),
    Mutant("leftovers-kept-at-start-up", "__init__.py", "        remove_unfinished_videos()", "        pass",
           (f"{SERVICE_QUEUE}::test_restart_keeps_finished_results_and_fails_unfinished_ones",)),
    Mutant("lora-parts-kept-at-start-up", "__init__.py", "        remove_unfinished_downloads()", "        pass",
           (f"{SERVICE_QUEUE}::test_restart_keeps_finished_results_and_fails_unfinished_ones",)),
    Mutant("download-part-name-too-loose", "fetch/download.py", r'_PART_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}"',
           r'_PART_NAME = re.compile(r"^\..*"', (f"{FETCH}::test_leftover_parts_are_the_downloads_hidden_files_only",)),
    Mutant("leftover-inputs-match-users-files", "service/media.py", "'mov', *VIDEO_TYPES])})$\")",
           "'mov', *VIDEO_TYPES])})\")",
           ("tests/core/test_service_media.py::test_leftover_condition_files_are_removed_and_users_files_kept",)),
    Mutant("part-name-too-loose", "mp4/writer.py", r'_PART_NAME = re.compile(r"^\..+\.mp4\.[a-z0-9_]{8}"',
           r'_PART_NAME = re.compile(r"^.*\.mp4.*"',
           ("tests/core/test_mp4.py::test_leftover_parts_are_the_writers_hidden_files_only",)),
    # issue 17, items 1-4: bounded work, keys, secrets in URLs, starvation
    Mutant("pixel-limit-ignored", "media/limits.py", "    if size.pixels > limit:", "    if False:",
           ("tests/core/test_service_media.py::test_condition_pixels_are_limited_from_the_header_before_decoding",)),
    Mutant("memory-estimate-ignored", "service/media.py", "        if free is None or needed <= free:",
           "        if True:",
           ("tests/core/test_service_media.py::test_a_request_larger_than_the_free_memory_is_refused",)),
    Mutant("keys-lock-only-the-api", "service/__init__.py", "        host.add_middleware(gate.middleware)\n", "",
           ("tests/server/test_server_keys.py::test_every_route_of_the_app_needs_a_key",)),
    Mutant("metadata-keeps-url-secrets", "nodes/video.py", 'tags["prompt"] = redact_text(json.dumps(hidden.prompt))',
           'tags["prompt"] = json.dumps(hidden.prompt)',
           ("tests/host/test_nodes_video.py::test_metadata_never_carries_a_urls_secret_part",)),
    Mutant("token-follows-redirects", "fetch/download.py", "pace, headers=auth_headers(target))",
           "pace, headers=auth_headers(parse_url(url)))",
           ("tests/core/test_fetch_policy.py::test_tokens_from_the_environment_go_in_a_header_to_their_host_only",)),
    Mutant("downloads-wait-for-a-slot", "service/downloads.py", "        if self.in_flight + slots > self.workers:",
           "        if False:",
           ("tests/core/test_service_media.py::test_the_download_pool_answers_busy_instead_of_waiting",)),
)


def stale_patterns(mutants, root: Path = REPO) -> list[str]:
    """One line per mutant whose text is not found exactly once in its file (or whose file or test file is gone)."""
    problems = []
    for mutant in mutants:
        path = root / mutant.path
        count = path.read_text().count(mutant.original) if path.is_file() else None
        if count != 1:
            found = "the file does not exist" if count is None else f"found {count} times"
            problems.append(f"{mutant.name}: '{mutant.original}' must be found exactly once in {mutant.path} "
                            f"({found})")
        for test in mutant.tests:
            if not (root / test.split("::")[0]).is_file():
                problems.append(f"{mutant.name}: its test file {test.split('::')[0]} does not exist")
    return problems


def copy_repo(target: Path) -> None:
    """The tracked and untracked (not ignored) files, with the set-up folders linked, not copied."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    for shared in LINKED:
        if (REPO / shared).exists():
            (target / shared).symlink_to((REPO / shared).resolve())


PRELOADED = ("torch", "numpy", "einops", "safetensors.torch", "PIL.Image", "av", "pytest",
             "ltx_video.pipelines.pipeline_ltx_video", "ltx_video.inference")
"""Third-party modules imported once here, before the mutants' test runs fork from this process: each run then
starts in a fraction of a second instead of importing torch and the official package (with diffusers) again, about
10 s on 2 cores. The pack's own modules are never imported here, so each run imports its mutated copy afresh."""


@dataclass
class Run:
    """One mutant's tests running in a forked child, in one of the copies."""

    mutant: Mutant
    copy: Path
    original: str
    log: Path
    pid: int


def start(mutant: Mutant, copy: Path, log: Path) -> Run:
    """Apply the mutant to the copy and fork a child that runs its tests there as `python -m pytest` would."""
    path = copy / mutant.path
    original = path.read_text()
    path.write_text(original.replace(mutant.original, mutant.mutated))
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 3
        try:
            with open(log, "w") as out:
                os.dup2(out.fileno(), 1)
                os.dup2(out.fileno(), 2)
            os.chdir(copy)
            sys.path[0] = str(copy)
            sys.dont_write_bytecode = True  # a restored file of the same size and second must not reuse a stale .pyc
            import pytest

            code = int(pytest.main(["-q", "-x", "-p", "no:cacheprovider", *mutant.tests]))
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return Run(mutant, copy, original, log, pid)


def finish(run: Run, status: int) -> bool:
    """Restore the copy; True when the mutant's tests failed. Tests that pytest cannot find, collect or set up are
    an error (exit 2), not a catch."""
    (run.copy / run.mutant.path).write_text(run.original)
    code = os.waitstatus_to_exitcode(status)
    output = run.log.read_text(errors="replace")
    last = (output.strip().splitlines() or ["(no output)"])[-1]
    logger.info("%s: %s", run.mutant.name, last)
    if code not in (0, 1) or re.search(r"\b\d+ errors?\b", last):
        logger.error("%s: pytest could not run its tests (exit %d; a set-up error is not a catch):\n%s",
                     run.mutant.name, code, output[-3000:])
        sys.exit(2)
    return code == 1


def survivors_of(mutants: list[Mutant], jobs: int) -> list[str]:
    """Run every mutant's tests, `jobs` at a time, each in its own copy of the repo; the names of those not caught."""
    for name in PRELOADED:
        importlib.import_module(name)
    if threading.active_count() != 1:
        raise RuntimeError("a preloaded module started a thread: forking would copy its locks held")
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs))  # the children inherit it: no oversubscription
    survivors, waiting, running = [], list(reversed(mutants)), {}
    with tempfile.TemporaryDirectory() as folder:
        copies = [Path(folder) / f"copy{number}" for number in range(min(jobs, len(mutants)))]
        for copy in copies:
            copy.mkdir()
            copy_repo(copy)
        free = list(copies)
        while waiting or running:
            while waiting and free:
                copy = free.pop()
                run = start(waiting.pop(), copy, copy.with_suffix(".log"))
                running[run.pid] = run
            pid, status = os.wait()
            run = running.pop(pid)
            free.append(run.copy)
            if not finish(run, status):
                survivors.append(run.mutant.name)
    order = [m.name for m in mutants]
    return sorted(survivors, key=order.index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutants to check (default: all)")
    parser.add_argument("--patterns", action="store_true", help="only check that every pattern matches once")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="mutants checked at once, each in its own copy (default: one per CPU)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    unknown = set(args.names) - {m.name for m in MUTANTS}
    if unknown:
        logger.error("no such mutant: %s", ", ".join(sorted(unknown)))
        sys.exit(2)
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    problems = stale_patterns(chosen)
    if problems:
        logger.error("stale mutant patterns (update them to the code):\n%s", "\n".join(problems))
        sys.exit(2)
    if args.patterns:
        logger.info("all %d mutant patterns match exactly once", len(chosen))
        return
    survivors = survivors_of(chosen, args.jobs)
    logger.info("caught %d of %d%s", len(chosen) - len(survivors), len(chosen),
                f"; survived: {', '.join(survivors)}" if survivors else "")
    sys.exit(1 if survivors else 0)


if __name__ == "__main__":
    main()
