#!/usr/bin/env bash
# For `make test` only: the API tests drive the server with the hosted service's official JavaScript client,
# `@fal-ai/client` from npm, installed once into the git-ignored .api_clients/ (needs Node 20+ and npm).
# The Python client (`fal-client`) comes with requirements-dev.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=.api_clients
VERSION=1.10.1
if [ ! -f "$DIR/node_modules/@fal-ai/client/package.json" ] ||
   ! grep -q "\"version\": \"$VERSION\"" "$DIR/node_modules/@fal-ai/client/package.json"; then
  command -v npm >/dev/null 2>&1 || { echo "setup: npm not found; the API client tests need Node 20+ and npm" >&2; exit 1; }
  mkdir -p "$DIR"
  [ -f "$DIR/package.json" ] || echo '{"name": "ltxv097-api-clients", "private": true}' > "$DIR/package.json"
  npm install --prefix "$DIR" --no-audit --no-fund --silent "@fal-ai/client@$VERSION"
fi
