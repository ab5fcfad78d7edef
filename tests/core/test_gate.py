"""The key gate's tokens and sessions without a server: what a signed file URL opens, and what voids it."""

from __future__ import annotations

import stat

from service import gate

FILES = "/ltxv097_api/files"
URL = f"https://host:8188{FILES}/0b7e2a4c-3f1d-4c55-9a0e-5d6f7a8b9c0d/ltxv097_00001_.mp4"


def test_a_signed_url_names_one_file_and_dies_with_the_keys(tmp_path):
    secret = gate.load_secret(tmp_path)
    assert stat.S_IMODE((tmp_path / gate.SECRET_FILE).stat().st_mode) == 0o600
    assert gate.load_secret(tmp_path) == secret, "kept across restarts"
    keyed = gate.Gate(["k1"], secret, FILES)
    signed = keyed.signed(URL)
    base, _, token = signed.partition(f"?{gate.TOKEN_PARAM}=")
    assert base == URL and len(token) == 64
    assert keyed.signed(URL.replace("00001", "00002")) != signed, "a token opens its own file only"
    assert gate.Gate(["k2"], secret, FILES).signed(URL) != signed, "new keys void old tokens"
    assert gate.Gate(["k1"], bytes(32), FILES).signed(URL) != signed, "the random secret is part of it"
    assert gate.Gate([], secret, FILES).signed(URL) == URL, "no keys: nothing to sign"
    cookie = keyed.session_cookie(now=1000.0)
    expires, _, mac = cookie.partition(".")
    assert int(expires) == 1000 + gate.SESSION_SECONDS and len(mac) == 64 and "k1" not in cookie
