"""Headless Chromium driven over the Chrome DevTools Protocol, for tests and scripts that use ComfyUI's frontend.

Debian's `chromium` (installed by `scripts/setup_env.sh`) runs headless with its own throw-away profile; the
page is driven through one DevTools websocket (`websocket-client`). Console errors and uncaught exceptions of
the page are collected so that a test can assert there were none::

    with Browser(tmp_path / "profile") as browser:
        browser.open(server.url)
        browser.wait_for("window.app?.graph != null")
        value = browser.evaluate("1 + 1")
        browser.screenshot(tmp_path / "page.png")
        assert not browser.errors()

`open_frontend(browser, url)` loads ComfyUI's frontend and waits until its extensions (ours included) are set
up; `load_workflow(browser, workflow)` loads a UI-format workflow through `app.loadGraphData` and reports what
the frontend made of it. `browser.messages_from("/extensions/<pack>/")` lists the console warnings and errors a
pack's scripts caused (frontends from 1.5x warn about deprecated APIs on the console).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars")
STARTUP_TIMEOUT = 60.0


def chromium_path() -> str:
    """The Chromium binary: `$CHROMIUM` or the first of chromium / chromium-browser / google-chrome on PATH."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("no Chromium found (chromium, chromium-browser or google-chrome on PATH, or $CHROMIUM); "
                       "scripts/setup_env.sh installs Debian's chromium package")


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, profile_dir: Path | str, *, width: int = 1600, height: int = 1000):
        self.profile_dir = Path(profile_dir)
        self.width, self.height = width, height
        self.process: subprocess.Popen | None = None
        self.socket = None
        self._ids = itertools.count(1)
        self.events: list[dict] = []
        self.log_path = self.profile_dir.parent / f"{self.profile_dir.name}-chromium.log"

    # lifecycle -------------------------------------------------------------------------------------------------

    def __enter__(self) -> Browser:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        import websocket  # websocket-client

        self.profile_dir.mkdir(parents=True, exist_ok=True)
        port_file = self.profile_dir / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)
        command = [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={self.profile_dir}",
                   "--remote-debugging-port=0", "--remote-allow-origins=*",
                   f"--window-size={self.width},{self.height}", "about:blank"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        port = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrowserError(f"Chromium exited with code {self.process.returncode} at start-up:\n"
                                   f"{self.log_tail()}")
            if port_file.exists():
                lines = port_file.read_text().splitlines()
                if lines and lines[0].strip().isdigit():
                    port = int(lines[0])
                    break
            time.sleep(0.1)
        if port is None:
            self.stop()
            raise BrowserError(f"Chromium did not open its DevTools port in {STARTUP_TIMEOUT:.0f} s:\n"
                               f"{self.log_tail()}")
        page_url = None
        while time.monotonic() < deadline and page_url is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
                    targets = json.loads(response.read())
                page_url = next((t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"), None)
            except OSError:
                pass
            if page_url is None:
                time.sleep(0.1)
        if page_url is None:
            self.stop()
            raise BrowserError("Chromium has no page target to drive")
        self.socket = websocket.create_connection(page_url, timeout=30, suppress_origin=True)
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        # ComfyUI's frontend keeps some one-time notices in localStorage: mark them seen (clean screenshots).
        self.send("Page.addScriptToEvaluateOnNewDocument",
                  {"source": "try { localStorage.setItem('vueNodesBannerDismissed', 'true'); } catch (e) {}"})
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})

    def stop(self) -> None:
        if self.socket is not None:
            try:
                self.socket.close()
            except OSError:
                pass
            self.socket = None
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # Chromium forks helper processes into its own session (start_new_session): end that group only.
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    # protocol --------------------------------------------------------------------------------------------------

    def send(self, method: str, params: dict | None = None, timeout: float = 60.0) -> dict:
        """Send one DevTools command and return its result; events that arrive meanwhile are kept."""
        if self.socket is None:
            raise BrowserError("the browser is not running")
        message_id = next(self._ids)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            self.socket.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                message = json.loads(self.socket.recv())
            except Exception as error:  # websocket timeout or closed
                raise BrowserError(f"no answer to {method} within {timeout:.0f} s ({error})") from error
            if message.get("id") == message_id:
                if "error" in message:
                    raise BrowserError(f"{method} failed: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression: str, *, timeout: float = 60.0) -> Any:
        """Evaluate a JS expression in the page (promises awaited) and return its value as JSON data."""
        result = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True, "timeout": int(timeout * 1000)},
                           timeout=timeout + 5)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"JS error: {text}\nin: {expression[:500]}")
        return result.get("result", {}).get("value")

    def call(self, function: str, *args: Any, timeout: float = 60.0) -> Any:
        """Call a JS function expression (e.g. `async (a, b) => ...`) with JSON arguments."""
        arguments = ", ".join(json.dumps(a) for a in args)
        return self.evaluate(f"({function})({arguments})", timeout=timeout)

    def wait_for(self, expression: str, timeout: float = 60.0, interval: float = 0.2) -> Any:
        """Poll a JS expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
                if value:
                    return value
            except BrowserError as error:
                last_error = error
            time.sleep(interval)
        raise BrowserError(f"timed out after {timeout:.0f} s waiting for {expression}"
                           + (f" (last error: {last_error})" if last_error else ""))

    def open(self, url: str, timeout: float = 60.0) -> None:
        self.send("Page.navigate", {"url": url}, timeout=timeout)
        self.wait_for("document.readyState === 'complete'", timeout=timeout)

    def screenshot(self, path: Path | str, *, quality: int | None = None, scale: float = 1.0) -> Path:
        """A PNG (or a JPEG of this quality) of the page as it is drawn now, optionally scaled down."""
        params = {"format": "png"} if quality is None else {"format": "jpeg", "quality": quality}
        if scale != 1.0:
            params["clip"] = {"x": 0, "y": 0, "width": self.width, "height": self.height, "scale": scale}
        data = self.send("Page.captureScreenshot", params)["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    # what the page reported ----------------------------------------------------------------------------------

    def poll_events(self) -> None:
        """Collect the events that arrived since the last command (a cheap round trip)."""
        self.send("Runtime.evaluate", {"expression": "0"})

    def errors(self, since: int = 0, *, offline_ok: bool = True) -> list[str]:
        """Console errors, uncaught exceptions and error log entries of the page (events from index `since`).

        With `offline_ok`, failed requests to other machines are left out: the tests run without internet, and
        ComfyUI's frontend asks api.comfy.org about node packs and model hosts about file sizes.
        """
        self.poll_events()
        found = []
        for event in self.events[since:]:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console.error: " + " ".join(_remote_text(a) for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                found.append("exception: " + (details.get("exception", {}).get("description")
                                              or details.get("text", "")))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                if offline_ok and entry.get("source") == "network" and not _is_local(entry.get("url", "")):
                    continue
                found.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip())
        return found


    def messages_from(self, marker: str, since: int = 0) -> list[str]:
        """Console warnings and errors and uncaught exceptions that `marker` (a script URL part, e.g. a pack's
        `/extensions/<pack>/`) is on the stack of, or in the text of (events from index `since`)."""
        self.poll_events()
        found = []
        for event in self.events[since:]:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("warning", "error", "assert"):
                text = " ".join(_remote_text(a) for a in params.get("args", []))
                frames = params.get("stackTrace", {}).get("callFrames", [])
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                text = details.get("exception", {}).get("description") or details.get("text", "")
                frames = details.get("stackTrace", {}).get("callFrames", [])
            else:
                continue
            if marker in text or any(marker in frame.get("url", "") for frame in frames):
                found.append(f"{params.get('type', 'exception')}: {text}")
        return found


def _is_local(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def _remote_text(arg: dict) -> str:
    if "value" in arg:
        return str(arg["value"])
    return str(arg.get("description") or arg.get("unserializableValue") or arg.get("type"))


# ----------------------------------------------------------------------------------------------------------------
# ComfyUI's frontend

FRONTEND_READY = ("window.app != null && window.app.graph != null && window.app.canvas != null && "
                  "window.LiteGraph != null && Object.keys(LiteGraph.registered_node_types).length > 0 && "
                  "document.querySelector('#graph-canvas') != null")


QUIET_SETTINGS = {
    "Comfy.TutorialCompleted": True,  # else the template browser opens over the graph for a new user
    "Comfy.Minimap.Visible": False,
}


def open_frontend(browser: Browser, url: str, *, extension: str | None = None, timeout: float = 90.0) -> None:
    """Open ComfyUI's frontend at `url` and wait until the graph canvas, the node types and (if given) the named
    extension are there. The server's user settings get `QUIET_SETTINGS` first (no first-run dialogs)."""
    request = urllib.request.Request(url.rstrip("/") + "/settings", data=json.dumps(QUIET_SETTINGS).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30):
        pass
    browser.open(url, timeout=timeout)
    browser.wait_for(FRONTEND_READY, timeout=timeout)
    if extension:
        browser.wait_for(f"app.extensions.some(e => e.name === {json.dumps(extension)})", timeout=timeout)
    # New frontends ask first-time users things in dialogs; close any so screenshots show the graph.
    close_dialogs(browser)


