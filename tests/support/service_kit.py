"""Test helpers for the HTTP API: a ComfyUI server with the tiny models and an API config, TLS, mp4 checks.

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from support import e2e_workflows, tiny_t5
from support.comfy_host import write_standard_models
from support.comfy_server import ComfyServer

APP_ID = "fal-ai/ltx-video-lora"
SMALL = {"resolution": "480p", "aspect_ratio": "1:1", "number_of_frames": 9, "number_of_steps": 2,
         "frame_rate": 12}
"""The smallest request: 480×480, 9 frames (one latent frame pair), 2 steps of the single-scale recipe."""


def api_config(models: dict, **changes) -> dict:
    """ltxv097_api.json for the tiny models: single-scale recipe, tiny T5 loader, STG on a tiny block."""
    config = {"checkpoint": models["checkpoint"], "upsampler": None, "text_encoder": models["t5"],
              "text_encoder_loader": {"node": "LTX097TestTinyT5Loader", "file_input": "t5_name", "inputs": {}},
              "recipe": "0.9.7 dev single-scale", "guidance": dict(e2e_workflows.TINY_GUIDANCE)}
    config.update(changes)
    return config


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost (openssl CLI); returns (cert, key)."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def api_server(workdir: Path, *, tls: tuple[Path, Path] | None = None, config_changes: dict | None = None,
               models: dict | None = None, allow_hosts: list[str] | None = None) -> ComfyServer:
    """A (not yet started) ComfyServer with the tiny models, the test node pack and ltxv097_api.json; `allow_hosts`:
    the only local addresses it may fetch from (see `ComfyServer`)."""
    extra = ["--tls-certfile", str(tls[0]), "--tls-keyfile", str(tls[1])] if tls else []
    server = ComfyServer(workdir, extra_args=extra, allow_hosts=allow_hosts)
    if models is None:
        models = write_standard_models(server.models_dir)
        tiny_t5.install_test_nodes(server.workdir / "custom_nodes")
        models["t5"] = tiny_t5.write_tiny_t5(server.model_path("text_encoders", tiny_t5.FILE_NAME)).name
    server.models = models
    (server.workdir / "user" / "ltxv097_api.json").write_text(
        json.dumps(api_config(models, **(config_changes or {})), indent=1))
    return server


def mp4_facts(data: bytes, workdir: Path) -> dict:
    """Frames, width, height and fps of an mp4 (PyAV)."""
    import av

    path = workdir / "check.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return {"frames": frames, "width": stream.codec_context.width, "height": stream.codec_context.height,
                "fps": float(stream.average_rate)}
