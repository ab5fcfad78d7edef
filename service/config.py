"""Which models and recipe serve the API: `ltxv097_api.json` in ComfyUI's user directory.

The file is optional; every key has a default matching the shipped one-node workflow
(`workflows/ltxv097_text_to_video_one_node.json`). On first start the server writes the defaults there so there is
a file to edit. Pure Python (no ComfyUI), so it is unit-tested on its own.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..hosted import CHECKPOINT_FILE, DEFAULT_RECIPE, RECIPE_OPTIONS, TEXT_ENCODER_FILE, UPSAMPLER_FILE
from ..ltx_core.arguments import is_number, is_whole
from ..media.limits import MAX_IMAGE_PIXELS, MAX_VIDEO_PIXELS
from ..mp4 import DEFAULT_CRF
from .retention import DEFAULT_RETENTION_HOURS
from .schema import MAX_IMAGE_BYTES, MAX_VIDEO_BYTES

logger = logging.getLogger(__name__)

FILE_NAME = "ltxv097_api.json"


def uses_upsampler(recipe: str) -> bool:
    """Whether the recipe may need the spatial upsampler (`auto` does when it picks a multi-scale recipe)."""
    return recipe.endswith("multi-scale") or recipe.startswith("auto")


@dataclass(frozen=True)
class ServiceConfig:
    checkpoint: str = CHECKPOINT_FILE
    weight_dtype: str = "auto"
    upsampler: str | None = UPSAMPLER_FILE
    text_encoder: str = TEXT_ENCODER_FILE
    text_encoder_loader: dict = field(default_factory=lambda: {
        "node": "CLIPLoader", "file_input": "clip_name", "inputs": {"type": "ltxv", "device": "default"}})
    """The node that loads `text_encoder`: its class, the input that takes the file name, other inputs."""
    recipe: str = DEFAULT_RECIPE
    """One of the Sampler's labels (`hosted.RECIPE_OPTIONS`); the hosted service's recipe unless set (`auto`: chosen
    from the checkpoint file)."""
    guidance: dict | None = None
    """Inputs of an LTX097GuidanceSettings node applied to every request (None: the recipe as it is)."""
    api_keys: tuple[str, ...] = ()
    """When not empty, every API call must send `Authorization: Key <one of these>`."""
    max_image_bytes: int = MAX_IMAGE_BYTES
    max_video_bytes: int = MAX_VIDEO_BYTES
    max_image_pixels: int = MAX_IMAGE_PIXELS
    """An image condition's width × height × frames, read from its header before it is decoded."""
    max_video_pixels: int = MAX_VIDEO_PIXELS
    """A video condition's width × height × frames, read from its container before it is decoded."""
    max_downloads: int = 8
    """Image / video downloads in flight for all requests together; a submit beyond them gets a 503 at once."""
    max_request_downloads: int = 2
    """Downloads in flight for one request."""
    crf: int = DEFAULT_CRF
    default_enable_safety_checker: bool = True
    """`enable_safety_checker` of a request that leaves it out (the service's default is on)."""
    default_expand_prompt: bool = False
    """`expand_prompt` of a request that leaves it out."""
    upload_lifetime_seconds: int = 24 * 3600
    """How long a file uploaded through the storage API is kept (a client may ask for less)."""
    result_retention_hours: float | None = DEFAULT_RETENTION_HOURS
    """How long a finished request (its status, result and mp4) is kept; null: forever (`service/retention.py`)."""
    database_url: str | None = None
    """PostgreSQL URL of the fleet's shared queue (README "Scale out"); LTX097_API_DATABASE_URL overrides it."""
    storage_dir: str | None = None
    """With a database: the folder every instance mounts for the result mp4s and the uploads (default: ComfyUI's
    output folder for results; uploads then stay in the user folder)."""
    gateway_only: bool = False
    """With a database: this instance answers the API but runs no jobs."""
    max_attempts: int = 3
    """With a database: how many workers may die running one job before it fails."""
    lease_seconds: float = 30.0
    """With a database: a job whose worker has not renewed its lease for this long goes back to the queue."""

    def request_defaults(self) -> dict:
        """The defaults these settings give the request fields."""
        return {"enable_safety_checker": self.default_enable_safety_checker,
                "expand_prompt": self.default_expand_prompt}

    def public(self) -> dict:
        """The settings for the start-up log (keys and the database password hidden)."""
        data = asdict(self)
        data["api_keys"] = f"{len(self.api_keys)} configured" if self.api_keys else "none"
        if self.database_url:
            from .pgqueue.settings import redact

            data["database_url"] = redact(self.database_url, self.database_url)
        return data


