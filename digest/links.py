"""Signed link tokens for unsubscribe, confirm, manage and view-in-browser links.

A token is `<id>.<mac>`: the row id in base 36 and a truncated HMAC-SHA256 over
(purpose, id, email). Binding the email means a token dies with the address it
was made for; binding the purpose means an unsubscribe token cannot confirm.
Tokens stay short (~30 characters) so `List-Unsubscribe` fits on one header
line. Changing the secret invalidates every link already sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Literal

from digest.config import WebSettings
from digest.errors import ConfigError

Purpose = Literal["unsubscribe", "confirm", "manage", "view"]
MAC_BYTES = 16
# Row ids are 32-bit integers in the schema; a token claiming a larger id is
# forged, and refusing it here keeps out-of-range numbers away from the database.
MAX_ROW_ID = 2**31 - 1
# The path of each kind of link under `web.base_url` (served by digest.web).
LINK_PATHS: dict[Purpose, str] = {
    "unsubscribe": "u",
    "confirm": "confirm",
    "manage": "m",
    "view": "d",
}


def load_secret(web: WebSettings) -> bytes:
    """The HMAC key: `web.secret` if set, else a random key kept in `web.secret_file`."""
    if web.secret:
        return web.secret.encode()
    path = Path(web.secret_file)
    try:
        if path.is_file():
            key = path.read_text().strip()
            if not key:
                raise ConfigError(f"web.secret_file {path} is empty; delete it to get a new key")
            return key.encode()
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it between our check and open
            return path.read_text().strip().encode()
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
        return key.encode()
    except OSError as exc:
        raise ConfigError(f"web.secret_file {path}: {exc.strerror}") from None


def _mac(secret: bytes, purpose: Purpose, row_id: int, email: str) -> str:
    message = f"{purpose}\n{row_id}\n{email}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()[:MAC_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_token(secret: bytes, purpose: Purpose, row_id: int, email: str) -> str:
    return f"{_to_base36(row_id)}.{_mac(secret, purpose, row_id, email)}"


def token_row_id(token: str) -> int | None:
    """The id a token claims to be for (unverified), or None if it is malformed."""
    head, sep, _ = token.partition(".")
    if not sep or not head or len(head) > 13 or not head.isalnum() or not head.isascii():
        return None
    try:
        row_id = int(head, 36)
    except ValueError:
        return None
    return row_id if row_id <= MAX_ROW_ID else None


def verify_token(secret: bytes, purpose: Purpose, token: str, row_id: int, email: str) -> bool:
    """Whether `token` was made by us for this purpose, row and email (constant time)."""
    expected = make_token(secret, purpose, row_id, email)
    return hmac.compare_digest(expected.encode(), token.encode("utf-8", "replace"))


def link_url(base_url: str, secret: bytes, purpose: Purpose, row_id: int, email: str) -> str:
    """The absolute URL of a signed link, e.g. `{base_url}/u/{token}`."""
    token = make_token(secret, purpose, row_id, email)
    return f"{base_url.rstrip('/')}/{LINK_PATHS[purpose]}/{token}"


def _to_base36(number: int) -> str:
    if number < 0:
        raise ValueError("ids are not negative")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if number == 0:
            return out
