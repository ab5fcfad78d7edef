"""A tiny T5 text encoder built from the host's own T5 classes, as a real `comfy.sd.CLIP`.

It is what `CLIPLoader` (type `ltxv`) gives for `t5xxl_*.safetensors` — the same `comfy.text_encoders.lt`
model and tokenizer classes (the real T5 v1.1 tokenizer, vocabulary 32128) — with a small config: d_model 64
(the tiny transformer's `caption_channels`), 2 layers, random weights drawn from a seed. So `clip.tokenize`,
`clip.encode_from_tokens` and core's `CLIPTextEncode` work on it in process, in milliseconds.

In process::

    clip = tiny_t5.tiny_t5_clip(seed=0)

For a real server (ComfyUI's `CLIPLoader` only recognises full-size T5-XXL files), write the weights as a file
and install the test-only node pack `tests/host_nodes` next to the pack under test; its node
`LTX097TestTinyT5Loader` lists `models/text_encoders` and returns the CLIP::

    tiny_t5.write_tiny_t5(models_dir / "text_encoders" / tiny_t5.FILE_NAME)
    tiny_t5.install_test_nodes(workdir / "custom_nodes")   # before the server starts

Inside ComfyUI (the test node pack imports it there) it uses the running host; in a test process it imports the
host first with `comfy_host.import_host()` (CPU mode) if that has not happened yet.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

FILE_NAME = "ltxv097_tiny_t5.safetensors"
"""Default file name of the tiny T5 in `models/text_encoders`."""

TEST_NODES_DIR = Path(__file__).resolve().parent / "host_nodes"
"""The test-only custom node pack (`LTX097TestTinyT5Loader`)."""

TEST_NODES_NAME = "ltx097_test_nodes"
"""Folder name the test-only node pack is installed under in a host's custom_nodes."""

CONFIG = {"d_model": 64, "d_ff": 128, "d_kv": 16, "num_heads": 4, "num_layers": 2}
"""Overrides of ComfyUI's `t5_config_xxl.json` (vocabulary, gated GELU, relative buckets stay as in T5-XXL)."""

METADATA_KEY = "ltx097_tiny_t5"


def _ensure_host() -> None:
    """In a test process that has not imported ComfyUI yet, import it the way the tests do (CPU mode)."""
    if "comfy.model_management" not in sys.modules:  # inside ComfyUI, or after comfy_host.import_host()
        from support.comfy_host import import_host

        import_host()


def _model_options(config: dict, dtype: torch.dtype) -> dict:
    # SDClipModel reads "<model_name>_model_config" (model_name "t5xxl") and overrides the XXL json with it.
    return {"t5xxl_model_config": dict(config), "dtype": dtype}


def tiny_t5_state_dict(seed: int = 0, config: dict | None = None, scale: float = 0.5) -> dict[str, torch.Tensor]:
    """Seeded random weights for the tiny T5, with the key names of a real `t5xxl_*.safetensors` file."""
    _ensure_host()
    import comfy.ops
    import comfy.text_encoders.t5

    config = {**_xxl_config(), **(config or CONFIG)}
    model = comfy.text_encoders.t5.T5(config, torch.float32, "cpu", comfy.ops.manual_cast)
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in sorted(model.state_dict().items()):
        if name.endswith("layer_norm.weight"):
            value = 1.0 + 0.1 * torch.randn(tensor.shape, generator=generator)
        elif name == "shared.weight":
            value = torch.randn(tensor.shape, generator=generator)
        else:
            fan_in = tensor.shape[-1] if tensor.ndim > 1 else 1
            value = torch.randn(tensor.shape, generator=generator) * scale / fan_in ** 0.5
        state[name] = value.to(torch.float32).contiguous()
    return state


def _xxl_config() -> dict:
    import comfy.text_encoders.sd3_clip

    path = Path(comfy.text_encoders.sd3_clip.__file__).with_name("t5_config_xxl.json")
    return json.loads(path.read_text())


def tiny_t5_clip(seed: int = 0, *, state_dict: dict | None = None, config: dict | None = None,
                 dtype: torch.dtype = torch.float32):
    """A `comfy.sd.CLIP` exactly like core `CLIPLoader(type="ltxv")` builds it, with the tiny config."""
    _ensure_host()
    import comfy.sd
    import comfy.text_encoders.lt

    config = dict(config or CONFIG)
    state_dict = state_dict if state_dict is not None else tiny_t5_state_dict(seed, config)

    class Target:
        params: dict = {}
        clip = comfy.text_encoders.lt.ltxv_te()
        tokenizer = comfy.text_encoders.lt.LTXVT5Tokenizer

    parameters = sum(t.numel() for t in state_dict.values())
    clip = comfy.sd.CLIP(Target(), parameters=parameters, model_options=_model_options(config, dtype))
    missing, unexpected = clip.load_sd(state_dict)
    if missing or unexpected:
        raise ValueError(f"tiny T5 weights do not fit its config: missing {list(missing)[:5]}, "
                         f"unexpected {list(unexpected)[:5]}")
    return clip


def write_tiny_t5(path: Path | str, seed: int = 0, config: dict | None = None) -> Path:
    """Save the tiny T5 as a safetensors file (its config in the metadata) for `load_tiny_t5` / the test node."""
    from safetensors.torch import save_file

    config = dict(config or CONFIG)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tiny_t5_state_dict(seed, config), str(path), metadata={METADATA_KEY: json.dumps(config)})
    return path


def load_tiny_t5(path: Path | str, dtype: torch.dtype = torch.float32):
    """The CLIP of a file written by `write_tiny_t5`; a sentence if the file is something else."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if METADATA_KEY not in metadata:
        raise ValueError(f"'{os.path.basename(str(path))}' is not a tiny test T5 (written by "
                         "tests/support/tiny_t5.py); real T5-XXL files load with the core Load CLIP node, type ltxv")
    return tiny_t5_clip(state_dict=load_file(str(path)), config=json.loads(metadata[METADATA_KEY]), dtype=dtype)


def install_test_nodes(custom_nodes_dir: Path | str, name: str = TEST_NODES_NAME) -> Path:
    """Link the test-only node pack into a host's custom_nodes folder (do it before the server starts)."""
    link = Path(custom_nodes_dir) / name
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(TEST_NODES_DIR, target_is_directory=True)
    return link
