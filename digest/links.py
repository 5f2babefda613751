"""Signed link tokens for unsubscribe, confirm, manage, view-in-browser and vote links.

A token is `<id>.<day>.<mac>`: the row id and the day it was issued (days
since 2020-01-01), both in base 36, and a truncated HMAC-SHA256 over
(purpose, id, email, day). Binding the email means a token dies with the
address it was made for; binding the purpose means an unsubscribe token
cannot confirm; the day lets `web.link_max_age_days` retire old links.
Tokens stay short (~35 characters) so `List-Unsubscribe` fits on one header
line. Changing the secret invalidates every link already sent. Tokens made
before the day was added (`<id>.<mac>`) still verify, undated, until the
secret is rotated. A "more / less like this" link under a paper names a
digest and a paper instead of one row: `vote_token`.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os
import secrets
from datetime import date, datetime
from pathlib import Path
from typing import Literal

from digest.config import WebSettings
from digest.errors import ConfigError

Purpose = Literal["unsubscribe", "confirm", "manage", "view"]
# "More like this" / "Less like this" under a paper of a digest (see `vote_token`)
VoteLink = Literal["more", "less"]
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
VOTE_PATHS: dict[VoteLink, str] = {"more": "more", "less": "less"}


EPOCH = date(2020, 1, 1)
MIN_SECRET_CHARACTERS = 32
MIN_DISTINCT_CHARACTERS = 10
HOW_TO_MAKE_ONE = "`digest web secret` prints a good one"


def new_secret() -> str:
    """A fresh random key: 32 bytes from the OS, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def _strong(key: str, where: str) -> bytes:
    """The key, if it could plausibly hold 32 random bytes; else ConfigError.

    A short or repetitive key can be found offline from a single link (try
    keys until one reproduces the token's MAC), and with it a token for any
    subscriber computed. Entropy cannot be measured from one string; length
    and variety rule out what people type by hand ("a", "changeme", "   ").
    """
    stripped = key.strip()
    if len(stripped) < MIN_SECRET_CHARACTERS or len(set(stripped)) < MIN_DISTINCT_CHARACTERS:
        raise ConfigError(
            f"{where} is too weak ({len(stripped)} characters, {len(set(stripped))} different): "
            f"use at least {MIN_SECRET_CHARACTERS} random characters; {HOW_TO_MAKE_ONE}"
        )
    return stripped.encode()


