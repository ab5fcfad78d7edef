#!/usr/bin/env bash
# For `make test` only: the browser test needs a headless Chromium. Installs Debian's package once, only if no
# Chromium is there (CHROMIUM=/path/to/chrome skips this). Users rendering videos never need it.
set -euo pipefail
have() { command -v "$1" >/dev/null 2>&1; }
if [ -z "${CHROMIUM:-}" ] && ! have chromium && ! have chromium-browser; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif have sudo; then SUDO="sudo -n"; else SUDO=none; fi
  if [ "$SUDO" != none ] && have apt-get; then
    echo "setup: installing Debian's chromium (for the browser test) ..."
    APT_LOG=$(mktemp)
    if ! { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
           $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
             chromium fonts-liberation; } >"$APT_LOG" 2>&1; then
      cat "$APT_LOG" >&2
      echo "setup: installing chromium failed; the browser test will fail until it is installed" >&2
    fi
    rm -f "$APT_LOG"
  else
    echo "setup: no chromium and no way to install it (needs root or sudo and apt-get); the browser test will" \
         "fail until chromium is installed or CHROMIUM points at a Chrome/Chromium binary" >&2
  fi
fi
