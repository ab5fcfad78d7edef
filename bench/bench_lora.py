#!/usr/bin/env python
"""Time attaching, switching and removing LoRAs on an LTX-Video transformer the way the pack does it in ComfyUI:
`apply_lora_stack` (read + map the file, patches on a ModelPatcher clone) and `load_models_gpu` (ComfyUI merges the
patches into the weights, or restores them), and the cost of a transformer forward with and without the LoRA.

The model is random (13B shape on a GPU, a smaller one on the CPU), the LoRA a random rank-r diffusers/PEFT file
like the LTX-Video trainer writes (attention q/k/v/out of attn1 and attn2 in every block; `--targets attn+ff` adds
the feed-forward layers). Nothing is read from a real checkpoint: "base load" is the time ComfyUI takes to move the
resident weights to the device, the comparison point for "apply without reloading".

    .venv/bin/python bench/bench_lora.py                                   # cpu preset, fp32
    .venv/bin/python bench/bench_lora.py --preset 13b --device cuda --dtype bf16 --json lora13b.json
    .venv/bin/python bench/bench_lora.py --preset 13b --device cuda --dtype fp8 --json lora13b_fp8.json
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
COMFY_DIR = Path(os.environ.get("COMFYUI_DIR") or REPO / ".comfyui")
PACK = "ltxv097_bench"


@dataclass(frozen=True)
class Preset:
    layers: int
    heads: int
    head_dim: int
    caption_channels: int
    tokens: tuple[int, int, int]  # latent (F, H, W) for the forward timing
    text_len: int
    rank: int


PRESETS = {
    "tiny": Preset(2, 2, 32, 64, (2, 2, 2), 8, 4),
    # 2B width (2048), 8 blocks; 320×256×9 frames (160 tokens); rank 64
    "cpu": Preset(8, 32, 64, 4096, (2, 8, 10), 128, 64),
    # the 13B: 48 blocks of 4096; 768×512×97 frames (4992 tokens); rank 128 (the official distilled LoRA's)
    "13b": Preset(48, 32, 128, 4096, (13, 16, 24), 128, 128),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp8": torch.float8_e4m3fn}


def transformer_config(p: Preset) -> dict:
    dim = p.heads * p.head_dim
    return {"_class_name": "Transformer3DModel", "activation_fn": "gelu-approximate", "attention_bias": True,
            "attention_head_dim": p.head_dim, "caption_channels": p.caption_channels, "cross_attention_dim": dim,
            "in_channels": 128, "out_channels": 128, "norm_elementwise_affine": False, "norm_eps": 1e-6,
            "num_attention_heads": p.heads, "num_layers": p.layers, "qk_norm": "rms_norm",
            "standardization_norm": "rms_norm", "positional_embedding_type": "rope",
            "positional_embedding_theta": 10000.0, "positional_embedding_max_pos": [20, 2048, 2048],
            "timestep_scale_multiplier": 1000, "causal_temporal_positioning": True}


def import_host_and_pack(device: torch.device) -> types.SimpleNamespace:
    """ComfyUI in-process (CPU mode unless CUDA) and this repo's `nodes.lora` without the other node modules."""
    sys.path.insert(0, str(COMFY_DIR))
    import comfy.cli_args

    comfy.cli_args.args.cpu = device.type == "cpu"
    import comfy.model_management
    import comfy.model_patcher
    import comfy.ops
    import folder_paths

    for name, path in ((PACK, REPO), (f"{PACK}.nodes", REPO / "nodes")):  # packages without running __init__
        module = types.ModuleType(name)
        module.__path__ = [str(path)]
        sys.modules[name] = module
    spec = importlib.util.spec_from_file_location(f"{PACK}.ltx_core", REPO / "ltx_core" / "__init__.py",
                                                  submodule_search_locations=[str(REPO / "ltx_core")])
    ltx_core = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = ltx_core
    spec.loader.exec_module(ltx_core)
    lora = importlib.import_module(f"{PACK}.nodes.lora")
    pack_ops = importlib.import_module(f"{PACK}.nodes.ops")
    sockets = importlib.import_module(f"{PACK}.nodes.sockets")
    return types.SimpleNamespace(mm=comfy.model_management, patcher=comfy.model_patcher, ops=comfy.ops,
                                 folder_paths=folder_paths, ltx_core=ltx_core, lora=lora, pack_ops=pack_ops,
                                 sockets=sockets)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn: Callable[[], object]) -> tuple[float, object]:
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return time.perf_counter() - start, result


