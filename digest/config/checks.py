"""Checks the settings declarations name: each returns an error message, or None when fine.

`load_settings` runs them on every value it reads (after type and range
checks); they take the value only, so a declaration says `check=check_address`.
"""

from __future__ import annotations

import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from digest.errors import BadInput
from digest.values import arxiv_categories, zone_of

__all__ = [
    "check_address",
    "check_arxiv_categories",
    "check_database_url",
    "check_hh_mm",
    "check_http_url",
    "check_no_newlines",
    "check_timezone",
]


def check_timezone(value: str) -> str | None:
    try:
        zone_of(value)
    except BadInput as exc:
        return str(exc)
    return None


def check_database_url(value: str) -> str | None:
    try:
        url = make_url(value)
    except ArgumentError:
        return f"not a database URL: {value!r} (e.g. 'sqlite:///var/digest.db')"
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        return f"unsupported database {url.get_backend_name()!r}: use sqlite or postgresql"
    return None


def check_http_url(value: str) -> str | None:
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        return f"not an http(s) URL: {value!r}"
    return None


def check_hh_mm(value: str) -> str | None:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", value)
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        return f"not a time of day: {value!r} (use HH:MM, 24-hour)"
    return None


def check_address(value: str) -> str | None:
    if not re.fullmatch(r"[^@\s<>\"]+@[^@\s<>\"]+", value):
        return f"not an email address: {value!r}"
    return None


def check_no_newlines(value: str) -> str | None:
    if any(ord(ch) < 32 and ch != "\t" for ch in value):
        return "must not contain line breaks or control characters"
    return None


def check_arxiv_categories(value: str) -> str | None:
    try:
        arxiv_categories(value)
    except BadInput as exc:
        return str(exc)
    return None
