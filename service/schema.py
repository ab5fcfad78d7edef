"""The hosted service's input schema: defaults, validation, and its 422 error shape.

`parse_input(body)` turns a request's JSON into a `GenerationInput` or raises `InputError`, whose `detail` is the
service's `[{loc, msg, type}]` list (one entry per bad field, each naming the field, the value and what is allowed).
Pure Python: no ComfyUI, so it is unit-tested on its own.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from ..fetch import redact_url
from ..hosted import (
    ASPECT_RATIOS,
    DEFAULT_ASPECT_RATIO,
    DEFAULT_FRAME_RATE,
    DEFAULT_FRAMES,
    DEFAULT_NEGATIVE_PROMPT,
    DEFAULT_RESOLUTION,
    DEFAULT_STEPS,
    FRAME_RATE_RANGE,
    FRAMES_RANGE,
    MAX_SEED,
    RESOLUTIONS,
    STEPS_RANGE,
)
from ..ltx_core.arguments import is_number, is_whole

DRAWN_SEED_LIMIT = 2 ** 32
"""Seeds the server draws stay below 2**32, so JavaScript clients read them exactly."""
MAX_PROMPT_CHARS = 20_000
MAX_LORAS = 8
MAX_START_FRAME = 256
MAX_CONDITIONS = 8
"""Images plus videos one multiconditioning request may pin to frames."""
MAX_IMAGE_BYTES, MAX_VIDEO_BYTES = 20 * 1024 * 1024, 200 * 1024 * 1024
"""A condition image's and video's size in bytes unless the config sets `max_image_bytes` / `max_video_bytes`."""
MAX_URL_CHARS = 8_192
"""An http(s) URL's length; a data URI is bounded by the media size limits instead (`data_uri_chars`)."""
TEXT_TO_VIDEO, IMAGE_TO_VIDEO, MULTICONDITIONING = "text-to-video", "image-to-video", "multiconditioning"
ENDPOINTS = (TEXT_TO_VIDEO, IMAGE_TO_VIDEO, MULTICONDITIONING)
"""The family's endpoints: `fal-ai/ltx-video-lora`, `…/image-to-video`, `…/multiconditioning`."""