class ConfigError(ValueError):
    pass


def _check(config: ServiceConfig, path: Path) -> ServiceConfig:
    if config.recipe not in RECIPE_OPTIONS:
        raise ConfigError(f"{path}: recipe {config.recipe!r} is not one of {', '.join(RECIPE_OPTIONS)}")
    if config.recipe.endswith("multi-scale") and not config.upsampler:
        raise ConfigError(f"{path}: the {config.recipe} recipe needs an upsampler file")
    loader = config.text_encoder_loader
    if not isinstance(loader, dict) or not isinstance(loader.get("node"), str) or not isinstance(
            loader.get("file_input"), str):
        raise ConfigError(f"{path}: text_encoder_loader must be {{\"node\": ..., \"file_input\": ..., "
                          f"\"inputs\": {{...}}}}, not {loader!r}")
    for name in ("max_image_bytes", "max_video_bytes", "max_image_pixels", "max_video_pixels", "max_downloads",
                 "max_request_downloads", "crf"):
        value = getattr(config, name)
        if not is_whole(value, 0 if name == "crf" else 1):
            raise ConfigError(f"{path}: {name} must be a positive whole number, not {value!r}")
    if not isinstance(config.max_attempts, int) or config.max_attempts < 1:
        raise ConfigError(f"{path}: max_attempts must be an integer of at least 1, not {config.max_attempts!r}")
    if not isinstance(config.lease_seconds, (int, float)) or not config.lease_seconds >= 1:
        raise ConfigError(f"{path}: lease_seconds must be a number of at least 1, not {config.lease_seconds!r}")
    if any(not isinstance(key, str) or not key for key in config.api_keys):
        raise ConfigError(f"{path}: api_keys must be a list of non-empty strings")
    for name in ("default_enable_safety_checker", "default_expand_prompt"):
        if not isinstance(getattr(config, name), bool):
            raise ConfigError(f"{path}: {name} must be true or false, not {getattr(config, name)!r}")
    if not is_whole(config.upload_lifetime_seconds, 60):
        raise ConfigError(f"{path}: upload_lifetime_seconds must be a whole number of seconds, at least 60")
    retention = config.result_retention_hours
    if retention is not None and not (is_number(retention) and retention > 0):
        raise ConfigError(f"{path}: result_retention_hours must be a number of hours above 0 (or null: keep every "
                          f"result), not {retention!r}")
    return config


def load_config(user_dir: Path, *, write_default: bool = True) -> ServiceConfig:
    """Read `<user_dir>/ltxv097_api.json` (unknown keys are an error); absent: the defaults, written there."""
    path = Path(user_dir) / FILE_NAME
    if not path.exists():
        config = ServiceConfig()
        if write_default:
            path.parent.mkdir(parents=True, exist_ok=True)
            data = asdict(config)
            data["api_keys"] = []
            path.write_text(json.dumps(data, indent=2) + "\n")
        return config
    try:
        data = json.loads(path.read_text())
    except ValueError as error:
        raise ConfigError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    known = {f.name for f in fields(ServiceConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown keys {', '.join(unknown)}; the keys are {', '.join(sorted(known))}")
    if "api_keys" in data:
        data["api_keys"] = tuple(data["api_keys"] or ())
    return _check(ServiceConfig(**data), path)
