"""The service's modules loaded as the pack's own submodules without ComfyUI (see `plain_pack`), for the API's
plain-Python unit tests."""

from support.plain_pack import pack_module

access, service_config, downloads, graph, jobs, local_queue, media, outcome, retention, schema, store, webhook = (
    pack_module(f"service.{name}") for name in ("access", "config", "downloads", "graph", "jobs", "local_queue",
                                                "media", "outcome", "retention", "schema", "store", "webhook"))
service_limits = pack_module("media.limits")
check_media = pack_module("media").check
REQUEST_ID = "0b7e2a4c-3f1d-4c55-9a0e-5d6f7a8b9c0d"
