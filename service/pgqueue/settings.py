"""Where the shared queue lives: `database_url` from `ltxv097_api.json`, overridden by `LTX097_API_DATABASE_URL`.

The password never leaves this module in clear: `redact` is what logs, errors and the start-up line show.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

ENV_VAR = "LTX097_API_DATABASE_URL"
_PASSWORD = re.compile(r"(?P<head>://[^:/@?#]*:)(?P<password>[^@/?#]*)(?P<tail>@)")
_PASSWORD_OPTION = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<password>'[^']*'|\S+)")


def database_url(configured: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The environment's URL wins over the config's; empty means no database (the single-server mode)."""
    return (environ.get(ENV_VAR) or configured or "").strip() or None


def redact(text: str, url: str | None = None) -> str:
    """`text` with every password of a connection URL / `password=` option (and `url`'s own password) hidden."""
    if url:
        match = _PASSWORD.search(url)
        if match and match["password"]:
            text = text.replace(match["password"], "***")
    text = _PASSWORD.sub(lambda m: f"{m['head']}***{m['tail']}" if m["password"] else m[0], text)
    return _PASSWORD_OPTION.sub(lambda m: f"{m['head']}***", text)
