"""The hosted service's input schema: defaults, validation, and its 422 error shape.

`parse_input(body)` turns a request's JSON into a `GenerationInput` or raises `InputError`, whose `detail` is the
service's `[{loc, msg, type}]` list (one entry per bad field, each naming the field, the value and what is allowed).
Pure Python: no ComfyUI, so it is unit-tested on its own.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from ..hosted import (ASPECT_RATIOS, DEFAULT_ASPECT_RATIO, DEFAULT_FRAME_RATE, DEFAULT_FRAMES, DEFAULT_NEGATIVE_PROMPT,
                      DEFAULT_RESOLUTION, DEFAULT_STEPS, FRAME_RATE_RANGE, FRAMES_RANGE, MAX_SEED, RESOLUTIONS,
                      STEPS_RANGE)

DRAWN_SEED_LIMIT = 2 ** 32
"""Seeds the server draws stay below 2**32, so JavaScript clients read them exactly."""
MAX_PROMPT_CHARS = 20_000
MAX_LORAS = 8
MAX_START_FRAME = 256
URL_SCHEMES = ("http", "https", "data")
"""Schemes of condition URLs, in any case (`HTTP://` too, as for LoRA URLs: the fetcher reads schemes that way)."""


def is_local_path(path: str) -> bool:
    """An absolute path, a home or drive path, or one that climbs out of its folder with `..`."""
    path = path.strip()
    return (path.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:[\\/]", path) is not None
            or ".." in re.split(r"[\\/]+", path))


@dataclass(frozen=True)
class LoraWeight:
    path: str
    weight_name: Optional[str] = None
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


class InputError(ValueError):
    """HTTP 422 in the service's shape: `detail` is a list of `{loc, msg, type}`."""

    def __init__(self, detail: list[dict]):
        super().__init__("; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in detail))
        self.detail = detail


def field_error(loc: tuple, msg: str, kind: str = "value_error") -> dict:
    return {"loc": ["body", *loc], "msg": msg, "type": kind}


class _Checker:
    """Collects every bad field of one body instead of stopping at the first."""

    def __init__(self, body: dict):
        self.body, self.errors = body, []

    def fail(self, loc: tuple, msg: str, kind: str = "value_error"):
        self.errors.append(field_error(loc, msg, kind))
        return None

    def string(self, name: str, default: Optional[str] = None, *, required: bool = False, src: Optional[dict] = None,
               loc: tuple = ()) -> Optional[str]:
        src = self.body if src is None else src
        if name not in src or src[name] is None:
            if required:
                return self.fail((*loc, name), "field required", "missing")
            return default
        value = src[name]
        if not isinstance(value, str):
            return self.fail((*loc, name), f"{value!r} is not a string", "string_type")
        if len(value) > MAX_PROMPT_CHARS:
            return self.fail((*loc, name), f"is {len(value)} characters long; at most {MAX_PROMPT_CHARS}",
                             "string_too_long")
        return value

    def choice(self, name: str, options: tuple, default: str) -> Optional[str]:
        value = self.body.get(name, default)
        if value not in options:
            return self.fail((name,), f"{value!r} is not allowed; one of {', '.join(options)}", "literal_error")
        return value

    def integer(self, name: str, bounds: tuple[int, int], default: Optional[int], *, src: Optional[dict] = None,
                loc: tuple = ()) -> Optional[int]:
        src = self.body if src is None else src
        value = src.get(name, default)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            return self.fail((*loc, name), f"{value!r} is not an integer", "int_type")
        low, high = bounds
        if not low <= value <= high:
            return self.fail((*loc, name), f"{value} is out of range; allowed {low} to {high}", "value_error")
        return value

    def number(self, name: str, bounds: tuple[float, float], default: float, *, src: dict, loc: tuple) -> float:
        value = src.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return self.fail((*loc, name), f"{value!r} is not a number", "float_type")
        low, high = bounds
        if not low <= value <= high:
            return self.fail((*loc, name), f"{value} is out of range; allowed {low} to {high}", "value_error")
        return float(value)

    def boolean(self, name: str, default: bool) -> Optional[bool]:
        value = self.body.get(name, default)
        if not isinstance(value, bool):
            return self.fail((name,), f"{value!r} is not a boolean (true or false)", "bool_type")
        return value

    def loras(self) -> tuple[LoraWeight, ...]:
        value = self.body.get("loras", [])
        if value is None:
            return ()
        if not isinstance(value, list):
            return self.fail(("loras",), f"{value!r} is not a list of {{path, weight_name, scale}}", "list_type") or ()
        if len(value) > MAX_LORAS:
            return self.fail(("loras",), f"{len(value)} LoRAs; at most {MAX_LORAS}", "too_long") or ()
        loras = []
        for index, entry in enumerate(value):
            loc = ("loras", index)
            if not isinstance(entry, dict):
                self.fail(loc, f"{entry!r} is not an object {{path, weight_name, scale}}", "dict_type")
                continue
            path = self.string("path", required=True, src=entry, loc=loc)
            if path is not None and not path.strip():
                path = self.fail((*loc, "path"), "is empty; give a URL, a Hugging Face repository or a file name")
            elif path is not None and is_local_path(path):
                path = self.fail((*loc, "path"), f"{path!r} is a path on the server; local files are not read: give "
                                                 "a URL, a Hugging Face repository or a file name in models/loras")
            weight_name = self.string("weight_name", src=entry, loc=loc)
            scale = self.number("scale", (-10.0, 10.0), 1.0, src=entry, loc=loc)
            if path is not None and scale is not None:
                loras.append(LoraWeight(path.strip(), weight_name or None, scale))
        return tuple(loras)

    def condition(self, kind: str) -> Optional[MediaCondition]:
        url_field = f"{kind}_url"
        if self.body.get(url_field) is None:
            return None
        url = self.string(url_field)
        if url is None:
            return None
        if ":" not in url or url.split(":", 1)[0].lower() not in URL_SCHEMES:
            return self.fail((url_field,), f"{url[:80]!r} is not an http(s) URL or a base64 data URI "
                                           "(local files are not read)", "url_scheme")
        start = self.integer("start_frame_number", (0, MAX_START_FRAME), 0)
        if kind == "video" and start is not None and start % 8:
            start = self.fail(("start_frame_number",), f"{start} is not a multiple of 8 (a video condition starts "
                                                       "at frame 0, 8, 16, ...)")
        strength = self.number("strength", (0.0, 1.0), 1.0, src=self.body, loc=())
        if start is None or strength is None:
            return None
        return MediaCondition(kind, url, start, strength)


KNOWN_FIELDS = frozenset({
    "prompt", "negative_prompt", "loras", "resolution", "aspect_ratio", "number_of_frames", "number_of_steps",
    "frame_rate", "seed", "expand_prompt", "reverse_video", "enable_safety_checker", "image_url", "video_url",
    "start_frame_number", "strength"})


def parse_input(body: Any, *, draw_seed=None) -> GenerationInput:
    """Validate a request body; a missing (or null) seed is drawn with `draw_seed()` (default: random)."""
    if not isinstance(body, dict):
        raise InputError([field_error((), "the body must be a JSON object of the input fields, not "
                                          f"{type(body).__name__}", "dict_type")])
    check = _Checker(body)
    for name in sorted(set(body) - KNOWN_FIELDS):
        check.fail((name,), f"unknown field; the fields are {', '.join(sorted(KNOWN_FIELDS))}", "extra_forbidden")
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
        seed=check.integer("seed", (0, MAX_SEED), None),
        expand_prompt=check.boolean("expand_prompt", False),
        reverse_video=check.boolean("reverse_video", False),
        enable_safety_checker=check.boolean("enable_safety_checker", True),
    )
    if body.get("image_url") is not None and body.get("video_url") is not None:
        check.fail(("video_url",), "give either image_url or video_url, not both")
    if not any(body.get(f"{kind}_url") is not None for kind in ("image", "video")):
        for name in ("start_frame_number", "strength"):
            if name in body:
                check.fail((name,), "is only used with image_url or video_url")
    conditions = tuple(c for c in (check.condition("image"), check.condition("video")) if c is not None)
    if check.errors:
        raise InputError(check.errors)
    if values["seed"] is None:
        values["seed"] = (draw_seed or (lambda: random.SystemRandom().randrange(DRAWN_SEED_LIMIT)))()
    return GenerationInput(conditions=conditions, **values)
