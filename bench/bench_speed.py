#!/usr/bin/env python
"""What the speed options buy: the step cache, compiled blocks and fp8 matrix multiplies, each measured as a ratio
against the plain path in the same run, on the same random weights.

- cache:   one denoising pass (CFG + STG, the 2B dev schedule) at several thresholds: transformer forwards whose
           deep blocks were reused, wall time ÷ threshold 0, and how far the latents moved (relative L1).
- compile: one transformer forward, eager vs blocks compiled with inductor (compile time reported apart).
- fp8:     one transformer forward with fp8 weights, upcast to bf16 (the default) vs fp8 matmuls (CUDA, sm 8.9+).
- vram:    peak CUDA memory of the one-node defaults (1280×720, 89 frames, 0.9.7 dev multi-scale) with random
           13B weights in bf16 or fp8 (CUDA only).

    .venv/bin/python bench/bench_speed.py --preset cpu                       # cache + compile on the CPU
    .venv/bin/python bench/bench_speed.py --preset 13b --device cuda --only fp8 --tokens 13376
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench"), str(REPO / "tests")]

import bench_models  # noqa: E402  (bench/ on the path)

from ltx_core import acceleration, sample_video  # noqa: E402
from ltx_core.models.ops import fp8_matmul, manual_cast  # noqa: E402
from ltx_core.models.transformer import Transformer3D  # noqa: E402

log = logging.getLogger("bench_speed")
THRESHOLDS = (0.0, 0.05, 0.1, 0.2, 0.5)
PRESETS = {
    **bench_models.PRESETS,
    # 8 blocks at 2B width on a small latent (2×6×8 = 96 tokens): deep enough for the cache to skip something,
    # small enough for 20 steps × 3 branches × 5 thresholds in a few minutes on 2 cores.
    "cpu-deep": bench_models.Preset(8, 32, 64, 4096, (2, 6, 8), 32, None, (2, 2, 3), 1),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(call: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median seconds of `repeats` calls."""
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        call()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build_transformer(preset: bench_models.Preset, device: torch.device, dtype: torch.dtype,
                      operations=torch.nn) -> Transformer3D:
    config = bench_models.transformer_config(preset)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in Transformer3D(config).state_dict().items()}
    weights = bench_models.random_weights(shapes, 0, device, torch.bfloat16 if dtype in acceleration_fp8() else dtype)
    if dtype in acceleration_fp8():
        weights = {k: (v.to(dtype) if v.ndim == 2 and ".transformer_blocks." in f".{k}" else v)
                   for k, v in weights.items()}
    compute = torch.bfloat16 if dtype in acceleration_fp8() else dtype
    return bench_models.load_shared(lambda: Transformer3D(config, dtype=compute, compute_dtype=compute,
                                                          operations=operations), weights)


def acceleration_fp8() -> tuple[torch.dtype, ...]:
    return (torch.float8_e4m3fn,)


def forward_inputs(preset: bench_models.Preset, tokens: int, batch: int, device: torch.device, dtype: torch.dtype):
    g = torch.Generator(device=device).manual_seed(1)
    return dict(tokens=torch.randn(batch, tokens, 128, generator=g, device=device).to(dtype),
                positions=torch.rand(batch, 3, tokens, generator=g, device=device) * 20,
                context=torch.randn(batch, preset.text_len, preset.caption_channels, generator=g,
                                    device=device).to(dtype),
                context_mask=torch.ones(batch, preset.text_len, device=device, dtype=torch.long),
                timestep=torch.full((batch,), 0.7, device=device))


