"""Images and videos from users, decoded whole and checked: a truncated or corrupt file is an error naming what it
was, never a half-black picture or a shorter clip. Plain Python (Pillow, PyAV, torch); no ComfyUI."""

from .strict import MediaError, check, check_image, check_video, read_video

__all__ = ["MediaError", "check", "check_image", "check_video", "read_video"]