def build_model(host, p: Preset, dtype: torch.dtype, device: torch.device, offload: torch.device):
    """A random transformer in `dtype` storage on the offload device, wrapped like the loader node does."""
    compute = torch.bfloat16 if dtype == torch.float8_e4m3fn else dtype
    operations = host.pack_ops.operations_for(dtype, compute)
    config = transformer_config(p)
    with torch.device("meta"):
        model = host.ltx_core.Transformer3D(config, dtype=compute, compute_dtype=compute, operations=operations,
                                            attention=host.pack_ops.comfy_attention)
    generator = torch.Generator(device=device).manual_seed(0)
    weights = {}
    for name, tensor in model.state_dict().items():
        fan_in = tensor.shape[1] if tensor.ndim == 2 else 1
        value = torch.randn(tensor.shape, generator=generator, device=device, dtype=torch.float32) / fan_in ** 0.5
        is_matrix = tensor.ndim == 2 and name.endswith(".weight") and "scale_shift" not in name
        weights[name] = value.to(dtype if is_matrix else compute).to(offload)
    model.load_state_dict(weights, assign=True)
    model.eval().requires_grad_(False)
    patcher = host.patcher.ModelPatcher(model, load_device=device, offload_device=offload)
    return host.sockets.LTXModel(patcher=patcher, config={"transformer": config}, path="<random>", dtype=dtype,
                                 compute_dtype=compute)


def write_lora(path: Path, model, rank: int, targets: str, seed: int) -> int:
    """A random diffusers/PEFT LoRA (bf16) for `model`'s attention (and feed-forward) layers; returns bytes."""
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    wanted = (".attn1.to_", ".attn2.to_") + ((".ff.net.",) if targets == "attn+ff" else ())
    for name, module in model.transformer.named_modules():
        if isinstance(module, torch.nn.Linear) and name.startswith("transformer_blocks.") and any(
                w in name for w in wanted):
            out_features, in_features = module.weight.shape
            tensors[f"transformer.{name}.lora_A.weight"] = (torch.randn(rank, in_features, generator=generator)
                                                            / in_features ** 0.5).to(torch.bfloat16)
            tensors[f"transformer.{name}.lora_B.weight"] = (torch.randn(out_features, rank, generator=generator)
                                                            * 0.01).to(torch.bfloat16)
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path.stat().st_size


def forward_fn(host, model, p: Preset, device: torch.device) -> Callable[[], torch.Tensor]:
    generator = torch.Generator(device="cpu").manual_seed(1)
    frames, height, width = p.tokens
    tokens = torch.randn(1, frames * height * width, 128, generator=generator).to(device)
    positions = host.ltx_core.latent_positions((1, 128, frames, height, width), 25.0, device=device)
    context = torch.randn(1, p.text_len, p.caption_channels, generator=generator).to(device)
    mask = torch.ones(1, p.text_len, dtype=torch.long, device=device)
    sigma = torch.tensor([0.7], device=device)

    def run():
        with torch.no_grad():
            return model.transformer(tokens, positions=positions, context=context, context_mask=mask,
                                     timestep=sigma)

    return run