def load_secret(web: WebSettings) -> bytes:
    """The HMAC key: `web.secret` if set, else a random key kept in `web.secret_file`.

    Refuses a weak key and a key file other users can read (ConfigError, exit 3).
    """
    if web.secret:
        return _strong(web.secret, "web.secret")
    path = Path(web.secret_file)
    try:
        if path.is_file():
            mode = path.stat().st_mode
            if mode & 0o007:
                raise ConfigError(
                    f"web.secret_file {path} can be read by other users (mode {mode & 0o777:o}): "
                    f"run `chmod 600 {path}`"
                )
            key = path.read_text().strip()
            if not key:
                raise ConfigError(f"web.secret_file {path} is empty; delete it to get a new key")
            return _strong(key, f"web.secret_file {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        key = new_secret()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it between our check and open
            return path.read_text().strip().encode()
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
        return key.encode()
    except OSError as exc:
        raise ConfigError(f"web.secret_file {path}: {exc.strerror}") from None


def _message(purpose: Purpose, row_id: int, email: str, day: int | None) -> str:
    """What a subscriber token signs (an undated token, from before tokens carried their
    day, signs no day)."""
    message = f"{purpose}\n{row_id}\n{email}"
    return message if day is None else f"{message}\n{day}"


def _mac(secret: bytes, purpose: Purpose, row_id: int, email: str, day: int | None) -> str:
    message = _message(purpose, row_id, email, day)
    return _encoded(hmac.new(secret, message.encode(), hashlib.sha256).digest())


_URL_SAFE = bytes.maketrans(b"+/", b"-_")


def _encoded(mac: bytes) -> str:
    """The first MAC_BYTES of a MAC in unpadded URL-safe base64 (what
    `base64.urlsafe_b64encode` gives, without its Python-level wrappers)."""
    return (
        binascii.b2a_base64(mac[:MAC_BYTES], newline=False)
        .translate(_URL_SAFE)
        .rstrip(b"=")
        .decode()
    )


def issue_day(when: datetime | date) -> int:
    """Days since EPOCH: the issue time a token carries (a day is fine enough to expire by)."""
    day = when.date() if isinstance(when, datetime) else when
    return (day - EPOCH).days


def make_token(
    secret: bytes, purpose: Purpose, row_id: int, email: str, *, issued: datetime | date
) -> str:
    return Signer(secret).token(purpose, row_id, email, issued=issued)


def token_row_id(token: str) -> int | None:
    """The id a token claims to be for (unverified), or None if it is malformed."""
    head, sep, _ = token.partition(".")
    return _base36(head, MAX_ROW_ID) if sep else None


def verify_token(
    secret: bytes,
    purpose: Purpose,
    token: str,
    row_id: int,
    email: str,
    *,
    now: datetime,
    max_age_days: int,
) -> bool:
    """Whether `token` was made by us for this purpose, row and email (constant time),
    and was issued at most `max_age_days` before `now`."""
    parts = token.split(".")
    day: int | None = None
    if len(parts) == 3:
        day = _base36(parts[1], 10**6)
        if day is None:
            return False
        expected = f"{_to_base36(row_id)}.{parts[1]}.{_mac(secret, purpose, row_id, email, day)}"
    else:  # a token from before tokens were dated
        expected = f"{_to_base36(row_id)}.{_mac(secret, purpose, row_id, email, None)}"
    valid = hmac.compare_digest(expected.encode(), token.encode("utf-8", "replace"))
    if day is not None:
        age = issue_day(now) - day
        valid = valid and -1 <= age <= max_age_days
    return valid


def vote_token(
    secret: bytes,
    vote: VoteLink,
    digest_id: int,
    paper_id: int,
    email: str,
    *,
    issued: datetime | date,
) -> str:
    """A "more / less like this" token: `<digest>.<paper>.<day>.<mac>`.

    Signed per (vote, digest, paper, address): the link works only for a paper
    of the digest it came in, only for the vote it names, and dies with the
    address like every other link. About 40 characters, so the text part keeps
    each link on one line.
    """
    day = max(0, issue_day(issued))
    mac = _vote_mac(secret, vote, digest_id, paper_id, email, day)
    return f"{_to_base36(digest_id)}.{_to_base36(paper_id)}.{_to_base36(day)}.{mac}"


_BLOCK = 64  # SHA-256's block size, which HMAC pads the key to
_INNER_PAD = bytes(x ^ 0x36 for x in range(256))
_OUTER_PAD = bytes(x ^ 0x5C for x in range(256))


class Signer:
    """The tokens of one secret, with HMAC-SHA256 keyed once. A delivery run signs about
    twenty links for every message it sends.

    HMAC (RFC 2104) is a hash of the key's outer pad and the hash of its inner pad and
    the message: the two SHA-256 states after the pads are made once, here, and each
    token copies them. `hmac.HMAC.copy()` does the same but builds a Python object
    per copy, which made signing a visible part of building a message; the tests
    check every token against `hmac.new`.
    """

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        key = hashlib.sha256(secret).digest() if len(secret) > _BLOCK else secret
        key = key.ljust(_BLOCK, b"\0")
        self.inner = hashlib.sha256(key.translate(_INNER_PAD))
        self.outer = hashlib.sha256(key.translate(_OUTER_PAD))

    def started(self, head: bytes) -> hashlib._Hash:
        """The inner hash after `head`, the start many messages share (copy it to go on)."""
        state = self.inner.copy()
        state.update(head)
        return state

    def mac(self, started: hashlib._Hash, rest: bytes) -> bytes:
        """HMAC-SHA256 of the message `started` began, ending in `rest`."""
        inner = started.copy()
        inner.update(rest)
        outer = self.outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def token(self, purpose: Purpose, row_id: int, email: str, *, issued: datetime | date) -> str:
        """A subscriber token, `<row>.<day>.<mac>` (what `make_token` makes)."""
        day = max(0, issue_day(issued))
        mac = self.mac(self.inner, _message(purpose, row_id, email, day).encode())
        return f"{_to_base36(row_id)}.{_to_base36(day)}.{_encoded(mac)}"


class VoteSigner:
    """`vote_token` for many papers of one digest: what does not depend on the paper (the
    digest's id and day, the address) is encoded once, and the HMAC state after the
    message's start (vote and digest) is kept to be copied. A delivery run signs two
    links per paper of every digest it sends."""

    def __init__(
        self, secret: bytes | Signer, digest_id: int, email: str, *, issued: datetime | date
    ):
        signer = secret if isinstance(secret, Signer) else Signer(secret)
        self.digest_id = digest_id
        self.day = max(0, issue_day(issued))
        self.head = f"{_to_base36(digest_id)}."
        self.tail = f".{_to_base36(self.day)}."
        self.rest = f"\n{email}\n{self.day}"
        self.signer = signer
        self.started = {
            vote: signer.started(f"vote-{vote}\n{digest_id}\n".encode())
            for vote in ("more", "less")
        }

    def token(self, vote: VoteLink, paper_id: int) -> str:
        """The same token `vote_token` makes for this digest, address and day."""
        return self._token(vote, paper_id, f"{self.head}{_to_base36(paper_id)}{self.tail}")

    def tokens(self, paper_id: int) -> tuple[str, str]:
        """The "more" and the "less" token of a paper (`token` for each)."""
        unsigned = f"{self.head}{_to_base36(paper_id)}{self.tail}"
        return self._token("more", paper_id, unsigned), self._token("less", paper_id, unsigned)

    def _token(self, vote: VoteLink, paper_id: int, unsigned: str) -> str:
        mac = self.signer.mac(self.started[vote], f"{paper_id}{self.rest}".encode())
        return unsigned + _encoded(mac)


def vote_token_ids(token: str) -> tuple[int, int] | None:
    """(digest id, paper id) a vote token claims (unverified), or None if it is malformed."""
    parts = token.split(".")
    if len(parts) != 4:
        return None
    digest_id, paper_id = _base36(parts[0], MAX_ROW_ID), _base36(parts[1], MAX_ROW_ID)
    if digest_id is None or paper_id is None:
        return None
    return digest_id, paper_id


def verify_vote_token(
    secret: bytes,
    vote: VoteLink,
    token: str,
    email: str,
    *,
    now: datetime,
    max_age_days: int,
) -> bool:
    """Whether `token` is ours for this vote and address (constant time), and not too old."""
    ids = vote_token_ids(token)
    parts = token.split(".")
    if ids is None:
        return False
    day = _base36(parts[2], 10**6)
    if day is None:
        return False
    expected = (
        f"{parts[0]}.{parts[1]}.{parts[2]}.{_vote_mac(secret, vote, ids[0], ids[1], email, day)}"
    )
    valid = hmac.compare_digest(expected.encode(), token.encode("utf-8", "replace"))
    # (the numbers as written must be the canonical base 36 of those signed: one link,
    # one spelling)
    valid = (
        valid
        and parts[0] == _to_base36(ids[0])
        and parts[1] == _to_base36(ids[1])
        and parts[2] == _to_base36(day)
    )
    age = issue_day(now) - day
    return valid and -1 <= age <= max_age_days


def _vote_mac(
    secret: bytes, vote: VoteLink, digest_id: int, paper_id: int, email: str, day: int
) -> str:
    message = f"vote-{vote}\n{digest_id}\n{paper_id}\n{email}\n{day}"
    return _encoded(hmac.new(secret, message.encode(), hashlib.sha256).digest())


def link_url(
    base_url: str,
    secret: bytes,
    purpose: Purpose,
    row_id: int,
    email: str,
    *,
    issued: datetime | date,
) -> str:
    """The absolute URL of a signed link, e.g. `{base_url}/u/{token}`."""
    token = make_token(secret, purpose, row_id, email, issued=issued)
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


def _base36(text: str, most: int) -> int | None:
    """A short base-36 number up to `most`, or None for anything else."""
    if not text or len(text) > 13 or not text.isalnum() or not text.isascii():
        return None
    try:
        number = int(text, 36)
    except ValueError:
        return None
    return number if number <= most else None
