"""HTTP for every source: one User-Agent, bounded retries, bounded replies.

`get` is what the Hugging Face and arXiv sources call. It retries what may
pass (a time-out, connection trouble, 5xx, 429) with a doubling back-off, and
when the server says how long to wait (`Retry-After`, as arXiv and Hugging
Face send with 429 and 503) it waits that long instead, within a bound: a
server asking for more than `MAX_RETRY_AFTER_SECONDS` is not waited for, the
failure is reported and the daemon's own retry comes back later. The body is
read in chunks and abandoned past `max_bytes`, so a runaway reply cannot take
the machine's memory. Every failure is a `SourceError` naming the URL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from digest import __version__
from digest.errors import SourceError

USER_AGENT = f"digest/{__version__} (self-hosted paper digest)"
BACKOFF_SECONDS = 0.5  # first retry delay; doubles each attempt
MAX_RETRY_AFTER_SECONDS = 300.0

Check = Callable[[httpx.Response, bytes, str], None]
"""Looks at a 200 reply (response, body, shown URL); raises SourceError if it is not wanted."""


def client(timeout: float, *, accept: str = "*/*") -> httpx.Client:
    return httpx.Client(
        timeout=timeout,
        headers={"User-Agent": USER_AGENT, "Accept": accept},
        follow_redirects=True,
    )


class Pace:
    """At least `seconds` between one request's end and the next one's start, for a
    source that asks for a request rate (arXiv's API; a title lookup per paper)."""

    def __init__(
        self, seconds: float, *, sleep: Callable[[float], None], clock: Callable[[], float]
    ) -> None:
        self.seconds = seconds
        self.sleep = sleep
        self.clock = clock
        self._last: float | None = None

    def wait(self) -> None:
        """Before a request: sleep out what is left of the gap since the last one."""
        if self._last is not None:
            left = self._last + self.seconds - self.clock()
            if left > 0:
                self.sleep(left)

    def done(self) -> None:
        """After a request: the gap counts from now."""
        self._last = self.clock()


class HttpRefused(SourceError):
    """The server answered with a status that retrying will not change (a 4xx but 429)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class _Retry(Exception):
    """A failure worth another attempt; `wait` is what the server asked for, if anything."""

    def __init__(self, problem: str, wait: float | None = None) -> None:
        super().__init__(problem)
        self.wait = wait


def get(
    http: httpx.Client,
    url: str,
    params: dict[str, str],
    *,
    retries: int,
    sleep: Callable[[float], None],
    max_bytes: int,
    check: Check | None = None,
) -> tuple[bytes, str]:
    """The body of one GET and the URL as shown in messages; SourceError after `retries`."""
    shown = str(httpx.URL(url, params=params)) if params else url
    problem = ""
    wait: float | None = None
    for attempt in range(retries + 1):
        if attempt:
            backoff = BACKOFF_SECONDS * 2 ** (attempt - 1)
            sleep(backoff if wait is None else max(wait, backoff))
        try:
            body = _get_once(http, url, params, shown, max_bytes, check)
            return body, shown
        except _Retry as exc:
            problem, wait = str(exc), exc.wait
            if wait is not None and wait > MAX_RETRY_AFTER_SECONDS:
                raise SourceError(
                    f"{shown}: {problem}; the server asks to wait {wait:.0f}s (Retry-After), "
                    "more than digest waits: try again later"
                ) from None
    tries = retries + 1
    raise SourceError(f"{shown}: {problem} (gave up after {tries} attempt{'s' * (tries > 1)})")


def _get_once(
    http: httpx.Client,
    url: str,
    params: dict[str, str],
    shown: str,
    max_bytes: int,
    check: Check | None,
) -> bytes:
    try:
        with http.stream("GET", url, params=params) as response:
            status = response.status_code
            if status == 429 or status >= 500:
                wait = retry_after(response.headers.get("retry-after"))
                raise _Retry(f"HTTP {status} {response.reason_phrase}", wait)
            if status != 200:
                raise HttpRefused(f"{shown}: HTTP {status} {response.reason_phrase}", status)
            body = _read_bounded(response, shown, max_bytes)
    except httpx.TimeoutException:
        raise _Retry(f"timed out after {http.timeout.read}s") from None
    except httpx.TransportError as exc:
        raise _Retry(f"cannot connect: {exc or type(exc).__name__}") from None
    except httpx.InvalidURL as exc:
        raise SourceError(f"{shown}: not a valid URL: {exc}") from None
    if check is not None:
        check(response, body, shown)
    return body


def _read_bounded(response: httpx.Response, shown: str, max_bytes: int) -> bytes:
    too_big = f"{shown}: the reply is larger than {max_bytes // 2**20} MiB; refused"
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise SourceError(too_big)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise SourceError(too_big)
        chunks.append(chunk)
    return b"".join(chunks)


def retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not "²", which float() refuses
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


__all__ = [
    "BACKOFF_SECONDS",
    "MAX_RETRY_AFTER_SECONDS",
    "USER_AGENT",
    "HttpRefused",
    "Pace",
    "client",
    "get",
]
