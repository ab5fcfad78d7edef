"""The server's websocket as the frontend sees it: a listener that records the JSON events of a test server.

    watch = ServerEvents(server)          # connects with the server's client id before a prompt is posted
    ...                                   # post prompts; watch.progress(prompt_id, node_id), watch.executing(...)
    watch.close()

It has no asserts for pytest to rewrite: PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import json
import threading

from support.comfy_server import ComfyServer


class ServerEvents:
    """Listens on the server's websocket (as the frontend does) and records its JSON events (previews, sent as
    binary frames, are dropped)."""

    def __init__(self, server: ComfyServer):
        import websocket

        self.socket = websocket.create_connection(
            f"ws://127.0.0.1:{server.port}/ws?clientId={server.client_id}", timeout=5)
        self.events: list[dict] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()

    def _listen(self) -> None:
        while not self.stopped.is_set():
            try:
                message = self.socket.recv()
            except Exception:  # timeout: poll again; closed: stop
                if self.stopped.is_set() or not self.socket.connected:
                    return
                continue
            if isinstance(message, str) and message.startswith("{"):
                self.events.append(json.loads(message))

    def of(self, kind: str, prompt_id: str, node_id: str) -> list[dict]:
        """The data of every `kind` event ("progress", "executing", ...) of one node in one prompt."""
        return [e["data"] for e in list(self.events) if e.get("type") == kind
                and e["data"].get("prompt_id") == prompt_id and e["data"].get("node") == node_id]

    def progress(self, prompt_id: str, node_id: str) -> list[dict]:
        return self.of("progress", prompt_id, node_id)

    def executing(self, prompt_id: str, node_id: str) -> bool:
        """Whether the node has started running in that prompt."""
        return bool(self.of("executing", prompt_id, node_id))

    def close(self) -> None:
        self.stopped.set()
        self.socket.close()
        self.thread.join(timeout=10)
