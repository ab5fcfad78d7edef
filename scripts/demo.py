"""`make demo`: load an LTX-Video checkpoint with ltx_core and show what it holds.

With `CHECKPOINT=/path/to/ltxv-13b-0.9.7-dev.safetensors` it loads that file (on the meta-free path the nodes
use) and prints its config. Without one it builds a tiny random model in the official layout, loads it the same
way and runs a transformer step and a VAE decode, so the whole path is exercised on a machine with no weights.
Rendering a real video through the bundled workflow arrives with the node pack.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))
sys.path.append(str(ROOT / "tests"))

from ltx_core import latent_positions, load_checkpoint  # noqa: E402

log = logging.getLogger("demo")


def summarise(path: str, dtype: torch.dtype) -> None:
    checkpoint = load_checkpoint(path, dtype=dtype)
    for section in ("transformer", "vae", "scheduler"):
        if section in checkpoint.config:
            log.info("%s config:\n%s", section, json.dumps(checkpoint.config[section], indent=1, default=str))
    if checkpoint.transformer is not None:
        count = sum(p.numel() for p in checkpoint.transformer.parameters())
        log.info("transformer: %d blocks, %.2fB parameters", len(checkpoint.transformer.transformer_blocks),
                 count / 1e9)
    if checkpoint.vae is not None:
        log.info("vae: %.1fM parameters", sum(p.numel() for p in checkpoint.vae.parameters()) / 1e6)


def tiny_round_trip() -> None:
    import tiny

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ltxv-tiny-random.safetensors"
        tconfig, vconfig = tiny.transformer_config(), tiny.vae_config()
        tiny.save_single_file(path, transformer=tiny.reference_transformer(tconfig), transformer_config_=tconfig,
                              vae=tiny.reference_vae(vconfig), vae_config_=vconfig)
        summarise(str(path), torch.float32)
        checkpoint = load_checkpoint(path)
        latents = torch.randn(1, 128, 3, 2, 3)
        tokens = latents.flatten(2).transpose(1, 2)
        with torch.no_grad():
            velocity = checkpoint.transformer(tokens, positions=latent_positions(latents.shape, 25.0),
                                              context=torch.randn(1, 8, tconfig["caption_channels"]),
                                              context_mask=torch.ones(1, 8), timestep=torch.tensor([1.0]))
            frames = checkpoint.vae.decode(latents - velocity.transpose(1, 2).reshape(latents.shape))
        log.info("tiny random model: velocity %s, decoded video %s (frames, 8k+1)", tuple(velocity.shape),
                 tuple(frames.shape))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=os.environ.get("CHECKPOINT"),
                        help="an LTX-Video .safetensors file (default: a tiny random model)")
    parser.add_argument("--dtype", default="bf16", choices=["fp32", "bf16", "fp16", "fp8_e4m3fn", "fp8_e5m2"])
    args = parser.parse_args()
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16,
              "fp8_e4m3fn": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}
    if args.checkpoint:
        summarise(args.checkpoint, dtypes[args.dtype])
    else:
        log.info("no CHECKPOINT given: using a tiny random model in the official layout")
        tiny_round_trip()


if __name__ == "__main__":
    main()
