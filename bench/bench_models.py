#!/usr/bin/env python
"""Time the transformer forward and the VAE decode of `ltx_core` against the official `ltx_video` package and
ComfyUI's native LTX-Video classes, at the same config, with the same random weights and the same inputs.

Speed targets are checked here, never in tests: timings depend on the machine. Every side loads one shared state
dict (`assign=True`, so even the 13B preset holds the weights once) and the outputs are compared with the
reference before any number is printed, so the ratios compare the same work.

    .venv/bin/python bench/bench_models.py --preset cpu
    .venv/bin/python bench/bench_models.py --preset 13b --device cuda --dtype bf16 --json out.json
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
COMFY_DIR = Path(os.environ.get("COMFYUI_DIR") or REPO / ".comfyui")
log = logging.getLogger("bench")


@dataclass(frozen=True)
class Preset:
    layers: int  # transformer blocks
    heads: int
    head_dim: int
    caption_channels: int
    latent: tuple[int, int, int]  # (F, H, W) latent video seen by the transformer: F·H·W tokens
    text_len: int
    vae_layers: int | None  # res layers per decoder stage; None = the released 0.9.5+ counts (5)
    vae_latent: tuple[int, int, int]  # (F, H, W) latent decoded by the VAE → (8(F-1)+1, 32H, 32W) pixels
    chunk_frames: int  # latent frames per chunk for ours' chunked decode


PRESETS = {
    # Seconds: checks that all three sides build, load the same weights and agree.
    "tiny": Preset(1, 2, 32, 64, (2, 4, 4), 16, 1, (2, 2, 2), 1),
    # ~1 min on 2 cores: 2B width (32×64) with 2 blocks, 512×320×25 frames (640 tokens); the real VAE, 9×64×96.
    "cpu": Preset(2, 32, 64, 4096, (4, 10, 16), 128, None, (2, 2, 3), 1),
    # GPU only: the 13B transformer (48×32×128) at 768×512×97 frames (4992 tokens) and the real VAE at that size.
    "13b": Preset(48, 32, 128, 4096, (13, 16, 24), 128, None, (13, 16, 24), 4),
    # GPU only: the 13B transformer at 1216×704×121 frames (16×22×38 = 13376 tokens), the official example size.
    "13b-704p": Preset(48, 32, 128, 4096, (16, 22, 38), 128, None, (16, 22, 38), 4),
}


def transformer_config(p: Preset) -> dict:
    """The official `transformer` config section (0.9.7 values; keys the reference ignores left out) at this size."""
    dim = p.heads * p.head_dim
    return {
        "_class_name": "Transformer3DModel", "activation_fn": "gelu-approximate", "attention_bias": True,
        "attention_head_dim": p.head_dim, "caption_channels": p.caption_channels, "cross_attention_dim": dim,
        "in_channels": 128, "out_channels": 128, "norm_elementwise_affine": False, "norm_eps": 1e-6,
        "num_attention_heads": p.heads, "num_layers": p.layers, "qk_norm": "rms_norm",
        "standardization_norm": "rms_norm",
        "positional_embedding_type": "rope", "positional_embedding_theta": 10000.0,
        "positional_embedding_max_pos": [20, 2048, 2048], "timestep_scale_multiplier": 1000,
        "causal_temporal_positioning": True,
    }


def vae_config(p: Preset) -> dict:
    """The released 0.9.5+ VAE config; padding set explicitly because ComfyUI's decoder defaults to "reflect"."""
    from ltx_core.loading.known_configs import VAE_CONFIGS

    config = copy.deepcopy(VAE_CONFIGS["0.9.5+"])
    config["spatial_padding_mode"] = "zeros"
    if p.vae_layers is not None:  # tiny: fewer layers and no channel growth (ComfyUI fixes the base width at 128)
        for block in config["decoder_blocks"]:
            block[1]["num_layers" if block[0] == "res_x" else "multiplier"] = p.vae_layers
    return config