def median_time(device, fn, repeats: int) -> float:
    return statistics.median(timed(device, fn)[0] for _ in range(repeats))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=list(PRESETS), default="cpu")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dtype", choices=list(DTYPES), default=None, help="weight storage (default: fp32 on the "
                        "CPU, bf16 on CUDA); fp8 computes in bf16 and keeps LoRA patches on the fly")
    parser.add_argument("--rank", type=int, default=None)
    parser.add_argument("--targets", choices=["attn", "attn+ff"], default="attn")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-forward", action="store_true", help="skip the forward timings")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    p = PRESETS[args.preset]
    device = torch.device(args.device)
    if args.preset == "13b" and device.type != "cuda":
        parser.error("the 13b preset needs --device cuda (26 GB of weights in bf16)")
    dtype = DTYPES[args.dtype or ("bf16" if device.type == "cuda" else "fp32")]
    rank = args.rank or p.rank
    torch.set_grad_enabled(False)

    host = import_host_and_pack(device)
    offload = host.mm.unet_offload_device()
    workdir = Path(tempfile.mkdtemp(prefix="bench_lora_"))
    loras = workdir / "loras"
    loras.mkdir()
    host.folder_paths.folder_names_and_paths["loras"][0].insert(0, str(loras))

    rows: list[tuple[str, float, str]] = []

    def row(label: str, seconds: float, note: str = "") -> None:
        rows.append((label, seconds, note))
        print(f"{label:<58} {seconds:>9.3f} s  {note}", flush=True)

    print(f"# {args.preset} preset: {p.layers} blocks × {p.heads * p.head_dim}, {dtype} storage on {device}, "
          f"LoRA rank {rank} on {args.targets}", flush=True)
    seconds, model = timed(device, lambda: build_model(host, p, dtype, device, offload))
    print(f"(built a random model in {seconds:.1f} s: {model.patcher.model_size() / 2**30:.2f} GiB)", flush=True)
    sizes = [write_lora(loras / f"lora_{i}.safetensors", model, rank, args.targets, seed=i) for i in range(2)]
    layers = sum(1 for k in host.lora.read_lora_file(str(loras / "lora_0.safetensors"))[0] if k.endswith("A.weight"))
    host.lora._file_cache.clear()
    print(f"(LoRA files: {layers} layers, {sizes[0] / 2**20:.0f} MiB each)", flush=True)

    def stack(index: int, scale: float):
        return [{"path": f"lora_{index}.safetensors", "scale": scale}]

    load = host.mm.load_models_gpu
    row("base load (weights to the device)", timed(device, lambda: load([model.patcher]))[0])
    forward = None if args.no_forward else forward_fn(host, model, p, device)
    if forward is not None:
        forward(), forward()  # warm-up
        row("forward, no LoRA (median)", median_time(device, forward, args.repeats), f"{p.tokens} latent")

    seconds, patched = timed(device, lambda: host.lora.apply_lora_stack(model, stack(0, 1.0)))
    row("apply_lora_stack, first time (read + map + patches)", seconds, "CPU work, file from disk")
    row("load with LoRA (merge into resident weights)", timed(device, lambda: load([patched.patcher]))[0])
    if forward is not None:
        patched_forward = forward_fn(host, patched, p, device)
        patched_forward()
        row("forward with LoRA (median)", median_time(device, patched_forward, args.repeats),
            "fp8: patches applied on the fly" if dtype == torch.float8_e4m3fn else "merged: same work as base")

    def switch(label: str, stack_) -> None:
        nonlocal patched
        seconds_apply, patched = timed(device, lambda: host.lora.apply_lora_stack(model, stack_))
        seconds_load = timed(device, lambda: load([patched.patcher]))[0]
        row(label, seconds_apply + seconds_load, f"apply {seconds_apply:.3f} s + load {seconds_load:.3f} s")

    switch("switch scale 1.0 → 0.5 (file cached)", stack(0, 0.5))
    switch("switch to another LoRA (first read)", stack(1, 1.0))
    switch("stack both LoRAs", stack(0, 0.8) + stack(1, 0.6))
    row("remove the LoRAs (restore base weights)", timed(device, lambda: load([model.patcher]))[0])
    switch("re-apply LoRA 0 (file cached)", stack(0, 1.0))

    if args.json:
        env = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
               "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
               "threads": torch.get_num_threads()}
        args.json.write_text(json.dumps({"preset": args.preset, "dtype": str(dtype), "rank": rank,
                                         "targets": args.targets, "lora_layers": layers, "lora_mib": sizes[0] / 2**20,
                                         "env": env, "rows": [{"step": r[0], "seconds": r[1], "note": r[2]}
                                                              for r in rows]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
