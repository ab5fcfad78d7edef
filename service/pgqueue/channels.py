"""What the fleet's instances agree on besides the tables: the notification channels and the priorities.

Kept apart from the SQL so the gateway imports no database driver (psycopg is needed only once connecting).
"""

CANCEL_CHANNEL = "ltxv097_cancel"
"""A cancel of a running job: the payload is its request id; the worker running it interrupts ComfyUI."""
SUBMIT_CHANNEL = "ltxv097_submit"
"""Idle workers wake on this channel at once instead of at their next look."""
NORMAL, LOW = 0, 1
"""Priorities: fal's `X-Fal-Queue-Priority: low` waits behind every normal request."""
