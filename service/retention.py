"""How long finished requests are kept (`result_retention_hours` of `ltxv097_api.json`), in both modes.

The hosted service forgets a request after a while (its result an hour after it completes unless the account keeps
payloads longer, its CDN files after their lifetime); a self-hosted server kept every result and its mp4 forever,
so a busy one filled its disk and its database. Past the retention a request is unknown: status and result answer
404 naming it, as for an id never seen. Unfinished requests are never pruned, however old.
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_RETENTION_HOURS = 7 * 24.0
"""A week: long enough to fetch a result after a weekend; fal keeps less (set 1 for its queue's hour)."""
PRUNE_EVERY_SECONDS = 300.0
"""A server (each fleet worker) looks for expired requests at most this often: a DELETE of a few rows, not a
query per request."""


def retention_seconds(hours: float | None) -> float | None:
    """None: keep every result (the setting is null)."""
    return None if hours is None else float(hours) * 3600.0


def remove_result_file(root: Path, relative: str | None) -> None:
    """Delete a pruned request's file named relative to `root` (never anything outside it), and its folder when
    that is left empty and is not `root` itself."""
    if not relative:
        return
    root = Path(root).resolve()
    path = (root / relative).resolve()
    if root not in path.parents:
        logger.warning("LTX-Video API: not pruning %s: outside %s", relative, root)
        return
    path.unlink(missing_ok=True)
    folder = path.parent
    if folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
