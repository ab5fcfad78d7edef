#!/usr/bin/env python
"""Long videos: time and peak memory of window-by-window generation at 1× and 4× the length.

Each length runs in its own subprocess on the same tiny random model: `sample_long_video`, then the frames are
decoded chunk by chunk (`iter_decode_video`) straight into an mp4 (`mp4.write_mp4`), as the one-node text-to-video
and Extend Video do. Peak memory is the process's peak RSS on the CPU and `torch.cuda.max_memory_allocated` on a
GPU. The targets: the 4× run's peak within 1.2× of the 1× run's, and the time per window about constant.

    .venv/bin/python bench/bench_long_video.py                      # tiny model, 96×64, 121 and 484 frames
    .venv/bin/python bench/bench_long_video.py --device cuda --width 256 --height 160
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO))
sys.path.append(str(REPO / "tests"))


def run_length(args: argparse.Namespace) -> None:
    """Child process: one long video; prints a JSON line with times, windows and peak memory."""
    from ltx_core import iter_decode_video, load_checkpoint, load_latent_upsampler, sample_long_video
    from ltx_core.windows import plan_windows
    from mp4 import write_mp4

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    checkpoint = load_checkpoint(args.checkpoint, device=device)
    upsampler = load_latent_upsampler(args.upsampler, device=device)
    g = torch.Generator().manual_seed(0)
    context, negative = torch.randn(1, 16, 64, generator=g), torch.randn(1, 16, 64, generator=g)
    mask = torch.ones(1, 16, dtype=torch.long)
    plan = plan_windows(args.frames, args.window, args.overlap)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    video = sample_long_video(checkpoint, context=context, context_mask=mask, negative_context=negative,
                              negative_context_mask=mask, width=args.width, height=args.height,
                              num_frames=args.frames, frame_rate=25.0, seed=1, recipe="0.9.7-distilled",
                              upsampler=upsampler, window_frames=args.window, overlap_frames=args.overlap,
                              device=device)
    sampled = time.perf_counter()
    written = write_mp4(args.mp4, iter_decode_video(checkpoint.vae, video, chunk_frames=args.chunk_frames,
                                                    device=device), 25.0)
    if device.type == "cuda":
        torch.cuda.synchronize()
    done = time.perf_counter()
    print(json.dumps({"frames": written, "windows": len(plan.windows), "sample_s": sampled - started,
                      "decode_write_s": done - sampled,
                      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "cuda_peak_bytes": torch.cuda.max_memory_allocated() if device.type == "cuda" else None}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=121, help="the 1× length (the 4× run has 4× as many)")
    parser.add_argument("--window", type=int, default=121)
    parser.add_argument("--overlap", type=int, default=24)
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--chunk-frames", type=int, default=4, help="latent frames per decode chunk")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--upsampler", help=argparse.SUPPRESS)
    parser.add_argument("--mp4", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_length(args)
        return
    from support import tiny

    results = {}
    with tempfile.TemporaryDirectory() as folder:
        ckpt, up = tiny.save_model_set(Path(folder))
        for factor in (1, 4):
            frames = args.frames * factor
            command = [sys.executable, __file__, "--child", "--frames", str(frames), "--window", str(args.window),
                       "--overlap", str(args.overlap), "--width", str(args.width), "--height", str(args.height),
                       "--chunk-frames", str(args.chunk_frames), "--device", args.device, "--threads",
                       str(args.threads), "--checkpoint", str(ckpt), "--upsampler", str(up),
                       "--mp4", str(Path(folder) / f"{factor}x.mp4")]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[f"{factor}x"] = json.loads(output.strip().splitlines()[-1])
    print(f"tiny model, 0.9.7-distilled, {args.width}×{args.height}, windows of {args.window} frames overlapping "
          f"by {args.overlap}, {args.device}, {args.threads} threads")
    print(f"{'length':<7} {'frames':>6} {'windows':>7} {'sample s':>9} {'s/window':>9} {'decode+mp4 s':>13} "
          f"{'peak RSS MiB':>13} {'CUDA peak MiB':>14}")
    for name, row in results.items():
        cuda = "–" if row["cuda_peak_bytes"] is None else f"{row['cuda_peak_bytes'] / 2**20:.0f}"
        print(f"{name:<7} {row['frames']:>6} {row['windows']:>7} {row['sample_s']:9.2f} "
              f"{row['sample_s'] / row['windows']:9.2f} {row['decode_write_s']:13.2f} "
              f"{row['peak_rss_bytes'] / 2**20:13.0f} {cuda:>14}")
    one, four = results["1x"], results["4x"]
    print(f"4× ÷ 1×: peak RSS {four['peak_rss_bytes'] / one['peak_rss_bytes']:.2f}"
          + (f", CUDA peak {four['cuda_peak_bytes'] / one['cuda_peak_bytes']:.2f}" if one["cuda_peak_bytes"] else "")
          + f", time per window {four['sample_s'] / four['windows'] / (one['sample_s'] / one['windows']):.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), **results}, indent=1))


if __name__ == "__main__":
    main()
