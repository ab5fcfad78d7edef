#!/usr/bin/env python
"""End-to-end generation time and peak memory of `ltx_core.generate` against the official pipeline.

Both sides load the same random checkpoint file and run the same recipe with the same inputs and seed
(`rng="reference"`, so the frames must agree and the comparison is of the same work). Each side runs in its own
subprocess so that peak memory is its own: peak RSS on the CPU, `torch.cuda.max_memory_allocated` on a GPU.

    .venv/bin/python bench/bench_pipeline.py --preset tiny
    .venv/bin/python bench/bench_pipeline.py --preset small --recipe 0.9.7-distilled
    .venv/bin/python bench/bench_pipeline.py --preset small --device cuda --dtype bf16
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO))
sys.path.append(str(REPO / "tests"))


@dataclass(frozen=True)
class Preset:
    layers: int
    heads: int
    head_dim: int
    caption_channels: int
    vae_base: int  # VAE base channels (128 = the released width)
    vae_layers: int
    up_mid: int
    up_blocks: int
    size: tuple[int, int, int]  # width, height, frames


PRESETS = {
    "tiny": Preset(3, 2, 32, 64, 8, 1, 32, 1, (192, 128, 17)),
    # 2B width, 4 blocks, the released VAE/upsampler widths with fewer layers: ~1 min per side on 2 cores.
    "small": Preset(4, 32, 64, 4096, 128, 1, 512, 1, (320, 192, 17)),
}


def _skip_blocks(layers: int) -> dict:
    """The dev recipe's skip-block schedule mapped onto a model with few blocks."""
    top = layers - 1
    first = [[], [0, top], [min(1, top), top], [top], [top], [top], [top]]
    return {"first_pass": {"skip_block_list": first}, "second_pass": {"skip_block_list": [max(top - 1, 0)]}}


def write_models(preset: Preset, folder: Path) -> tuple[Path, Path]:
    from support import tiny

    return tiny.save_model_set(folder, num_layers=preset.layers, heads=preset.heads, head_dim=preset.head_dim,
                               caption_channels=preset.caption_channels, vae_base=preset.vae_base,
                               vae_layers=preset.vae_layers, up_mid=preset.up_mid, up_blocks=preset.up_blocks)


def run_side(args: argparse.Namespace) -> None:
    """Child process: one side, one generation; prints a JSON line with time, peak memory and the frames file."""
    from ltx_core import generate, load_checkpoint, load_latent_upsampler
    from support import pipeline_reference

    preset = PRESETS[args.preset]
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    device = torch.device(args.device)
    width, height, frames = preset.size
    g = torch.Generator().manual_seed(0)
    context = torch.randn(1, 64, preset.caption_channels, generator=g).to(device, dtype)
    negative = torch.randn(1, 64, preset.caption_channels, generator=g).to(device, dtype)
    mask = torch.ones(1, 64, dtype=torch.long, device=device)
    overrides = _skip_blocks(preset.layers) if args.recipe == "0.9.7-dev" else {}
    if args.steps:
        overrides.setdefault("first_pass", {})["num_inference_steps"] = args.steps
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    if args.side == "ours":
        checkpoint = load_checkpoint(args.checkpoint, dtype=dtype, device=device)
        upsampler = load_latent_upsampler(args.upsampler, dtype=dtype, device=device)
        loaded = time.perf_counter()
        out = generate(checkpoint, context=context, context_mask=mask, negative_context=negative,
                       negative_context_mask=mask, width=width, height=height, num_frames=frames, frame_rate=25.0,
                       seed=42, recipe=args.recipe, upsampler=upsampler, rng="reference", **overrides)
    else:
        pipeline = pipeline_reference.build(args.checkpoint, args.upsampler)
        for module in (pipeline.video_pipeline.transformer, pipeline.video_pipeline.vae, pipeline.latent_upsampler):
            module.to(device=device, dtype=dtype)
        loaded = time.perf_counter()
        out = pipeline_reference.run(pipeline, recipe=args.recipe, prompts=(context, mask, negative, mask),
                                     width=width, height=height, num_frames=frames, frame_rate=25.0, seed=42,
                                     **overrides).frames
    if device.type == "cuda":
        torch.cuda.synchronize()
    done = time.perf_counter()
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    torch.save(out.cpu().float(), args.frames_out)
    print(json.dumps({"load_s": loaded - started, "generate_s": done - loaded, "peak_bytes": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=PRESETS, default="tiny")
    parser.add_argument("--recipe", default="0.9.7-dev", choices=["0.9.7-dev", "0.9.7-distilled"])
    parser.add_argument("--steps", type=int, default=0, help="first-pass steps (0: the recipe's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--side", choices=["ours", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--upsampler", help=argparse.SUPPRESS)
    parser.add_argument("--frames-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        run_side(args)
        return
    with tempfile.TemporaryDirectory() as folder:
        ckpt, up = write_models(PRESETS[args.preset], Path(folder))
        results = {}
        for side in ("reference", "ours"):
            frames_out = Path(folder) / f"{side}.pt"
            command = [sys.executable, __file__, "--side", side, "--preset", args.preset, "--recipe", args.recipe,
                       "--steps", str(args.steps), "--device", args.device, "--dtype", args.dtype, "--threads",
                       str(args.threads), "--checkpoint", str(ckpt), "--upsampler", str(up),
                       "--frames-out", str(frames_out)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[side] = json.loads(output.strip().splitlines()[-1])
            results[side]["frames"] = torch.load(frames_out)
        difference = (results["ours"].pop("frames") - results["reference"].pop("frames")).abs().max().item()
    ours, ref = results["ours"], results["reference"]
    width, height, frames = PRESETS[args.preset].size
    print(f"{args.preset} preset, {args.recipe}, {width}×{height}×{frames}, {args.device} {args.dtype}, "
          f"{args.threads} threads; max |frames ours − reference| = {difference:.1e}")
    print(f"{'side':<10} {'load s':>8} {'generate s':>11} {'peak MiB':>9}")
    for name, row in (("reference", ref), ("ours", ours)):
        print(f"{name:<10} {row['load_s']:8.2f} {row['generate_s']:11.2f} {row['peak_bytes'] / 2**20:9.0f}")
    print(f"ratio ours÷reference: generate {ours['generate_s'] / ref['generate_s']:.2f}, "
          f"peak memory {ours['peak_bytes'] / ref['peak_bytes']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "max_abs_diff": difference, **results}, indent=1))


if __name__ == "__main__":
    main()
