"""What a finished ComfyUI prompt means for its request: the saved mp4, a failure, or a cancellation."""

from __future__ import annotations

import re
from pathlib import Path

from .graph import OUTPUT_NODE
from .jobs import START_TIMEOUT


def saved_video(entry: dict, output_dir: Path) -> dict | None:
    """{"path" (relative to the output folder), "file_name", "file_size"} of the mp4 in a successful entry."""
    for item in entry.get("outputs", {}).get(OUTPUT_NODE, {}).get("images", []):
        if item.get("type") == "output" and str(item.get("filename", "")).endswith(".mp4"):
            relative = Path(item.get("subfolder") or "") / item["filename"]
            path = output_dir / relative
            if path.is_file():
                return {"path": relative.as_posix(), "file_name": item["filename"], "file_size": path.stat().st_size}
    return None


def prompt_used(entry: dict) -> str | None:
    """The prompt the one node encoded (expanded when `expand_prompt` was on), from its UI output."""
    values = entry.get("outputs", {}).get(OUTPUT_NODE, {}).get("prompt") or []
    return values[0] if values and isinstance(values[0], str) else None




CANCELLED_STATUS = 499
"""What fal answers for a cancelled request (its apps' `RequestCancelledException` handler): 499 with `detail`."""
FLAGGED = "The content was flagged by a content checker"
"""The service's message for refused content; the pack's safety checker starts its errors with these words."""
LORA_ERROR = "lora_error"
LORA_FAILURE = re.compile(r"^LoRA (\d+) of \d+: ")
"""How the LoRA nodes start the message of a LoRA that could not be used (`nodes.lora.LoraEntryError`)."""
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/\\])(?:/|[A-Za-z]:[\\/])(?:[^\s'\"<>|:]+[\\/])+[^\s'\"<>|:,;)]*")
KNOWN_FOLDERS = ("models", "input", "output", "user", "custom_nodes", "temp")


def _relative(match: re.Match) -> str:
    parts = re.split(r"[\\/]+", match.group(0))
    for index in range(len(parts) - 1, -1, -1):
        if parts[index] in KNOWN_FOLDERS:
            return "/".join(parts[index:])
    return parts[-1] or "<server path>"


def hide_paths(text: str) -> str:
    """`text` without the server's absolute paths: a path inside ComfyUI's folders from that folder on
    (`models/loras/x.safetensors`), any other as its file name."""
    return ABSOLUTE_PATH.sub(_relative, text)


def failure(entry: dict) -> tuple[str, str, bool]:
    """(message, error type, interrupted) of a history entry that did not succeed; no server path in the message."""
    for name, data in (entry.get("status") or {}).get("messages", []):
        if name == "execution_interrupted":
            return ("the request was cancelled: its generation was interrupted in ComfyUI (its UI or /interrupt)",
                    "request_cancelled", True)
        message = hide_paths(str(data.get("exception_message", "failed")).strip())
        if name == "execution_error" and FLAGGED.lower() in message.lower():
            return FLAGGED, "content_policy_violation", False
        if name == "execution_error" and LORA_FAILURE.match(message):
            return message, LORA_ERROR, False
        if name == "execution_error":
            node = data.get("node_type", "a node")
            return f"{node}: {message}".strip(), "execution_error", False
    return "the generation failed", "execution_error", False


def error_answer(state: str, message: str | None, error_type: str | None) -> tuple[int, dict]:
    """(HTTP status, JSON body) of a request that ended without a video: what its result answers and what its
    webhook carries as payload. A caller's mistake found while running (flagged content, a LoRA that cannot be used)
    is a 422 in the validation shape; a cancelled request 499 (as fal's apps answer one); a start timeout 504; the
    rest 500."""
    if error_type == "content_policy_violation":
        return 422, {"detail": [{"loc": ["body"], "msg": message, "type": error_type}]}
    lora = LORA_FAILURE.match(message or "") if error_type == LORA_ERROR else None
    if lora:
        loc = ["body", "loras", int(lora.group(1)) - 1, "path"]
        return 422, {"detail": [{"loc": loc, "msg": message, "type": error_type}]}
    status = {"request_cancelled": CANCELLED_STATUS, START_TIMEOUT: 504}.get(error_type or "", 500)
    if state == "cancelled":
        status = CANCELLED_STATUS
    return status, {"detail": message, "error_type": error_type}
