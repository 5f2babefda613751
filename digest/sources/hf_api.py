"""The Hugging Face daily_papers JSON: the mapper, and fetching it over HTTP.

The reply of `GET {hf_base_url}/api/daily_papers?date=YYYY-MM-DD` is a bare
JSON array of items, each with a `paper` object (`id` = arXiv id, `title`,
`summary`, `authors[].name`, `upvotes`, `publishedAt`, ...). `parse_hf_json`
maps it to `ParsedDump`; the same mapper reads `.json` files dropped into the
watched folder. Keys we do not know are kept (each paper keeps its whole item
in `extra`) and never fatal; missing or mistyped keys we need are a `BadInput`
naming the item. Over HTTP, every failure becomes a `SourceError` naming the
URL and what was wrong.

HTTP itself (User-Agent, retries, Retry-After, size bounds) is `fetching`.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import httpx

from digest.config import SourceSettings
from digest.errors import BadInput, SourceError
from digest.keys import normalise_arxiv_id
from digest.sources import fetching
from digest.values import ParsedDump, ParsedPaper

MAX_JSON_BYTES = 64 * 1024 * 1024
PAGE_LIMIT = 100  # the API's largest page
MAX_PAGES = 50


def parse_hf_json(data: bytes | Any, *, name: str) -> ParsedDump:
    """Map a daily_papers reply (raw bytes, or already-decoded JSON) to a ParsedDump."""
    items = _unwrap(_decode(data, name) if isinstance(data, bytes | bytearray) else data)
    if not isinstance(items, list):
        raise BadInput(
            f"{name}: expected a JSON array of daily-paper items, got a JSON {_kind(items)}"
        )
    papers: list[ParsedPaper] = []
    days: Counter[date] = Counter()
    for number, item in enumerate(items, start=1):
        papers.append(_paper(item, number, name))
        day = _day(item)
        if day is not None:
            days[day] += 1
    issue_date = days.most_common(1)[0][0] if days else None
    return ParsedDump("hf", tuple(papers), issue_date=issue_date)


def _decode(data: bytes | bytearray, name: str) -> Any:
    if len(data) > MAX_JSON_BYTES:
        raise BadInput(f"{name}: {len(data) / 1e6:.1f} MB is too big for a daily-papers reply")
    try:
        return json.loads(data)
    except UnicodeDecodeError:
        raise BadInput(f"{name}: not UTF-8 text, so not JSON") from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"{name}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    except RecursionError:  # `[[[[...` a hundred thousand deep: hostile, or not a reply
        raise BadInput(
            f"{name}: JSON nested too deeply to be a daily-papers list (a list of objects)"
        ) from None


def _unwrap(decoded: Any) -> Any:
    """Tolerate a reply wrapped as {"papers": [...]}."""
    if isinstance(decoded, dict) and isinstance(decoded.get("papers"), list):
        return decoded["papers"]
    return decoded


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "number" if isinstance(value, int | float) else "null"
    )


def _paper(item: Any, number: int, name: str) -> ParsedPaper:
    where = f"{name}: item {number}"
    if not isinstance(item, dict):
        raise BadInput(f"{where}: expected an object with a 'paper', got a JSON {_kind(item)}")
    paper = item.get("paper", item)  # /api/papers lists bare paper objects
    if not isinstance(paper, dict):
        raise BadInput(f"{where}: 'paper' should be an object, got a JSON {_kind(paper)}")
    title = paper.get("title", item.get("title"))
    if not isinstance(title, str) or not title.strip():
        raise BadInput(f"{where}: 'paper.title' is missing or not text")
    summary = paper.get("summary", item.get("summary")) or ""
    if not isinstance(summary, str):
        raise BadInput(f"{where}: 'paper.summary' should be text, got a JSON {_kind(summary)}")
    raw_id = paper.get("id")
    arxiv_id = normalise_arxiv_id(raw_id) if isinstance(raw_id, str) else None
    authors = paper.get("authors") or []
    if not isinstance(authors, list):
        raise BadInput(f"{where}: 'paper.authors' should be an array")
    names = tuple(
        " ".join(a["name"].split())
        for a in authors
        if isinstance(a, dict) and isinstance(a.get("name"), str) and a["name"].strip()
    )
    upvotes = paper.get("upvotes")
    return ParsedPaper(
        title=" ".join(title.split()),
        abstract=" ".join(summary.split()),
        line=number,
        arxiv_id=arxiv_id,
        authors=names,
        url=f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else None,
        upvotes=upvotes if isinstance(upvotes, int) and not isinstance(upvotes, bool) else None,
        published_at=_timestamp(paper.get("publishedAt", item.get("publishedAt"))),
        extra={"hf": item},
        withdrawn=bool(paper.get("withdrawnAt")),
    )


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _day(item: Any) -> date | None:
    if not isinstance(item, dict) or not isinstance(item.get("paper"), dict):
        return None
    stamp = _timestamp(item["paper"].get("submittedOnDailyAt"))
    return stamp.date() if stamp else None


# --- over HTTP ---


def daily_papers_url(sources: SourceSettings) -> str:
    return f"{sources.hf_base_url.rstrip('/')}/api/daily_papers"


def fetch_daily_papers(
    sources: SourceSettings,
    day: date,
    *,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[bytes, ParsedDump, str]:
    """Fetch every page of one day's list; returns (raw bytes, parsed dump, URL).

    The raw bytes are the pages as received, joined by newlines: what the dump's
    SHA-256 is taken over, so an unchanged list is recognised as already ingested.
    """
    url = daily_papers_url(sources)
    owned = client is None
    http = client or fetching.client(sources.hf_timeout_seconds, accept="application/json")
    try:
        bodies: list[bytes] = []
        items: list[Any] = []
        seen: set[str] = set()
        for page in range(MAX_PAGES):
            params = {"date": day.isoformat(), "limit": str(PAGE_LIMIT)}
            if page:
                params["p"] = str(page)
            body, shown = _get(http, url, params, sources, sleep)
            try:
                decoded = _unwrap(_decode(body, shown))
                batch = parse_hf_json(decoded, name=shown)
            except BadInput as exc:
                raise SourceError(str(exc)) from None
            keys = {p.arxiv_id or p.title for p in batch.papers}
            if page and keys <= seen:
                break  # the server ignores paging and sent the same list again
            seen |= keys
            bodies.append(body)
            items.extend(decoded)
            if len(batch.papers) < PAGE_LIMIT:
                break
        parsed = parse_hf_json(items, name=url)
        return (
            b"\n".join(bodies),
            ParsedDump("hf", parsed.papers, issue_date=day),
            (f"{url}?date={day.isoformat()}"),
        )
    finally:
        if owned:
            http.close()


def fetch_url(
    url: str, sources: SourceSettings, *, sleep: Callable[[float], None] = time.sleep
) -> bytes:
    """The body of any http(s) URL (a dump to ingest), with the same timeouts and retries."""
    with fetching.client(sources.hf_timeout_seconds) as http:
        body, _ = fetching.get(
            http, url, {}, retries=sources.hf_retries, sleep=sleep, max_bytes=MAX_JSON_BYTES
        )
        return body


def _get(
    http: httpx.Client,
    url: str,
    params: dict[str, str],
    sources: SourceSettings,
    sleep: Callable[[float], None],
) -> tuple[bytes, str]:
    return fetching.get(
        http,
        url,
        params,
        retries=sources.hf_retries,
        sleep=sleep,
        max_bytes=MAX_JSON_BYTES,
        check=_json_reply,
    )


def _json_reply(response: httpx.Response, body: bytes, shown: str) -> None:
    if body.lstrip()[:1] not in (b"[", b"{"):
        kind = response.headers.get("content-type", "")
        raise SourceError(
            f"{shown}: the reply is not JSON (content-type {kind or 'none'!r}, "
            f"starts {body[:40]!r})"
        )
