"""Fetching URLs for every part of the pack (LoRA downloads, API inputs, webhooks, model downloads), safely.

Only http(s), on every redirect hop; only public addresses (checked after DNS resolution, and the connection goes
to the checked address) unless `LTX097_ALLOW_PRIVATE_URLS=1` or `LTX097_URL_ALLOW_HOSTS=host[:port],...` say
otherwise; one message for a host that is refused or unreachable; no credentials in URLs (tokens come from the
environment, `tokens`; a URL's secret part can stay in memory, `sealed`); an overall deadline, a
minimum rate and a cancel check at least every second. Plain Python: it never imports ComfyUI.
"""

from .download import MAX_REDIRECTS, Progress, download, fetch_bytes, leftover_parts, post_json
from .pace import DEADLINE_BYTES_S, DEADLINE_FLOOR_S, MIN_RATE_BYTES_S, POLL_S, RATE_WINDOW_S
from .policy import (
                     ALLOW_HOSTS_ENV,
                     ALLOW_PRIVATE_ENV,
                     FetchError,
                     check_reachable,
                     check_url,
                     is_public,
                     redact_text,
                     redact_url,
)
from .sealed import release, restore_sealed, seal_url, take_sealed, unseal_url
from .tokens import HF_TOKEN_ENV, host_token_variable

__all__ = ["ALLOW_HOSTS_ENV", "ALLOW_PRIVATE_ENV", "DEADLINE_BYTES_S", "DEADLINE_FLOOR_S", "HF_TOKEN_ENV",
           "MAX_REDIRECTS", "MIN_RATE_BYTES_S", "POLL_S", "RATE_WINDOW_S", "FetchError", "Progress", "check_reachable",
           "check_url", "download", "fetch_bytes", "host_token_variable", "is_public", "leftover_parts", "post_json",
           "redact_text", "redact_url", "release", "restore_sealed", "seal_url", "take_sealed", "unseal_url"]
