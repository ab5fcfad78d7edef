"""The service's job queue on PostgreSQL: any number of ComfyUIs with the pack serve one API (issue 19, README
"Scale out"). `fleet_routes` is the one entry; psycopg is imported only when a database is configured.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def fleet_routes(host, config, url: str, media, notify, **route_options):
    """(queue, routes) of the fleet mode; the queue connects in the background on ComfyUI's event loop.

    `route_options` are `ApiRoutes`' (uploads, the submit-time URL check)."""
    from pathlib import Path

    from .fleet import FleetQueue
    from .gateway import FleetRoutes
    from .settings import redact
    from .storage import SharedStorage

    root = Path(config.storage_dir).expanduser() if config.storage_dir else host.output_dir()
    queue = FleetQueue(host, config, url, SharedStorage(root, host.output_dir()), notify=notify,
                       media_prefix=media.prefix, remove_media=media.remove)
    queue.start(host.loop)
    logger.info("LTX-Video API: fleet mode: requests in the job database %s, results in %s%s", redact(url, url),
                root, " (this instance runs no jobs: gateway_only)" if config.gateway_only else "")
    return queue, FleetRoutes(queue, host, config, media, **route_options)
