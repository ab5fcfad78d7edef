"""Check that the tests catch the small bugs of the issue-8 mutation audit (not part of the suite).

Each mutant is one text replacement in one file. The repo's files are copied to a temporary folder (the working
tree is never touched), the mutant applied there, and the tests named for it run; a mutant is caught when they
fail. Usage: `.venv/bin/python scripts/check_mutants.py [name ...]` (all by default); exits 1 if one survives.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARITY = "tests/core/test_pipeline_parity.py"
GUIDES = "tests/core/test_guides_parity.py"

logger = logging.getLogger("check_mutants")


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    original: str
    mutated: str
    tests: tuple[str, ...]


MUTANTS = (
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
    Mutant("decode-timestep-fixed", "ltx_core/sampling/pipeline.py", 'decode_timestep=float(settings["decode_timestep"])',
           "decode_timestep=0.05", (f"{PARITY}::test_decode_timestep_noise_and_tone_map",)),
    Mutant("adain-factor-ignored", "ltx_core/sampling/pipeline.py",
           'runner.upsample(upsampler, first, settings["adain_factor"])', "runner.upsample(upsampler, first, 1.0)",
           (f"{PARITY}::test_multi_scale_adain_factor",)),
    Mutant("tone-map-skipped", "ltx_core/sampling/pipeline.py",
           "latents = tone_map(latents, video.tone_map_compression_ratio)", "latents = latents",
           (f"{PARITY}::test_decode_timestep_noise_and_tone_map",)),
    Mutant("keyframe-offset-dropped", "ltx_core/sampling/conditioning.py", "coords[:, 0] += start_frame",
           "coords[:, 0] += 0", (f"{PARITY}::test_keyframe_at_frame_16",)),
    Mutant("frame-rate-fixed", "ltx_core/models/positions.py", "positions[:, 0] * (1.0 / frame_rate)",
           "positions[:, 0] * (1.0 / 25.0)", (f"{PARITY}::test_padding_and_cropping",)),
    Mutant("cfg-star-ignored", "ltx_core/sampling/guidance.py", "        if cfg_star_rescale:", "        if False:",
           ("tests/core/test_pipeline_units.py::test_guidance_arithmetic_matches_the_reference_loop",)),
    Mutant("stg-rescale-ignored", "ltx_core/sampling/guidance.py", "        if step.rescale != 1.0:", "        if False:",
           ("tests/core/test_pipeline_units.py::test_guidance_arithmetic_matches_the_reference_loop",)),
    Mutant("api-null-means-default", "service/schema.py", "if src[name] is None and not nullable:",
           "if False:", ("tests/core/test_service_units.py::test_nulls_and_wrong_types_are_422s_naming_the_field",)),
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
    Mutant("fleet-gate-secret-per-instance", "service/pgqueue/queue.py", "        return row[0]\n\n    async def submit",
           "        return new_value\n\n    async def submit",
           ("tests/server/test_pg_queue.py::test_instances_starting_together_share_one_gate_secret_so_each_serves_"
            "the_urls_another_signed",)),
    Mutant("fleet-sealed-urls-kept-after-the-job", "service/pgqueue/migrations.py", "NEW.sealed := '{}';", "NULL;",
           ("tests/server/test_pg_queue.py::test_sealed_lora_urls_go_with_the_job_to_its_worker_only_and_are_"
            "forgotten_when_it_ends",)),
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
    # issue 17, items 1-4: bounded work, keys, secrets in URLs, starvation
    Mutant("pixel-limit-ignored", "service/limits.py", "    if size.pixels > limit:", "    if False:",
           ("tests/core/test_service_units.py::test_condition_pixels_are_limited_from_the_header_before_decoding",)),
    Mutant("memory-estimate-ignored", "service/media.py", "        if free is None or needed <= free:",
           "        if True:",
           ("tests/core/test_service_units.py::test_a_request_larger_than_the_free_memory_is_refused",)),
    Mutant("keys-lock-only-the-api", "service/__init__.py", "        host.add_middleware(gate.middleware)\n", "",
           ("tests/server/test_server_keys.py::test_every_route_of_the_app_needs_a_key",)),
    Mutant("metadata-keeps-url-secrets", "nodes/video.py", 'tags["prompt"] = redact_text(json.dumps(hidden.prompt))',
           'tags["prompt"] = json.dumps(hidden.prompt)',
           ("tests/host/test_nodes_video.py::test_metadata_never_carries_a_urls_secret_part",)),
    Mutant("token-follows-redirects", "fetch/download.py", "pace, headers=auth_headers(target))",
           "pace, headers=auth_headers(parse_url(url)))",
           ("tests/core/test_fetch.py::test_tokens_from_the_environment_go_in_a_header_to_their_host_only",)),
    Mutant("downloads-wait-for-a-slot", "service/downloads.py", "        if self.in_flight + slots > self.workers:",
           "        if False:",
           ("tests/core/test_service_units.py::test_the_download_pool_answers_busy_instead_of_waiting",)),
)


def copy_repo(target: Path) -> None:
    """The tracked and untracked (not ignored) files, with `.venv` and `.comfyui` linked, not copied."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    for shared in (".venv", ".comfyui"):
        if (REPO / shared).exists():
            (target / shared).symlink_to((REPO / shared).resolve())


def check(mutant: Mutant, copy: Path) -> bool:
    """True when the mutant's tests fail with it applied."""
    path = copy / mutant.path
    original = path.read_text()
    if original.count(mutant.original) != 1:
        raise SystemExit(f"{mutant.name}: '{mutant.original}' is not found exactly once in {mutant.path}")
    path.write_text(original.replace(mutant.original, mutant.mutated))
    try:
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                                 *mutant.tests], cwd=copy, capture_output=True, text=True)
    finally:
        path.write_text(original)
    logger.info("%s: %s", mutant.name, (result.stdout.strip().splitlines() or ["(no output)"])[-1])
    return result.returncode != 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutants to check (default: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    with tempfile.TemporaryDirectory() as folder:
        copy_repo(Path(folder))
        survivors = [m.name for m in chosen if not check(m, Path(folder))]
    logger.info("caught %d of %d%s", len(chosen) - len(survivors), len(chosen),
                f"; survived: {', '.join(survivors)}" if survivors else "")
    sys.exit(1 if survivors else 0)


if __name__ == "__main__":
    main()
