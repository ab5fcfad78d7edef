"""Where LoRAs come from: downloads from a local HTTP server on 127.0.0.1 (good, truncated, HTML, too large, pickle,
missing, junk refused from its first bytes, a trickle stopped by ComfyUI's interrupt, other local ports refused), the
download cache (usable whatever the download settings), Hugging Face repos through huggingface_hub's offline cache,
and the node with a URL."""

from __future__ import annotations

import http.server
import io
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from support import tiny, tiny_lora
from support.local_web import LocalWeb

pytest_plugins = ["support.comfy_host"]

CKPT = "lora_sources_tiny.safetensors"


@pytest.fixture(scope="module")
def sources(ltx_pack):
    return ltx_pack.nodes.lora_sources


@pytest.fixture(scope="module")
def lora_bytes(tmp_path_factory):
    tcfg = tiny.transformer_config()
    lora = tiny_lora.random_lora(tiny_lora.linear_modules(tiny.reference_transformer(tcfg)), rank=4)
    path = tiny_lora.write_lora(tmp_path_factory.mktemp("lora_bytes") / "l.safetensors", lora, "comfyui_trainer")
    return path.read_bytes()


class _Server:
    """A throw-away HTTP server on 127.0.0.1 whose routes are `path -> (status, headers, body, cut_at)`."""

    def __init__(self):
        self.routes: dict[str, tuple] = {}
        self.hits: dict[str, int] = {}
        routes, hits = self.routes, self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 (http.server's naming)
                hits[self.path] = hits.get(self.path, 0) + 1
                status, headers, body, cut_at = routes.get(self.path, (404, {}, b"not found", None))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in headers and cut_at is None:
                    self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body if cut_at is None else body[:cut_at])
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server(lora_bytes):
    server = _Server()
    pickled = io.BytesIO()
    torch.save({"lora_up.weight": torch.zeros(2, 2)}, pickled)
    legacy = io.BytesIO()
    torch.save({"lora_up.weight": torch.zeros(2, 2)}, legacy, _use_new_zipfile_serialization=False)
    html = b"<!DOCTYPE html><html><body>Please log in to download this model.</body></html>"
    safetensors_type = {"Content-Type": "application/octet-stream"}
    server.routes.update({
        "/good.safetensors": (200, safetensors_type, lora_bytes, None),
        "/good-again.safetensors?token=secret": (200, safetensors_type, lora_bytes, None),
        "/no-length.safetensors": (200, safetensors_type, lora_bytes, len(lora_bytes)),  # no Content-Length
        "/truncated.safetensors": (200, {**safetensors_type, "Content-Length": str(len(lora_bytes))}, lora_bytes,
                                   len(lora_bytes) // 2),
        "/truncated-no-length.safetensors": (200, safetensors_type, lora_bytes, len(lora_bytes) // 2),
        "/login.safetensors": (200, {"Content-Type": "text/html; charset=utf-8"}, html, None),
        "/error-page.safetensors": (200, {"Content-Type": "application/octet-stream"}, b"\n  " + html, None),
        "/model.pt": (200, safetensors_type, pickled.getvalue(), None),
        "/legacy.safetensors": (200, safetensors_type, legacy.getvalue(), None),
        "/big.safetensors": (200, safetensors_type, lora_bytes, None),
        "/forbidden.safetensors?token=secret": (403, {}, b"forbidden", None),
    })
    yield server
    server.close()


@pytest.fixture
def downloads(tmp_path, comfy_host, server, monkeypatch):
    """A fresh `loras` folder put first for one test, and the test server's port allowed (only that one); returns
    the download cache folder."""
    monkeypatch.delenv("LTX097_ALLOW_PRIVATE_URLS", raising=False)
    monkeypatch.setenv("LTX097_URL_ALLOW_HOSTS", f"127.0.0.1:{server.url.rsplit(':', 1)[1]}")
    folder = tmp_path / "loras"
    folder.mkdir()
    paths = comfy_host.folder_paths.folder_names_and_paths["loras"][0]
    monkeypatch.setattr(comfy_host.folder_paths, "folder_names_and_paths",
                        {**comfy_host.folder_paths.folder_names_and_paths,
                         "loras": ([str(folder), *paths], comfy_host.folder_paths.folder_names_and_paths["loras"][1])})
    return folder / "ltx097_downloads"


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_good_file_is_downloaded_once_and_reused(sources, server, downloads, lora_bytes):
    progress = []
    path = sources.resolve_lora(server.url + "/good.safetensors", progress=lambda done, total: progress.append(
        (done, total)))
    assert Path(path).parent == downloads and Path(path).read_bytes() == lora_bytes
    assert Path(path).name.startswith("good-") and path.endswith(".safetensors")
    assert progress and progress[-1] == (len(lora_bytes), len(lora_bytes))
    assert sources.resolve_lora(server.url + "/good.safetensors") == path
    assert server.hits["/good.safetensors"] == 1, "the second run reuses the cached file"
    assert _files(downloads) == [Path(path).name]
    # the cached file is listed in the LoRA dropdown
    assert f"ltx097_downloads/{Path(path).name}" in sources.lora_files()
    # a damaged cache entry is fetched again
    Path(path).write_bytes(lora_bytes[:100])
    assert sources.resolve_lora(server.url + "/good.safetensors") == path
    assert server.hits["/good.safetensors"] == 2 and Path(path).read_bytes() == lora_bytes


def test_a_download_without_length_works_and_query_strings_stay_out_of_messages(sources, server, downloads):
    assert Path(sources.resolve_lora(server.url + "/no-length.safetensors")).is_file()
    path = sources.resolve_lora(server.url + "/good-again.safetensors?token=secret")
    assert "secret" not in Path(path).name
    with pytest.raises(ValueError) as error:
        sources.resolve_lora(server.url + "/forbidden.safetensors?token=secret")
    assert "secret" not in str(error.value) and "HTTP 403" in str(error.value)


@pytest.mark.parametrize("route, message", [
    ("/truncated.safetensors", r"was cut short: (\d+ of \d+ bytes arrived|the connection closed after)"),
    ("/truncated-no-length.safetensors", r"is incomplete: it should be \d+ bytes but has \d+"),
    ("/login.safetensors", r"is a web page \(HTML\), not a safetensors file"),
    ("/error-page.safetensors", r"is a web page \(HTML\)"),
    ("/model.pt", r"is a pickled PyTorch file .* never loaded"),
    ("/legacy.safetensors", r"is a pickled PyTorch file"),
    ("/missing.safetensors", r"failed: the server answered HTTP 404"),
])
def test_failed_downloads_say_why_and_leave_nothing(sources, server, downloads, route, message):
    with pytest.raises(ValueError, match=message):
        sources.resolve_lora(server.url + route)
    assert _files(downloads) == []


def test_the_size_cap(sources, server, downloads, lora_bytes, monkeypatch):
    monkeypatch.setenv("LTX097_LORA_MAX_DOWNLOAD_MB", str(len(lora_bytes) / 2 / 2**20))
    with pytest.raises(ValueError, match=r"is [\d.]+ MB, more than the [\d.]+ MB allowed for the LoRA download "
                                         r"\(set LTX097_LORA_MAX_DOWNLOAD_MB"):
        sources.resolve_lora(server.url + "/big.safetensors")
    # without a Content-Length the stream is stopped at the cap
    with pytest.raises(ValueError, match=r"is larger than the [\d.]+ MB allowed .*; stopped"):
        sources.resolve_lora(server.url + "/no-length.safetensors")
    assert _files(downloads) == []
    monkeypatch.setenv("LTX097_LORA_MAX_DOWNLOAD_MB", "lots")
    for bad in ("lots", "0", "-5", "nan", "inf"):
        monkeypatch.setenv("LTX097_LORA_MAX_DOWNLOAD_MB", bad)
        with pytest.raises(ValueError, match=rf"LTX097_LORA_MAX_DOWNLOAD_MB='{bad}' is not a number of megabytes; "
                                             rf"set it to a positive number \(the default is 4096\) or unset it"):
            sources.resolve_lora(server.url + "/big.safetensors")
    monkeypatch.setenv("LTX097_LORA_MAX_DOWNLOAD_MB", "1")
    assert Path(sources.resolve_lora(server.url + "/big.safetensors")).is_file()


def test_query_variants_of_a_url_share_one_cached_file(sources, server, downloads, lora_bytes):
    for query in ("?token=a", "?token=b&x=1", "", "#part"):
        server.routes["/shared.safetensors" + query] = (200, {}, lora_bytes, None)
    paths = {sources.resolve_lora(server.url + "/shared.safetensors" + query)
             for query in ("?token=a", "?token=b&x=1", "", "#part")}
    assert len(paths) == 1 and _files(downloads) == [Path(paths.pop()).name]
    assert sum(hits for route, hits in server.hits.items() if route.startswith("/shared")) == 1


def test_the_cache_keeps_the_most_recently_used_files_under_its_cap(sources, server, downloads, lora_bytes,
                                                                    monkeypatch, caplog):
    for name in ("a", "b", "c"):
        server.routes[f"/{name}.safetensors"] = (200, {}, lora_bytes, None)
    monkeypatch.setenv("LTX097_LORA_CACHE_MB", str(2.5 * len(lora_bytes) / 2**20))  # room for two
    a = sources.resolve_lora(server.url + "/a.safetensors")
    b = sources.resolve_lora(server.url + "/b.safetensors")
    time.sleep(0.01)  # distinct modification times even on coarse file systems
    assert sources.resolve_lora(server.url + "/a.safetensors") == a  # a reused: b is now the least recent
    time.sleep(0.01)
    with caplog.at_level("INFO"):
        c = sources.resolve_lora(server.url + "/c.safetensors")
    assert _files(downloads) == sorted(Path(p).name for p in (a, c))
    assert f"removed the least recently used {Path(b).name}" in caplog.text
    assert server.hits["/a.safetensors"] == 1
    monkeypatch.setenv("LTX097_LORA_CACHE_MB", str(0.5 * len(lora_bytes) / 2**20))  # not even one: keeps the new
    d = sources.resolve_lora(server.url + "/b.safetensors")
    assert _files(downloads) == [Path(d).name]
    monkeypatch.setenv("LTX097_LORA_CACHE_MB", "-1")
    with pytest.raises(ValueError, match=r"LTX097_LORA_CACHE_MB='-1' is not a number of megabytes; set it to a "
                                         r"positive number \(the default is 20480\)"):
        sources.resolve_lora(server.url + "/c.safetensors")


def test_unfinished_downloads_are_removed_and_the_rest_kept(sources, server, downloads):
    kept = Path(sources.resolve_lora(server.url + "/good.safetensors"))
    unfinished = downloads / f".{kept.name}.k3j4h5g6.part"
    unfinished.write_bytes(b"half a LoRA")
    (downloads / ".notes.part").write_bytes(b"a user's")
    sources.remove_unfinished_downloads()
    assert _files(downloads) == sorted([".notes.part", kept.name])


def test_an_unreachable_server_says_so(sources, downloads):
    with pytest.raises(ValueError, match=r"^the LoRA download: http://127\.0\.0\.1:9/x\.safetensors could not be "
                                         r"fetched: the host is unreachable or not allowed"):
        sources.resolve_lora("http://127.0.0.1:9/x.safetensors?key=1")
    assert _files(downloads) == []


def test_a_cached_download_works_whatever_the_size_setting(sources, server, downloads, lora_bytes, monkeypatch):
    url = server.url + "/good.safetensors"
    path = sources.resolve_lora(url)
    hits = server.hits["/good.safetensors"]
    monkeypatch.setenv("LTX097_LORA_MAX_DOWNLOAD_MB", "abc")
    monkeypatch.delenv("LTX097_URL_ALLOW_HOSTS")  # and no network needed either
    assert sources.resolve_lora(url) == path and server.hits["/good.safetensors"] == hits
    monkeypatch.setenv("LTX097_URL_ALLOW_HOSTS", f"127.0.0.1:{server.url.rsplit(':', 1)[1]}")
    with pytest.raises(ValueError, match=r"^LTX097_LORA_MAX_DOWNLOAD_MB='abc' is not a number of megabytes; set it "
                                         r"to a positive number \(the default is 4096\) or unset it"):
        sources.resolve_lora(server.url + "/no-length.safetensors")
    assert _files(downloads) == [Path(path).name]


@pytest.fixture
def junk_web(downloads, monkeypatch):
    web = LocalWeb()
    monkeypatch.setenv("LTX097_URL_ALLOW_HOSTS", f"127.0.0.1:{web.port}")
    yield web
    web.close()


@pytest.mark.parametrize("head, message", [
    (b"\n<!doctype html><html><head><title>Sign in", r"is a web page \(HTML\), not a safetensors file"),
    (None, r"is a pickled PyTorch file .* never loaded"),
    (bytes.fromhex("9f3a51c2e8d47b06aa13c5e2f1097d44"), r"is not a safetensors file \(its first bytes are not a "
                                                         r"safetensors header\)"),
])
def test_junk_is_refused_from_its_first_bytes(sources, junk_web, downloads, head, message):
    if head is None:  # a real pickle, renamed .safetensors
        pickled = io.BytesIO()
        torch.save({"lora_up.weight": torch.zeros(2, 2)}, pickled, _use_new_zipfile_serialization=False)
        head = pickled.getvalue()
    junk_web.flood("/lora.safetensors", head, total=32 << 20)
    with pytest.raises(ValueError, match=message):
        sources.resolve_lora(junk_web.url + "/lora.safetensors")
    junk_web.finish("/lora.safetensors")
    assert junk_web.sent["/lora.safetensors"] < 8 << 20, "the download went on past the first bytes"
    assert _files(downloads) == []


def test_comfyui_interrupt_stops_a_trickling_download(sources, comfy_host, junk_web, downloads, lora_bytes):
    junk_web.trickle("/slow.safetensors", lora_bytes[:64], every=0.5, count=20, length=len(lora_bytes))
    mm = comfy_host.model_management
    timer = threading.Timer(1.0, mm.interrupt_current_processing, (True,))
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(mm.InterruptProcessingException):
            sources.resolve_lora(junk_web.url + "/slow.safetensors")
    finally:
        timer.cancel()
        mm.interrupt_current_processing(False)
    assert time.monotonic() - started < 2.5, "the interrupt was not seen within a second"
    assert _files(downloads) == []


def test_other_local_ports_and_credentials_are_refused(sources, server, downloads, junk_web, caplog):
    refused = "could not be fetched: the host is unreachable or not allowed"
    hits = dict(server.hits)
    with pytest.raises(ValueError, match=refused):  # junk_web's port is allowed now, the first server's is not
        sources.resolve_lora(server.url + "/good.safetensors")
    with pytest.raises(ValueError, match=refused):
        sources.resolve_lora(server.url.replace("127.0.0.1", "localhost") + "/good.safetensors")
    junk_web.routes["/moved.safetensors"] = LocalWeb.redirect(server.url + "/good.safetensors")
    with pytest.raises(ValueError, match=refused):
        sources.resolve_lora(junk_web.url + "/moved.safetensors")
    assert server.hits == hits
    with pytest.raises(ValueError) as error:
        sources.resolve_lora(f"http://admin:hunter2@127.0.0.1:{junk_web.port}/x.safetensors")
    assert "user name or password" in str(error.value) and "hunter2" not in str(error.value)
    assert "hunter2" not in caplog.text and junk_web.hits.get("/x.safetensors", 0) == 0
    assert _files(downloads) == []


def test_the_lora_node_takes_a_url(ltx_pack, comfy_host, server, downloads, tmp_path, lora_bytes):
    tcfg = tiny.transformer_config()
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    comfy_host.folder_paths.add_model_folder_path("checkpoints", str(folder))
    tiny.save_single_file(folder / CKPT, transformer=tiny.reference_transformer(tcfg), transformer_config_=tcfg)
    model = ltx_pack.nodes.loaders.LTX097ModelLoader.execute(ckpt_name=CKPT, weight_dtype="auto").result[0]
    url = server.url + "/good.safetensors"
    (patched,) = ltx_pack.nodes.lora.LTX097LoraLoader.execute(model=model, lora_name="none", strength=1.0,
                                                               source=url).result
    assert len(patched.patcher.patches) == 27 and patched.extra["loras"][0]["path"] == url
    (stack,) = ltx_pack.nodes.lora.LTX097LoraStack.execute(loras=f'[{{"path": "{url}", "scale": 0.5}}]').result
    stacked = ltx_pack.nodes.lora.apply_lora_stack(model, stack)
    assert {p[0][0] for p in stacked.patcher.patches.values()} == {0.5}


# ------------------------------------------------------------------------------------------------------------------
# Hugging Face


def _fake_hub_cache(root: Path, repo_id: str, files: dict[str, bytes]) -> Path:
    """huggingface_hub's cache layout (models--owner--name/refs/main, snapshots/<commit>/...) for one repo."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    for name, data in files.items():
        target = repo / "snapshots" / commit / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return repo / "snapshots" / commit


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_a_hugging_face_repo_from_the_offline_cache(sources, offline_hub, lora_bytes):
    snapshot = _fake_hub_cache(offline_hub, "someone/ltxv-style-lora", {"style.safetensors": lora_bytes})
    assert Path(sources.resolve_lora("someone/ltxv-style-lora")) == snapshot / "style.safetensors"
    assert Path(sources.resolve_lora("someone/ltxv-style-lora", "style.safetensors")).read_bytes() == lora_bytes
    with pytest.raises(ValueError, match=r"'other\.safetensors' of Hugging Face repo 'someone/ltxv-style-lora' is not "
                                         r"in the local cache and offline mode \(HF_HUB_OFFLINE\) is on"):
        sources.resolve_lora("someone/ltxv-style-lora", "other.safetensors")
    with pytest.raises(ValueError, match=r"'\*\.safetensors' of Hugging Face repo 'nobody/missing' is not in the local "
                                         r"cache"):
        sources.resolve_lora("nobody/missing")


def test_a_repo_with_several_files_needs_weight_name(sources, offline_hub, lora_bytes):
    _fake_hub_cache(offline_hub, "someone/two-loras", {"a.safetensors": lora_bytes, "b/c.safetensors": lora_bytes})
    with pytest.raises(ValueError, match=r"'someone/two-loras' has 2 \.safetensors files \(a\.safetensors, "
                                         r"b/c\.safetensors\); say which one with weight_name"):
        sources.resolve_lora("someone/two-loras")
    assert Path(sources.resolve_lora("someone/two-loras", "b/c.safetensors")).name == "c.safetensors"
    _fake_hub_cache(offline_hub, "someone/diffusers-style",
                    {"pytorch_lora_weights.safetensors": lora_bytes, "other.safetensors": lora_bytes})
    assert Path(sources.resolve_lora("someone/diffusers-style")).name == "pytorch_lora_weights.safetensors"
    for bad in ("../x.safetensors", "/abs.safetensors", "weights.bin"):
        with pytest.raises(ValueError, match="weight_name"):
            sources.resolve_lora("someone/two-loras", bad)


def test_without_huggingface_hub_the_message_says_so(sources, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(ValueError, match=r"'someone/repo' looks like a Hugging Face repo id, but the huggingface_hub "
                                         r"package is not installed"):
        sources.resolve_lora("someone/repo", "x.safetensors")


def test_a_file_in_the_loras_folder_wins_over_a_repo_id(sources, downloads, lora_bytes):
    folder = downloads.parent / "someone"
    folder.mkdir()
    (folder / "repo").write_bytes(lora_bytes)
    save_file({"x": torch.zeros(1)}, str(folder / "file.safetensors"))
    assert Path(sources.resolve_lora("someone/file.safetensors")) == folder / "file.safetensors"
    with pytest.raises(ValueError, match="is not a .safetensors file"):
        sources.resolve_lora("someone/repo")
