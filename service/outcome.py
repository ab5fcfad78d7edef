"""What a finished ComfyUI prompt means for its request: the saved mp4, a failure, or a cancellation."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from .graph import OUTPUT_NODE


def saved_video(entry: dict, output_dir: Path) -> Optional[dict]:
    """{"path" (relative to the output folder), "file_name", "file_size"} of the mp4 in a successful entry."""
    for item in entry.get("outputs", {}).get(OUTPUT_NODE, {}).get("images", []):
        if item.get("type") == "output" and str(item.get("filename", "")).endswith(".mp4"):
            relative = Path(item.get("subfolder") or "") / item["filename"]
            path = output_dir / relative
            if path.is_file():
                return {"path": relative.as_posix(), "file_name": item["filename"], "file_size": path.stat().st_size}
    return None


def prompt_used(entry: dict) -> Optional[str]:
    """The prompt the one node encoded (expanded when `expand_prompt` was on), from its UI output."""
    values = entry.get("outputs", {}).get(OUTPUT_NODE, {}).get("prompt") or []
    return values[0] if values and isinstance(values[0], str) else None




FLAGGED = "The content was flagged by a content checker"
"""The service's message for refused content; the pack's safety checker starts its errors with these words."""


def failure(entry: dict) -> tuple[str, str, bool]:
    """(message, error type, interrupted) of a history entry that did not succeed."""
    for name, data in (entry.get("status") or {}).get("messages", []):
        if name == "execution_interrupted":
            return ("the request was cancelled: its generation was interrupted in ComfyUI (its UI or /interrupt)",
                    "request_cancelled", True)
        if name == "execution_error" and FLAGGED.lower() in str(data.get("exception_message", "")).lower():
            return FLAGGED, "content_policy_violation", False
        if name == "execution_error":
            node = data.get("node_type", "a node")
            return f"{node}: {data.get('exception_message', 'failed')}".strip(), "execution_error", False
    return "the generation failed", "execution_error", False