def random_weights(shapes: dict[str, torch.Size], seed: int, device: torch.device,
                   dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Seeded weights scaled so activations stay O(1) through 48 blocks / the VAE (no inf/nan in bf16)."""
    g = torch.Generator(device=device).manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for name, shape in shapes.items():
        randn = torch.randn(shape, generator=g, device=device)
        if name.endswith("timestep_scale_multiplier"):
            t = torch.full(shape, 1000.0, device=device)
        elif name.endswith("std-of-means"):
            t = torch.rand(shape, generator=g, device=device) + 0.5
        elif name.endswith("channel"):
            t = torch.arange(shape[0], device=device, dtype=torch.float32)
        elif "norm" in name and len(shape) == 1:
            t = 1 + 0.1 * randn
        else:
            t = randn * (shape[1:].numel() ** -0.5 if len(shape) > 1 else 0.1)
        out[name] = t.to(dtype)
    return out


def load_shared(factory: Callable[[], torch.nn.Module], weights: dict[str, torch.Tensor],
                skip_prefix: str = "") -> torch.nn.Module:
    """Build on meta and take the shared tensors (no copy); `skip_prefix` (the VAE encoder) stays unallocated."""
    with torch.device("meta"):
        model = factory()
    missing, unexpected = torch.nn.Module.load_state_dict(model, weights, strict=False, assign=True)
    missing = [k for k in missing if not (skip_prefix and k.startswith(skip_prefix))]
    unexpected = [k for k in unexpected if not k.startswith("per_channel_statistics.")]
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()]
            if t.is_meta and not (skip_prefix and n.startswith(skip_prefix))]
    if missing or unexpected or left:
        raise RuntimeError(f"{type(model).__name__}: missing {missing[:5]}, unexpected {unexpected[:5]}, "
                           f"left on meta {left[:5]}")
    return model.eval()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_sides(sides: dict[str, Callable[[], torch.Tensor]], device: torch.device, warmup: int, repeats: int
               ) -> tuple[dict[str, torch.Tensor | None], dict[str, dict[str, float]]]:
    """Median wall time of synced calls, the sides interleaved per repeat so that load from other processes hits
    all of them alike; on CUDA also the peak memory a call allocates on top of what was resident before it.
    A side that runs out of memory is reported as nan instead of ending the run."""
    outs: dict[str, torch.Tensor | None] = dict.fromkeys(sides)
    times: dict[str, list[float]] = {name: [] for name in sides}
    peaks: dict[str, float] = dict.fromkeys(sides, 0.0)
    failed: set[str] = set()

    def call(name: str) -> None:
        outs[name] = None
        try:
            outs[name] = sides[name]()
            sync(device)
        except torch.OutOfMemoryError:
            log.warning("%s: out of memory", name)
            failed.add(name)

    with torch.inference_mode():
        for name in sides:
            for _ in range(warmup if name not in failed else 0):
                call(name)
        for _ in range(repeats):
            for name in [n for n in sides if n not in failed]:
                sync(device)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                    resident = torch.cuda.memory_allocated(device)
                start = time.perf_counter()
                call(name)
                times[name].append(time.perf_counter() - start)
                if device.type == "cuda":
                    peaks[name] = max(peaks[name], (torch.cuda.max_memory_allocated(device) - resident) / 2**30)
    nan = float("nan")
    stats = {name: {"median_s": nan if name in failed else statistics.median(t),
                    "min_s": nan if name in failed else min(t)} for name, t in times.items()}
    if device.type == "cuda":
        for name in sides:
            stats[name]["peak_gib"] = nan if name in failed else peaks[name]
    return outs, stats


def import_comfy(device: torch.device) -> None:
    """ComfyUI in-process: its root first on sys.path (it has a top-level `nodes`), `--cpu` before model_management."""
    sys.path.insert(0, str(COMFY_DIR))
    import comfy.cli_args

    comfy.cli_args.args.cpu = device.type == "cpu"
    import comfy.ldm.modules.attention  # noqa: F401  (picks ComfyUI's attention function for this device)
    import comfy.ops  # noqa: F401


def bench_transformer(p: Preset, args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> list[dict]:
    import comfy.ldm.lightricks.model
    import comfy.ops
    from ltx_video.models.transformers.transformer3d import Transformer3DModel

    from ltx_core import Transformer3D, latent_positions

    config = transformer_config(p)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in Transformer3D(config).state_dict().items()}
    weights = random_weights(shapes, 0, device, dtype)
    ours = load_shared(lambda: Transformer3D(config, dtype=dtype), weights)
    reference = load_shared(lambda: Transformer3DModel.from_config(config), weights)
    comfy_model = load_shared(lambda: comfy.ldm.lightricks.model.LTXVModel(
        in_channels=128, cross_attention_dim=config["cross_attention_dim"], attention_head_dim=p.head_dim,
        num_attention_heads=p.heads, caption_channels=p.caption_channels, num_layers=p.layers,
        causal_temporal_positioning=True, dtype=dtype, operations=comfy.ops.disable_weight_init), weights)

    frames, height, width = p.latent
    batch, frame_rate = args.batch, 25.0
    g = torch.Generator(device=device).manual_seed(1)
    tokens = torch.randn(batch, frames * height * width, 128, generator=g, device=device).to(dtype)
    positions = latent_positions((batch, 128, frames, height, width), frame_rate, device=device)
    context = torch.randn(batch, p.text_len, p.caption_channels, generator=g, device=device).to(dtype)
    mask = torch.ones(batch, p.text_len, dtype=torch.long, device=device)
    mask[:, p.text_len * 3 // 4:] = 0  # padded prompt tail, as T5 prompts are
    sigma = torch.full((batch,), 0.7, device=device)
    latent = tokens.transpose(1, 2).reshape(batch, 128, frames, height, width)  # ComfyUI takes un-patchified latents

    sides = {
        "ours": lambda: ours(tokens, positions=positions, context=context, context_mask=mask, timestep=sigma),
        "reference": lambda: reference(tokens, positions, encoder_hidden_states=context, timestep=sigma[:, None],
                                       encoder_attention_mask=mask, return_dict=False)[0],
        "comfy": lambda: comfy_model(latent, sigma, context, mask, frame_rate=frame_rate).flatten(2).transpose(1, 2),
    }
    label = f"transformer {p.layers}×{p.heads}×{p.head_dim}, {tokens.shape[1]} tokens, batch {batch}"
    return run_sides(label, sides, device, args)


def bench_vae(p: Preset, args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> list[dict]:
    from comfy.ldm.lightricks.vae.causal_video_autoencoder import VideoVAE
    from ltx_video.models.autoencoders.causal_video_autoencoder import CausalVideoAutoencoder

    from ltx_core import CausalVideoVAE

    config = vae_config(p)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in CausalVideoVAE.from_config(config).state_dict().items()
                  if not k.startswith("encoder.")}
    for extra in ("mean-of-stds", "mean-of-stds_over_std-of-means", "channel"):  # in the files; ComfyUI keeps them
        shapes[f"per_channel_statistics.{extra}"] = torch.Size([128])
    weights = random_weights(shapes, 1, device, dtype)
    ours = load_shared(lambda: CausalVideoVAE.from_config(config, dtype=dtype), weights, "encoder.")
    reference = load_shared(lambda: CausalVideoAutoencoder.from_config(copy.deepcopy(config)), weights, "encoder.")
    # The official loader moves the statistics to plain buffers (CausalVideoAutoencoder.load_state_dict).
    reference.register_buffer("std_of_means", weights["per_channel_statistics.std-of-means"])
    reference.register_buffer("mean_of_means", weights["per_channel_statistics.mean-of-means"])
    comfy_vae = load_shared(lambda: VideoVAE(config=copy.deepcopy(config)), weights, "encoder.")

    frames, height, width = p.vae_latent
    g = torch.Generator(device=device).manual_seed(2)
    latents = torch.randn(1, 128, frames, height, width, generator=g, device=device).to(dtype)
    target = (1, 3, 8 * (frames - 1) + 1, 32 * height, 32 * width)
    t_ref = torch.tensor([0.05], device=device)
    chunk = args.chunk_frames or p.chunk_frames

    def reference_decode() -> torch.Tensor:
        z = latents * reference.std_of_means.view(1, -1, 1, 1, 1) + reference.mean_of_means.view(1, -1, 1, 1, 1)
        return reference.decode(z, return_dict=False, target_shape=target, timestep=t_ref)[0]

    sides = {
        "ours": lambda: ours.decode(latents, timestep=0.05, noise_scale=0.0, chunk_frames=frames),
        f"ours chunk={chunk}": lambda: ours.decode(latents, timestep=0.05, noise_scale=0.0, chunk_frames=chunk),
        "reference": reference_decode,
        "comfy": lambda: comfy_vae.decode(latents, timestep=0.05, noise_scale=0.0),
    }
    label = f"VAE decode {tuple(latents.shape[2:])} → {target[2]}×{target[3]}×{target[4]}"
    return run_sides(label, sides, device, args)


def run_sides(label: str, sides: dict[str, Callable[[], torch.Tensor]], device: torch.device,
              args: argparse.Namespace) -> list[dict]:
    """Time every side, then check each output against the reference's (ratios mean nothing if they differ)."""
    log.info("%s: timing %s", label, ", ".join(sides))
    outputs, stats = time_sides(sides, device, args.warmup, args.repeats)
    ref = outputs["reference"]
    ref = ref.float() if ref is not None else None
    rows = []
    for name, out in outputs.items():
        diff = ref_max = float("nan")
        if out is not None and ref is not None and out.shape == ref.shape:
            diff, ref_max = float((out.float() - ref).abs().max()), float(ref.abs().max())
        if out is not None and not torch.isfinite(out).all():
            log.warning("%s / %s: output has inf/nan", label, name)
        rows.append({"model": label, "side": name, **stats[name], "max_abs_diff": diff, "ref_max_abs": ref_max,
                     "vs_reference": stats[name]["median_s"] / stats["reference"]["median_s"],
                     "vs_comfy": stats[name]["median_s"] / stats["comfy"]["median_s"]})
    return rows


def print_table(rows: list[dict]) -> None:
    """One line per side; ratios are of medians, side ÷ reference and side ÷ comfy (below 1 = faster)."""
    has_mem = any("peak_gib" in r for r in rows)
    head = (f"{'model':<46} {'side':<12} {'median s':>9} {'min s':>8} {'÷ref':>6} {'÷comfy':>7} "
            f"{'max|Δ| / max|ref|':<16}")
    print(head + (f" {'+peak GiB':>9}" if has_mem else ""))
    print("-" * len(head + (" " * 10 if has_mem else "")))
    for r in rows:
        line = (f"{r['model']:<46.46} {r['side']:<12} {r['median_s']:>9.3f} {r['min_s']:>8.3f} "
                f"{r['vs_reference']:>6.2f} {r['vs_comfy']:>7.2f} {r['max_abs_diff']:>8.1e} / {r['ref_max_abs']:<5.2g}")
        print(line + (f" {r['peak_gib']:>9.2f}" if has_mem else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--preset", choices=tuple(PRESETS), default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1, help="transformer batch (2 or 3 with CFG/STG)")
    parser.add_argument("--chunk-frames", type=int, default=None, help="latent frames per chunk for ours chunked")
    parser.add_argument("--only", choices=("transformer", "vae"), default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(relativeCreated)7.0f ms  %(message)s")
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device")
    if args.preset.startswith("13b") and args.device != "cuda":
        parser.error("--preset 13b holds 13B weights (26 GB in bf16) and needs --device cuda")

    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    preset = PRESETS[args.preset]
    import_comfy(device)
    sys.path.append(str(REPO))  # after ComfyUI, whose `nodes` must win
    import comfy.ldm.modules.attention as comfy_attention

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # fp32 means fp32 everywhere
    env = {"preset": args.preset, **asdict(preset), "device": str(device), "dtype": args.dtype,
           "threads": torch.get_num_threads(), "torch": torch.__version__,
           "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
           "comfy_attention": comfy_attention.optimized_attention.__name__,
           "repeats": args.repeats, "warmup": args.warmup, "batch": args.batch}
    log.info("%s", ", ".join(f"{k}={v}" for k, v in env.items()))

    rows: list[dict] = []
    wall = time.perf_counter()
    if args.only in (None, "transformer"):
        rows += bench_transformer(preset, args, device, dtype)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if args.only in (None, "vae"):
        rows += bench_vae(preset, args, device, dtype)
    env["wall_s"] = time.perf_counter() - wall

    print()
    print_table(rows)
    print(f"\n{args.preset} preset, {device} {args.dtype}, {env['threads']} threads, ComfyUI attention "
          f"{env['comfy_attention']}; median of {args.repeats} after {args.warmup} warmup; "
          f"total wall {env['wall_s']:.1f} s")
    if args.json:
        args.json.write_text(json.dumps({"env": env, "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
