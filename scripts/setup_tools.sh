#!/usr/bin/env bash
# For `make test` only: the ecosystem tools the packaging tests drive, kept out of .venv so they can never change
# its torch / transformers / huggingface_hub versions. Everything lands in .venv-tools/ (git-ignored):
#   cli/       a venv of its own with comfy-cli (`comfy node validate`, the Comfy Registry's publishing checks)
#   manager/   ComfyUI-Manager (`cm-cli`) and those of its dependencies .venv lacks, as a --target folder: the
#              Manager runs in the host's Python (.venv) with this folder on PYTHONPATH, as it does inside ComfyUI,
#              so the pip installs it makes for a pack go where the host would import them from
#   frontend/  the newest ComfyUI frontend, for the browser test's second run (`--front-end-root`)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TOOLS=.venv-tools
STAMP=$TOOLS/.ready-v1  # bump when a version below changes

COMFY_CLI=comfy-cli==1.23.0
MANAGER=comfyui-manager==4.3
NEWEST_FRONTEND=comfyui-frontend-package==1.58.1

quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

if [ ! -f "$STAMP" ]; then
  rm -rf "$TOOLS"
  mkdir -p "$TOOLS"
  "$PY" -m venv "$TOOLS/cli"
  quiet "$TOOLS/cli/bin/python" -m pip install -q "$COMFY_CLI"

  # What .venv would need for the Manager, resolved against what it has (a dry run changes nothing there).
  quiet .venv/bin/python -m pip install -q --dry-run --ignore-installed --report "$TOOLS/manager.json" "$MANAGER" \
    >/dev/null
  .venv/bin/python - "$TOOLS/manager.json" > "$TOOLS/manager.txt" <<'PYEOF'
import json, sys
from importlib import metadata

def installed(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None

for item in json.load(open(sys.argv[1]))["install"]:
    name, version = item["metadata"]["name"], item["metadata"]["version"]
    if installed(name) is None:
        print(f"{name}=={version}")
PYEOF
  quiet .venv/bin/python -m pip install -q --no-deps --target "$TOOLS/manager" -r "$TOOLS/manager.txt"
  quiet .venv/bin/python -m pip install -q --no-deps --target "$TOOLS/frontend" "$NEWEST_FRONTEND"
  touch "$STAMP"
fi
