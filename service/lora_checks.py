"""What can be known about a request's LoRAs before it is queued, without downloading anything: a URL's scheme and
host (the download rules, one DNS lookup), a file name that must be in models/loras. What only a download can tell
(a 404, a file that is not a LoRA) fails while running and is answered as a 422 naming the LoRA too."""

from __future__ import annotations

from collections.abc import Callable

from .schema import GenerationInput, field_error


def lora_errors(generation: GenerationInput, *, file_missing: Callable[[str], bool],
                check_reachable: Callable[[str, str], None], fetch_error: type) -> list[dict]:
    """The 422 entries for the request's LoRAs (empty when all can be tried). Blocking (DNS): run it in a thread."""
    errors = []
    for index, lora in enumerate(generation.loras):
        loc = ("loras", index, "path")
        if "://" in lora.path:
            try:
                check_reachable(lora.path, f"loras.{index}.path")
            except fetch_error as refused:
                errors.append(field_error(loc, str(refused), "url_not_allowed"))
        elif file_missing(lora.path):
            errors.append(field_error(loc, f"no LoRA file {lora.path!r} in models/loras; give a URL, a Hugging "
                                           "Face repository or a file in models/loras"))
    return errors
