#!/usr/bin/env bash
# Installs other transformers releases beside the venv's (4.51.3, pinned for the reference package), each in its
# own git-ignored folder .transformers/<version>/, for the test that runs the prompt enhancer and safety checker
# on the oldest and newest releases ComfyUI users have. Put a folder first on PYTHONPATH to use it.
#   bash scripts/setup_transformers.sh 4.50.0 5.24.0
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

# What each release needs beyond what the venv already has (the venv's huggingface_hub 0.36 and tokenizers 0.21
# suit 4.50; 5.x needs huggingface_hub 1+ and tokenizers 0.23 and their own dependencies).
extras() {
  case "$1" in
    4.*) echo "" ;;
    5.*) echo "huggingface_hub==2.4.0 tokenizers==0.23.3 httpx2==2.16.2 httpcore2==2.16.2 truststore==0.10.5 \
typer==0.29.2 click==8.5.1 rich==15.0.0 markdown-it-py==4.3.0 mdurl==0.1.2 shellingham==1.5.4 annotated-doc==0.0.7 \
pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5" ;;
    *) echo "unknown transformers release $1" >&2; exit 2 ;;
  esac
}

for version in "$@"; do
  target=.transformers/$version
  [ -f "$target/.ready" ] && continue
  rm -rf "$target" "$target.tmp"
  # shellcheck disable=SC2046  # the extras are separate arguments
  "$PY" -m pip install -q --no-deps --target "$target.tmp" "transformers==$version" $(extras "$version") \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  touch "$target.tmp/.ready"
  mv "$target.tmp" "$target"
done
