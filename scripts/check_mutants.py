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