def run_forward(model: Transformer3D, inputs: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(inputs["tokens"], **{k: v for k, v in inputs.items() if k != "tokens"})


# ------------------------------------------------------------------------------------------------------------------


def bench_cache(preset, args, device, dtype) -> list[dict]:
    """One 2B-dev-style pass (CFG 3 + STG 1) at each threshold; counts from the pass's StepCache."""
    from support import tiny

    transformer = build_transformer(preset, device, dtype)
    vae = tiny.reference_vae(tiny.vae_config())  # only read for its dtype: no conditions, no decode
    checkpoint = SimpleNamespace(transformer=transformer, vae=vae.to(device), config={})
    frames, height, width = preset.latent
    g = torch.Generator().manual_seed(3)
    prompts = dict(context=torch.randn(1, preset.text_len, preset.caption_channels, generator=g),
                   context_mask=torch.ones(1, preset.text_len),
                   negative_context=torch.randn(1, preset.text_len, preset.caption_channels, generator=g),
                   negative_context_mask=torch.ones(1, preset.text_len))
    caches: list[acceleration.StepCache] = []
    original = acceleration.StepCache.__post_init__

    def record(self):
        original(self)
        caches.append(self)

    acceleration.StepCache.__post_init__ = record
    rows, plain, base_time = [], None, None
    try:
        for threshold in (THRESHOLDS[0], *THRESHOLDS):  # the first run warms up and is not reported
            caches.clear()
            start = time.perf_counter()
            latents = sample_video(checkpoint, **prompts, width=width * 32, height=height * 32,
                                   num_frames=(frames - 1) * 8 + 1, frame_rate=25.0, seed=0, recipe="0.9.6-2b-dev",
                                   steps=args.steps, skip_block_list=[preset.layers - 1], device=device,
                                   step_cache_threshold=threshold).latents
            sync(device)
            seconds = time.perf_counter() - start
            reused = sum(sum(c.reused.values()) for c in caches)
            computed = sum(sum(c.computed.values()) for c in caches)
            if plain is None:
                plain = latents
                continue
            if base_time is None:
                base_time = seconds
            moved = ((latents - plain).abs().mean() / plain.abs().mean()).item()
            rows.append({"threshold": threshold, "forwards": reused + computed, "reused": reused,
                         "seconds": seconds, "time_ratio": seconds / base_time, "relative_l1": moved})
    finally:
        acceleration.StepCache.__post_init__ = original
    rows[0]["forwards"] = rows[1]["forwards"]  # the plain pass has no cache to count; it runs as many
    return rows


def bench_compile(preset, args, device, dtype) -> list[dict]:
    model = build_transformer(preset, device, dtype)
    inputs = forward_inputs(preset, args.tokens or preset_tokens(preset), args.batch, device, dtype)
    eager_out = run_forward(model, inputs)
    eager = timed(lambda: run_forward(model, inputs), device, args.repeats)
    acceleration.compile_blocks(model)
    start = time.perf_counter()
    compiled_out = run_forward(model, inputs)
    sync(device)
    compile_seconds = time.perf_counter() - start
    compiled = timed(lambda: run_forward(model, inputs), device, args.repeats)
    difference = (compiled_out.float() - eager_out.float()).abs().max().item()
    return [{"eager_s": eager, "compiled_s": compiled, "ratio": compiled / eager, "first_call_s": compile_seconds,
             "max_abs_diff": difference}]


def bench_fp8(preset, args, device, dtype) -> list[dict]:
    if not acceleration.supports_fp8_matmul(device):
        log.warning("fp8: %s has no fp8 matmul; skipped", device)
        return []
    tokens = args.tokens or preset_tokens(preset)
    upcast = build_transformer(preset, device, torch.float8_e4m3fn, manual_cast)
    fast = build_transformer(preset, device, torch.float8_e4m3fn, fp8_matmul)
    fast.load_state_dict(upcast.state_dict(), assign=True)
    inputs = forward_inputs(preset, tokens, args.batch, device, torch.bfloat16)
    reference, out = run_forward(upcast, inputs), run_forward(fast, inputs)
    cosine = torch.nn.functional.cosine_similarity(reference.flatten().float(), out.flatten().float(), 0).item()
    slow_s = timed(lambda: run_forward(upcast, inputs), device, args.repeats)
    fast_s = timed(lambda: run_forward(fast, inputs), device, args.repeats)
    return [{"tokens": tokens, "upcast_s": slow_s, "fp8_matmul_s": fast_s, "ratio": fast_s / slow_s,
             "cosine": cosine}]


def bench_vram(preset, args, device, dtype) -> list[dict]:
    """Peak CUDA memory of the one-node defaults (1280×720, 89 frames, 0.9.7 dev multi-scale) with random weights
    of the released sizes, transformer stored in bf16 and in fp8; few steps (memory does not grow with them)."""
    if device.type != "cuda":
        log.warning("vram: needs --device cuda; skipped")
        return []
    from ltx_core import decode_video
    from ltx_core.loading.known_configs import UPSAMPLER_CONFIGS, VAE_CONFIGS
    from ltx_core.models.upsampler import LatentUpsampler
    from ltx_core.models.vae import CausalVideoVAE

    rows = []
    for storage in (torch.bfloat16, torch.float8_e4m3fn):
        torch.cuda.empty_cache()
        operations = acceleration_ops(storage, device)
        transformer = build_transformer(preset, device, storage, operations)
        vae_config, up_config = VAE_CONFIGS["0.9.5+"], UPSAMPLER_CONFIGS["spatial-0.9.7"]
        vae = random_module(lambda config=vae_config: CausalVideoVAE.from_config(config, dtype=torch.bfloat16),
                            device, 1)
        upsampler = random_module(lambda config=up_config: LatentUpsampler(config, dtype=torch.bfloat16,
                                                                           compute_dtype=torch.bfloat16), device, 2)
        checkpoint = SimpleNamespace(transformer=transformer, vae=vae, config={})
        g = torch.Generator().manual_seed(3)
        text = dict(context=torch.randn(1, 128, 4096, generator=g), context_mask=torch.ones(1, 128),
                    negative_context=torch.randn(1, 128, 4096, generator=g), negative_context_mask=torch.ones(1, 128))
        resident = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        video = sample_video(checkpoint, **text, width=1280, height=720, num_frames=89, frame_rate=25.0, seed=0,
                             recipe="0.9.7-dev", steps=args.vram_steps, upsampler=upsampler, device=device)
        frames = decode_video(vae, video, chunk_frames=4, device=device)
        sync(device)
        rows.append({"weights": str(storage).replace("torch.", ""), "resident_gib": resident / 2 ** 30,
                     "peak_gib": torch.cuda.max_memory_allocated(device) / 2 ** 30,
                     "seconds": time.perf_counter() - start, "frames": tuple(frames.shape)})
        del transformer, vae, upsampler, checkpoint, video, frames
    return rows


def acceleration_ops(storage: torch.dtype, device: torch.device):
    if storage == torch.float8_e4m3fn:
        return fp8_matmul if acceleration.supports_fp8_matmul(device) else manual_cast
    return torch.nn


def random_module(factory: Callable[[], torch.nn.Module], device: torch.device, seed: int) -> torch.nn.Module:
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in factory().state_dict().items()}
    weights = bench_models.random_weights(shapes, seed, device, torch.bfloat16)
    return bench_models.load_shared(factory, weights)


def preset_tokens(preset: bench_models.Preset) -> int:
    frames, height, width = preset.latent
    return frames * height * width


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=tuple(PRESETS), default="cpu-deep")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--only", choices=("cache", "compile", "fp8", "vram"), default=None)
    parser.add_argument("--vram-steps", type=int, default=3, help="steps per pass of the vram run")
    parser.add_argument("--steps", type=int, default=20, help="denoising steps of the cache pass")
    parser.add_argument("--tokens", type=int, default=0, help="forward tokens (default: the preset's)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    preset = PRESETS[args.preset]
    torch.backends.cuda.matmul.allow_tf32 = False
    results = {"preset": args.preset, "device": str(device), "dtype": args.dtype, "threads": torch.get_num_threads(),
               "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    sections = {"cache": bench_cache, "compile": bench_compile, "fp8": bench_fp8, "vram": bench_vram}
    for name, bench in sections.items():
        if args.only in (None, name):
            results[name] = bench(preset, args, device, dtype)
            for row in results[name]:
                print(name, " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
