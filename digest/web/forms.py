"""Reading the small POSTed forms of the web pages, and refusing anything larger."""

from __future__ import annotations

import zoneinfo
from functools import cache

from starlette.requests import Request

# A form of these pages is a few short fields; anything much larger is not ours.
MAX_FORM_BYTES = 16_384


async def small_form(request: Request) -> dict[str, str] | None:
    """The text fields of a POSTed form, or None when the body is too large to be ours."""
    if _content_length(request) > MAX_FORM_BYTES:
        return None
    async with request.form(max_files=0, max_fields=20) as parsed:
        return {k: v for k, v in parsed.items() if isinstance(v, str)}


def _content_length(request: Request) -> int:
    try:
        return int(request.headers.get("content-length") or 0)
    except ValueError:
        return 0


@cache
def timezone_names() -> tuple[str, ...]:
    """Every IANA zone name this machine knows, for the timezone pickers."""
    return tuple(sorted(zoneinfo.available_timezones()))