def close_dialogs(browser: Browser) -> int:
    """Close open PrimeVue dialogs (Escape on each); returns how many were open."""
    count = browser.evaluate("document.querySelectorAll('.p-dialog').length") or 0
    for _ in range(count):
        browser.send("Input.dispatchKeyEvent", {"type": "keyDown", "key": "Escape", "code": "Escape",
                                                "windowsVirtualKeyCode": 27})
        browser.send("Input.dispatchKeyEvent", {"type": "keyUp", "key": "Escape", "code": "Escape",
                                                "windowsVirtualKeyCode": 27})
        time.sleep(0.2)
    return count


LOAD_WORKFLOW_JS = r"""
async (workflow, missingModelsDialog) => {
  const known = new Set(Object.keys(LiteGraph.registered_node_types));
  const missingTypes = [...new Set(workflow.nodes.map(n => n.type).filter(t => !known.has(t)))];
  await app.loadGraphData(workflow, true, true, null, {showMissingModelsDialog: missingModelsDialog});
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  await new Promise(r => setTimeout(r, 300));  // image previews and dialogs
  const nodes = app.graph.nodes.map(n => ({
    id: n.id, type: n.type, title: n.title, has_errors: !!n.has_errors,
    registered: n.type in LiteGraph.registered_node_types,
    widgets: (n.widgets || []).map(w => ({name: w.name, type: w.type, value: w.value})),
  }));
  const graph = app.graph.serialize();
  const prompt = await app.graphToPrompt();
  return {missingTypes, nodes, graph, prompt: prompt.output,
          dialogs: [...document.querySelectorAll('.p-dialog')].map(d => d.innerText.slice(0, 2000))};
}
"""


