"""The Hugging Face daily_papers source against a real HTTP server on loopback."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from digest.config import SourceSettings
from digest.errors import BadInput, SourceError
from digest.ingest import ingest_hf
from digest.sources.hf_api import fetch_daily_papers, parse_hf_json
from digest.store.database import Store
from digest.store.schema import Dump, Paper
from tests.conftest import DATA
from tests.http_server import LoopbackServer, Reply, http_server

__all__ = ["http_server"]

NOW = datetime(2026, 6, 12, 7, 0, tzinfo=UTC)
DAY = date(2026, 6, 12)
SAMPLE = (DATA / "hf_daily_papers.json").read_bytes()
PATH = "/api/daily_papers"


def settings(server: LoopbackServer, **overrides: Any) -> SourceSettings:
    values: dict[str, Any] = {"hf_base_url": server.url, "hf_timeout_seconds": 2.0}
    return SourceSettings(**(values | overrides))


def item(n: int, **extra: Any) -> dict[str, Any]:
    """One item in the documented shape, plus keys the API may add at any time."""
    return {
        "paper": {
            "id": f"2606.{n:05d}",
            "title": f"Paper number {n}: a study",
            "summary": f"We study thing {n}.\nIt works.",
            "authors": [{"_id": f"a{n}", "name": f"Author {n}", "hidden": False}, {"_id": "b"}],
            "upvotes": n % 7,
            "publishedAt": "2026-06-10T00:00:00.000Z",
            "submittedOnDailyAt": "2026-06-12T00:00:00.000Z",
            "ai_summary": "…",
            "ai_keywords": ["x"],
            "aNewPaperKey": {"nested": [1, 2]},
        },
        "numComments": 1,
        "thumbnail": "https://example.org/t.png",
        "submittedBy": {"user": "someone"},
        "anotherNewKey": True,
        **extra,
    }


def paged(items: list[dict[str, Any]]) -> Any:
    def route(query: dict[str, str]) -> Reply:
        limit = int(query.get("limit", "50"))
        page = int(query.get("p", "0"))
        return Reply(body=json.dumps(items[page * limit : (page + 1) * limit]).encode())

    return route


def paper_count(store: Store) -> int:
    with store.sessions() as session:
        return session.scalar(select(func.count()).select_from(Paper)) or 0


def test_sample_reply_is_ingested_once(store: Store, http_server: LoopbackServer) -> None:
    http_server.serve(PATH, Reply(body=SAMPLE))
    result = ingest_hf(store, settings(http_server), day=DAY, now=NOW)
    assert (result.new_papers, result.known_papers, result.skipped) == (30, 0, 0)
    assert result.issue_date == DAY
    assert result.source_ref == f"{http_server.url}{PATH}?date=2026-06-12"
    assert http_server.requests == [(PATH, {"date": "2026-06-12", "limit": "100"})]

    again = ingest_hf(store, settings(http_server), day=DAY, now=NOW)
    assert again.already_ingested and again.dump_id == result.dump_id
    with store.sessions() as session:
        paper = session.scalars(select(Paper).where(Paper.arxiv_id == "2606.00467")).one()
        assert paper.title.startswith("On the Limits of LLM Adaptability")
        assert paper.authors == ["Etienne Casanova", "Rafal Kocielnik", "R. Michael Alvarez"]
        assert paper.published_at == datetime(2026, 5, 30, tzinfo=UTC)
        assert paper.extra["hf"]["paper"]["ai_keywords"][0] == "zero-shot annotation"
        assert session.scalar(select(func.count()).select_from(Dump)) == 1


def test_pages_are_followed_until_a_short_page(store: Store, http_server: LoopbackServer) -> None:
    http_server.serve(PATH, paged([item(n) for n in range(230)]))
    result = ingest_hf(store, settings(http_server), day=DAY, now=NOW)
    assert result.new_papers == 230
    assert [q.get("p") for _, q in http_server.requests] == [None, "1", "2"]
    assert {q["limit"] for _, q in http_server.requests} == {"100"}


def test_a_server_that_ignores_paging_is_not_read_forever(
    store: Store, http_server: LoopbackServer
) -> None:
    http_server.serve(PATH, Reply(body=json.dumps([item(n) for n in range(100)]).encode()))
    result = ingest_hf(store, settings(http_server), day=DAY, now=NOW)
    assert result.new_papers == 100
    assert len(http_server.requests) == 2


def test_unknown_keys_are_kept_not_fatal() -> None:
    dump = parse_hf_json(json.dumps([item(1)]).encode(), name="x.json")
    (paper,) = dump.papers
    assert paper.abstract == "We study thing 1. It works."
    assert paper.authors == ("Author 1",)
    assert paper.extra["hf"]["anotherNewKey"] is True
    assert paper.extra["hf"]["paper"]["aNewPaperKey"] == {"nested": [1, 2]}


def test_a_temporary_failure_is_retried(store: Store, http_server: LoopbackServer) -> None:
    replies = iter([Reply(503, b"busy", "text/plain"), Reply(body=SAMPLE)])
    http_server.serve(PATH, lambda _q: next(replies))
    result = ingest_hf(store, settings(http_server, hf_retries=2), day=DAY, now=NOW)
    assert result.new_papers == 30
    assert len(http_server.requests) == 2


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(404, b"nope", "text/plain"), "HTTP 404 Not Found"),
        (Reply(200, b"<html>login</html>", "text/html"), "the reply is not JSON"),
        (Reply(200, b"[{", "application/json"), "not valid JSON"),
        (Reply(200, b'{"error": "bad date"}'), "expected a JSON array of daily-paper items"),
        (Reply(200, b'["a", "b"]'), "item 1: expected an object with a 'paper'"),
        (Reply(200, b'[{"paper": {"id": "1"}}]'), "item 1: 'paper.title' is missing"),
    ],
)
def test_bad_replies_name_the_url_and_the_problem(
    store: Store, http_server: LoopbackServer, reply: Reply, message: str
) -> None:
    http_server.serve(PATH, reply)
    with pytest.raises(SourceError) as caught:
        ingest_hf(store, settings(http_server, hf_retries=0), day=DAY, now=NOW)
    text = str(caught.value)
    assert text.startswith(f"{http_server.url}{PATH}?date=2026-06-12")
    assert message in text
    assert paper_count(store) == 0


def test_a_timeout_gives_up_after_the_retries(http_server: LoopbackServer) -> None:
    http_server.serve(PATH, Reply(body=SAMPLE, delay=5.0))
    sleeps: list[float] = []
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"timed out after 0\.2s \(gave up after 3 attempts\)"):
        fetch_daily_papers(
            settings(http_server, hf_timeout_seconds=0.2, hf_retries=2), DAY, sleep=sleeps.append
        )
    assert time.monotonic() - started < 4.0  # three 0.2 s time-outs, not one 5 s wait
    assert sleeps == [0.5, 1.0]  # back-off doubles


def test_connection_refused_is_a_source_error() -> None:
    unreachable = SourceSettings(hf_base_url="http://127.0.0.1:9", hf_retries=0)
    with pytest.raises(SourceError, match=r"127\.0\.0\.1:9/api/daily_papers.*cannot connect"):
        fetch_daily_papers(unreachable, DAY)


def test_wrongly_shaped_file_is_bad_input() -> None:
    with pytest.raises(BadInput, match=r"^f\.json: item 2: 'paper' should be an object"):
        parse_hf_json(b'[{"paper": {"title": "A"}}, {"paper": []}]', name="f.json")


def test_empty_days_are_separate_dumps(store: Store, http_server: LoopbackServer) -> None:
    http_server.serve(PATH, Reply(body=b"[]"))
    first = ingest_hf(store, settings(http_server), day=DAY, now=NOW)
    second = ingest_hf(store, settings(http_server), day=date(2026, 6, 13), now=NOW)
    assert (first.new_papers, second.already_ingested) == (0, False)
    assert second.issue_date == date(2026, 6, 13)
    assert ingest_hf(store, settings(http_server), day=DAY, now=NOW).already_ingested


def test_a_429_waits_as_long_as_retry_after_asks(http_server: LoopbackServer) -> None:
    replies = iter([Reply(429, b"slow down", "text/plain", headers={"Retry-After": "7"})])
    http_server.serve(PATH, lambda _q: next(replies, Reply(body=SAMPLE)))
    sleeps: list[float] = []
    _, parsed, _ = fetch_daily_papers(settings(http_server), DAY, sleep=sleeps.append)
    assert len(parsed.papers) == 30
    assert sleeps == [7.0]  # not the 0.5 s back-off
    assert http_server.headers[0]["user-agent"].startswith("digest/")


def test_a_retry_after_that_is_not_a_plain_number_is_ignored_not_a_crash(
    http_server: LoopbackServer,
) -> None:
    # "²" is a digit to str.isdigit() but not to float(); httpx reads header bytes as latin-1
    replies = iter([Reply(503, b"", "text/plain", headers={"Retry-After": "\u00b2"})])
    http_server.serve(PATH, lambda _q: next(replies, Reply(body=SAMPLE)))
    sleeps: list[float] = []
    _, parsed, _ = fetch_daily_papers(settings(http_server), DAY, sleep=sleeps.append)
    assert len(parsed.papers) == 30
    assert len(sleeps) == 1  # the usual back-off, not a crash


def test_a_retry_after_beyond_the_bound_is_not_waited_for(http_server: LoopbackServer) -> None:
    http_server.serve(PATH, Reply(503, b"", "text/plain", headers={"Retry-After": "86400"}))
    sleeps: list[float] = []
    with pytest.raises(SourceError, match=r"HTTP 503.*asks to wait 86400s"):
        fetch_daily_papers(settings(http_server), DAY, sleep=sleeps.append)
    assert sleeps == [] and len(http_server.requests) == 1
