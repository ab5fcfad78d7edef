"""The pack's ComfyUI nodes (V3 schema). Imported only inside ComfyUI; see the pack's `__init__`."""

from .loaders import NODES as LOADER_NODES

NODE_LIST = [*LOADER_NODES]
"""Every node class the pack registers, in menu order."""

__all__ = ["NODE_LIST"]
