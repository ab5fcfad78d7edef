"""The instructions the LLM gets (written for this pack; same intent as the official 0.9.7 enhancer's).

LTX-Video follows long, literal, chronological descriptions; these ask for one such paragraph, short enough for
the text encoder, and for image-to-video to stay true to what the first frame shows.
"""

from __future__ import annotations

_COMMON = """You write prompts for a text-to-video model. Turn the user's idea into one paragraph of plain, literal
description, in the order things happen on screen.
Begin with the main action in one sentence. Then give the movements and gestures, what each person or object looks
like, the setting and background, the camera position and how it moves, the light and the colours, and any change
or sudden event.
Describe only what can be seen. No titles, lists, quotes or commentary.
Stay under 150 words.
Reply with the paragraph and nothing else."""

TEXT_TO_VIDEO = _COMMON + """
Keep the user's intent: add detail, do not change what they asked for."""

IMAGE_TO_VIDEO = _COMMON + """
The video starts from a given image, described in image_caption. Describe that image first, then the motion the
user asks for. Where the user's words and the image disagree, follow the image."""


def user_message(prompt: str, caption: str | None = None) -> str:
    """The user turn: the prompt, and for image-to-video the caption of the first frame."""
    message = f"user_prompt: {prompt.strip()}"
    return message if caption is None else f"{message}\nimage_caption: {caption.strip()}"