def load_workflow(browser: Browser, workflow: dict, *, missing_models_dialog: bool = False) -> dict:
    """Load a UI-format workflow into the frontend; returns what the frontend made of it:

    `missingTypes` (node types the frontend does not know), `nodes` (type, title, widgets with values),
    `graph` (the frontend's own serialisation of the loaded graph), `prompt` (the API prompt the frontend
    would queue: `app.graphToPrompt().output`) and `dialogs` (text of any dialog that opened; the missing
    models dialog only opens with `missing_models_dialog`).
    """
    return browser.call(LOAD_WORKFLOW_JS, workflow, missing_models_dialog, timeout=90)


SHOW_GRAPH_JS = r"""
async () => {
  const manager = app.extensionManager;
  if (!manager.focusMode) manager.toggleFocusMode();
  await new Promise(r => setTimeout(r, 200));
  const items = [...app.graph.nodes.map(n => [n.pos[0], n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT, n.size[0],
                                              n.size[1] + LiteGraph.NODE_TITLE_HEIGHT]),
                 ...app.graph.groups.map(g => [...g.pos, ...g.size])];
  const left = Math.min(...items.map(b => b[0])), top = Math.min(...items.map(b => b[1]));
  const right = Math.max(...items.map(b => b[0] + b[2])), bottom = Math.max(...items.map(b => b[1] + b[3]));
  app.canvas.ds.fitToBounds([left, top, right - left, bottom - top], {zoom: 0.95});
  app.graph.setDirtyCanvas(true, true);
  await new Promise(r => setTimeout(r, 400));
  return app.canvas.ds.scale;
}
"""


def screenshot_graph(browser: Browser, path: Path | str, *, quality: int | None = None,
                     scale: float = 1.0) -> Path:
    """The whole graph, fitted to the window, without the frontend's menus (focus mode), as PNG or JPEG."""
    browser.evaluate(f"({SHOW_GRAPH_JS})()")
    path = Path(path)
    if quality is None and path.suffix.lower() in (".jpg", ".jpeg"):
        quality = 80
    return browser.screenshot(path, quality=quality, scale=scale)
