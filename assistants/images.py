"""Frames → a vision model's `pixel_values`, from the model folder's `preprocessor_config.json`.

Done on tensors here rather than with `transformers`' image processors, whose classes and defaults (slow / fast,
PIL / torchvision) change between releases: resize to the configured size, rescale, normalise.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .folders import read_json

PREPROCESSOR_FILE = "preprocessor_config.json"
_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}  # PIL resample codes used in processor configs


def image_config(folder: Path) -> dict:
    """The parts of `preprocessor_config.json` needed: target (height, width), mean, std, resample mode."""
    config = read_json(folder / PREPROCESSOR_FILE)
    size = config.get("size", {"height": 224, "width": 224})
    if isinstance(size, int):
        size = {"height": size, "width": size}
    if "shortest_edge" in size and "height" not in size:
        size = {"height": size["shortest_edge"], "width": size["shortest_edge"]}
    return {"size": (int(size["height"]), int(size["width"])),
            "mean": [float(v) for v in config.get("image_mean", [0.5, 0.5, 0.5])],
            "std": [float(v) for v in config.get("image_std", [0.5, 0.5, 0.5])],
            "normalize": bool(config.get("do_normalize", True)),
            "mode": _RESAMPLE.get(config.get("resample", 2), "bilinear")}


def pixel_values(frames: torch.Tensor, config: dict, *, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """`[N, H, W, 3]` in [0, 1] → `[N, 3, h, w]` resized and normalised as the model was trained."""
    images = frames[..., :3].permute(0, 3, 1, 2).to(device=device, dtype=torch.float32)
    mode = config["mode"]
    images = F.interpolate(images, size=config["size"], mode=mode,
                           **({} if mode == "nearest" else {"align_corners": False, "antialias": True}))
    images = images.clamp(0, 1)
    if config["normalize"]:
        mean = torch.tensor(config["mean"], device=device).view(1, 3, 1, 1)
        std = torch.tensor(config["std"], device=device).view(1, 3, 1, 1)
        images = (images - mean) / std
    return images.to(dtype)
