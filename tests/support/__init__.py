"""What the tests share: tiny random models in the official layouts, the pinned ComfyUI host (in process and as a
server), local web servers, workflow and API kits. Importable as `support` with `tests/` on `sys.path` (the
tests' conftest and the benchmarks put it there); never shipped with the pack."""