def data_uri_chars(max_bytes: int) -> int:
    """The longest data URI that can hold `max_bytes` of media: base64 (4 characters per 3 bytes) plus its header."""
    return 4 * -(-max_bytes // 3) + 256


def is_local_path(path: str) -> bool:
    """An absolute path, a home or drive path, or one that climbs out of its folder with `..`."""
    path = path.strip()
    return (path.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:[\\/]", path) is not None
            or ".." in re.split(r"[\\/]+", path))


@dataclass(frozen=True)
class LoraWeight:
    path: str
    weight_name: str | None = None
    scale: float = 1.0

    def as_json(self) -> dict:
        entry: dict[str, Any] = {"path": self.path, "scale": self.scale}
        if self.weight_name:
            entry["weight_name"] = self.weight_name
        return entry


@dataclass(frozen=True)
class MediaCondition:
    """An image or video condition: `url` is an http(s) URL or a base64 data URI, fetched at submit time."""
    kind: str  # "image" | "video"
    url: str
    start_frame_number: int = 0
    strength: float = 1.0
    origin: tuple = field(default=(), compare=False)
    """Where the URL was in the request (`("images", 0, "image_url")`); empty: the top-level `<kind>_url`."""

    @property
    def loc(self) -> tuple:
        return self.origin or (f"{self.kind}_url",)


@dataclass(frozen=True)
class GenerationInput:
    prompt: str
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    loras: tuple[LoraWeight, ...] = ()
    resolution: str = DEFAULT_RESOLUTION
    aspect_ratio: str = DEFAULT_ASPECT_RATIO
    number_of_frames: int = DEFAULT_FRAMES
    number_of_steps: int = DEFAULT_STEPS
    frame_rate: int = DEFAULT_FRAME_RATE
    seed: int = 0
    expand_prompt: bool = False
    reverse_video: bool = False
    enable_safety_checker: bool = True
    conditions: tuple[MediaCondition, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class MediaLimits:
    """Byte limits of condition media (the config's); a data URI may be as long as its base64 needs."""
    max_image_bytes: int = MAX_IMAGE_BYTES
    max_video_bytes: int = MAX_VIDEO_BYTES

    def url_chars(self, kind: str) -> int:
        return data_uri_chars(self.max_image_bytes if kind == "image" else self.max_video_bytes)


class InputError(ValueError):
    """HTTP 422 in the service's shape: `detail` is a list of `{loc, msg, type}`."""

    def __init__(self, detail: list[dict]):
        super().__init__("; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in detail))
        self.detail = detail


def field_error(loc: tuple, msg: str, kind: str = "value_error") -> dict:
    return {"loc": ["body", *loc], "msg": msg, "type": kind}


class _Checker:
    """Collects every bad field of one body instead of stopping at the first."""

    def __init__(self, body: dict, limits: MediaLimits):
        self.body, self.errors, self.limits = body, [], limits

    def fail(self, loc: tuple, msg: str, kind: str = "value_error"):
        self.errors.append(field_error(loc, msg, kind))
        return None

    def present(self, name: str, src: dict, loc: tuple, *, nullable: bool = False) -> bool:
        """Whether the field was given; `null` for a field that has no null value is a 422 (omit it instead)."""
        if name not in src:
            return False
        if src[name] is None and not nullable:
            self.fail((*loc, name), "is null; send a value or leave the field out for its default", "null_type")
            return False
        return src[name] is not None

    def string(self, name: str, default: str | None = None, *, required: bool = False, src: dict | None = None,
               loc: tuple = (), max_chars: int = MAX_PROMPT_CHARS, nullable: bool = False) -> str | None:
        src = self.body if src is None else src
        if required and src.get(name) is None:
            return self.fail((*loc, name), "field required", "missing")
        if not self.present(name, src, loc, nullable=nullable):
            return default
        value = src[name]
        if not isinstance(value, str):
            return self.fail((*loc, name), f"{_shown(value)} is not a string", "string_type")
        if len(value) > max_chars:
            return self.fail((*loc, name), f"is {len(value)} characters long; at most {max_chars}",
                             "string_too_long")
        return value

    def choice(self, name: str, options: tuple, default: str) -> str | None:
        if not self.present(name, self.body, ()):
            return default
        value = self.body[name]
        if not isinstance(value, str) or value not in options:
            return self.fail((name,), f"{_shown(value)} is not allowed; one of {', '.join(options)}",
                             "literal_error")
        return value

    def integer(self, name: str, bounds: tuple[int, int], default: int | None, *, src: dict | None = None,
                loc: tuple = (), nullable: bool = False) -> int | None:
        src = self.body if src is None else src
        if not self.present(name, src, loc, nullable=nullable):
            return default
        value = src[name]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not is_whole(value):
            return self.fail((*loc, name), f"{_shown(value)} is not an integer", "int_type")
        low, high = bounds
        if not is_whole(value, low, high):
            return self.fail((*loc, name), f"{value} is out of range; allowed {low} to {high}", "value_error")
        return value

    def number(self, name: str, bounds: tuple[float, float], default: float, *, src: dict, loc: tuple) -> float:
        if not self.present(name, src, loc):
            return default
        value = src[name]
        if not is_number(value, finite=False):  # NaN and infinity are numbers out of range
            return self.fail((*loc, name), f"{_shown(value)} is not a number", "float_type")
        low, high = bounds
        if not is_number(value, low, high):
            return self.fail((*loc, name), f"{value} is out of range; allowed {low} to {high}", "value_error")
        return float(value)

    def boolean(self, name: str, default: bool) -> bool | None:
        if not self.present(name, self.body, ()):
            return default
        value = self.body[name]
        if not isinstance(value, bool):
            return self.fail((name,), f"{_shown(value)} is not a boolean (true or false)", "bool_type")
        return value

    def loras(self) -> tuple[LoraWeight, ...]:
        if not self.present("loras", self.body, ()):
            return ()
        value = self.body["loras"]
        if not isinstance(value, list):
            return self.fail(("loras",), f"{_shown(value)} is not a list of {{path, weight_name, scale}}",
                             "list_type") or ()
        if len(value) > MAX_LORAS:
            return self.fail(("loras",), f"{len(value)} LoRAs; at most {MAX_LORAS}", "too_long") or ()
        loras = []
        for index, entry in enumerate(value):
            loc = ("loras", index)
            if not isinstance(entry, dict):
                self.fail(loc, f"{_shown(entry)} is not an object {{path, weight_name, scale}}", "dict_type")
                continue
            path = self.string("path", required=True, src=entry, loc=loc)
            if path is not None and not path.strip():
                path = self.fail((*loc, "path"), "is empty; give a URL, a Hugging Face repository or a file name")
            elif path is not None and is_local_path(path):
                path = self.fail((*loc, "path"), f"{path!r} is a path on the server; local files are not read: give "
                                                 "a URL, a Hugging Face repository or a file name in models/loras")
            for name in sorted(set(entry) - LORA_FIELDS):
                self.fail((*loc, name), f"unknown field; the fields are {', '.join(sorted(LORA_FIELDS))}",
                          "extra_forbidden")
            weight_name = self.string("weight_name", src=entry, loc=loc, nullable=True)
            scale = self.number("scale", (-10.0, 10.0), 1.0, src=entry, loc=loc)
            if path is not None and scale is not None:
                loras.append(LoraWeight(path.strip(), weight_name or None, scale))
        return tuple(loras)

    def media_url(self, name: str, kind: str, *, src: dict, loc: tuple, required: bool = False) -> str | None:
        """An http(s) URL or a data URI, as long as the media limits allow (the prompt's limit is not theirs)."""
        url = self.string(name, required=required, src=src, loc=loc, max_chars=self.limits.url_chars(kind))
        if url is None:
            return None
        if url[:5].lower() == "data:":  # schemes in any case, as the fetcher reads them (and LoRA URLs)
            return url
        if not url.lower().startswith(("http://", "https://")):
            return self.fail((*loc, name), f"{redact_url(url)[:80]!r} is not an http(s) URL or a base64 data "
                                           "URI (local files are not read)", "url_scheme")
        if len(url) > MAX_URL_CHARS:
            return self.fail((*loc, name), f"the URL is {len(url)} characters long; at most {MAX_URL_CHARS}",
                             "string_too_long")
        return url

    def condition(self, kind: str, *, src: dict | None = None, loc: tuple = (),
                  required: bool = False) -> MediaCondition | None:
        src = self.body if src is None else src
        url = self.media_url(f"{kind}_url", kind, src=src, loc=loc, required=required)
        if url is None:
            return None
        start = self.integer("start_frame_number", (0, MAX_START_FRAME), 0, src=src, loc=loc)
        if kind == "video" and start is not None and start % 8:
            start = self.fail((*loc, "start_frame_number"), f"{start} is not a multiple of 8 (a video condition "
                                                            "starts at frame 0, 8, 16, ...)")
        strength = self.number("strength", (0.0, 1.0), 1.0, src=src, loc=loc)
        if start is None or strength is None:
            return None
        return MediaCondition(kind, url, start, strength, (*loc, f"{kind}_url") if loc else ())

    def condition_list(self, name: str, kind: str) -> list[MediaCondition]:
        """`images` / `videos` of a multiconditioning request: lists of {<kind>_url, start_frame_number, strength}."""
        if not self.present(name, self.body, ()):
            return []
        value = self.body[name]
        if not isinstance(value, list):
            return self.fail((name,), f"{_shown(value)} is not a list of {{{kind}_url, start_frame_number, "
                                      "strength}", "list_type") or []
        conditions = []
        fields = {f"{kind}_url", "start_frame_number", "strength"}
        for index, entry in enumerate(value):
            if not isinstance(entry, dict):
                self.fail((name, index), f"{_shown(entry)} is not an object {{{kind}_url, start_frame_number, "
                                         "strength}", "dict_type")
                continue
            for extra in sorted(set(entry) - fields):
                self.fail((name, index, extra), f"unknown field; the fields are {', '.join(sorted(fields))}",
                          "extra_forbidden")
            condition = self.condition(kind, src=entry, loc=(name, index), required=True)
            if condition is not None:
                conditions.append(condition)
        return conditions


def _shown(value: Any) -> str:
    """A caller's value in a message, cut short (a wrong type may be a whole data URI)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


COMMON_FIELDS = frozenset({
    "prompt", "negative_prompt", "loras", "resolution", "aspect_ratio", "number_of_frames", "number_of_steps",
    "frame_rate", "seed", "expand_prompt", "reverse_video", "enable_safety_checker"})
ENDPOINT_FIELDS = {
    TEXT_TO_VIDEO: COMMON_FIELDS | {"image_url", "video_url", "start_frame_number", "strength"},
    IMAGE_TO_VIDEO: COMMON_FIELDS | {"image_url"},
    MULTICONDITIONING: COMMON_FIELDS | {"images", "videos"},
}
"""The input fields of each endpoint (the hosted pages' schemas; text to video also takes one image or video)."""
LORA_FIELDS = frozenset({"path", "weight_name", "scale"})


def _conditions(check: _Checker, endpoint: str) -> tuple[MediaCondition, ...]:
    body = check.body
    if endpoint == IMAGE_TO_VIDEO:
        return tuple(c for c in (check.condition("image", required=True),) if c is not None)
    if endpoint == MULTICONDITIONING:
        conditions = check.condition_list("images", "image") + check.condition_list("videos", "video")
        if len(conditions) > MAX_CONDITIONS:
            check.fail(("images",), f"{len(conditions)} images and videos; at most {MAX_CONDITIONS} in all",
                       "too_long")
        return tuple(conditions)
    if body.get("image_url") is not None and body.get("video_url") is not None:
        check.fail(("video_url",), "give either image_url or video_url, not both")
    if not any(body.get(f"{kind}_url") is not None for kind in ("image", "video")):
        for name in ("start_frame_number", "strength"):
            if name in body:
                check.fail((name,), "is only used with image_url or video_url")
    return tuple(c for c in (check.condition("image"), check.condition("video")) if c is not None)


def parse_input(body: Any, *, draw_seed=None, endpoint: str = TEXT_TO_VIDEO, limits: MediaLimits = MediaLimits(),
                defaults: dict | None = None) -> GenerationInput:
    """Validate a request body for one of the `ENDPOINTS`; a missing (or null) seed is drawn with `draw_seed()`
    (default: random). `defaults` replaces the defaults of `expand_prompt` / `enable_safety_checker` (a server
    setting)."""
    if not isinstance(body, dict):
        raise InputError([field_error((), "the body must be a JSON object of the input fields, not "
                                          f"{type(body).__name__}", "dict_type")])
    known, defaults = ENDPOINT_FIELDS[endpoint], defaults or {}
    check = _Checker(body, limits)
    for name in sorted(set(body) - known):
        check.fail((name,), f"unknown field; the fields are {', '.join(sorted(known))}", "extra_forbidden")
    prompt = check.string("prompt", required=True)
    if prompt is not None and not prompt.strip():
        prompt = check.fail(("prompt",), "is empty; describe the video")
    values = dict(
        prompt=prompt,
        negative_prompt=check.string("negative_prompt", DEFAULT_NEGATIVE_PROMPT),
        loras=check.loras(),
        resolution=check.choice("resolution", RESOLUTIONS, DEFAULT_RESOLUTION),
        aspect_ratio=check.choice("aspect_ratio", ASPECT_RATIOS, DEFAULT_ASPECT_RATIO),
        number_of_frames=check.integer("number_of_frames", FRAMES_RANGE, DEFAULT_FRAMES),
        number_of_steps=check.integer("number_of_steps", STEPS_RANGE, DEFAULT_STEPS),
        frame_rate=check.integer("frame_rate", FRAME_RATE_RANGE, DEFAULT_FRAME_RATE),
        seed=check.integer("seed", (0, MAX_SEED), None, nullable=True),
        expand_prompt=check.boolean("expand_prompt", defaults.get("expand_prompt", False)),
        reverse_video=check.boolean("reverse_video", False),
        enable_safety_checker=check.boolean("enable_safety_checker", defaults.get("enable_safety_checker", True)),
    )
    conditions = _conditions(check, endpoint)
    if check.errors:
        raise InputError(check.errors)
    if values["seed"] is None:
        values["seed"] = (draw_seed or (lambda: random.SystemRandom().randrange(DRAWN_SEED_LIMIT)))()
    return GenerationInput(conditions=conditions, **values)
