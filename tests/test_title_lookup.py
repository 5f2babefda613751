"""Title lookups: page-dump papers learn their arXiv id from Hugging Face's paper search.

Against a real HTTP server on 127.0.0.1 that answers `/api/papers/search` the
way Hugging Face does (a JSON array of items with a `paper` object). What a
reader or operator notices: after a lookup the paper has its id, authors and
PDF link; a near-miss title is never taken; each title is asked once; a
failing server stops the run with exit 4 and keeps what was found.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from digest.config import Settings, SourceSettings, WebSettings
from digest.daemon import job_triggers
from digest.errors import SourceError
from digest.ingest import ingest_file, look_up_titles
from digest.keys import title_key
from digest.mail import MemoryMailer
from digest.pipeline import Pipeline
from digest.sources.hf_api import parse_hf_json
from digest.sources.lookup import TitleLookup
from digest.store.database import Store, open_store
from digest.store.dumps import learn_identity
from digest.store.schema import DumpPaper, Paper
from tests.conftest import DATA, invoke
from tests.http_server import LoopbackServer, Reply, http_server

__all__ = ["http_server"]

SEARCH = "/api/papers/search"
ITEMS: list[dict[str, Any]] = json.loads((DATA / "hf_daily_papers.json").read_text())
KNOWN = [item["paper"] for item in ITEMS[:3]]
UNKNOWN_TITLE = "A Paper Hugging Face Has Never Heard Of"
UNKNOWN_ABSTRACT = (
    "We study a question nobody indexed. Our method answers it on three benchmarks, "
    "and we release the code so that others can check the results for themselves."
)


def page_dump(path: Path, titles: list[tuple[str, str]]) -> Path:
    """A page dump as the trending page prints it: titles and abstracts, no ids."""
    path.write_text(
        "New\n\nGet trending papers in your email inbox!\n\nSubscribe\n\n"
        "byAK and the research community\n\nJun 26\n\n"
        + "".join(f"{title}\n\n{abstract}\n\n" for title, abstract in titles)
    )
    return path


def answer_by_title(query: dict[str, str]) -> Reply:
    """Hugging Face's search: the items whose title shares a word with the query."""
    words = set(title_key(query.get("q", "")).split())
    found = [item for item in ITEMS if words & set(title_key(item["paper"]["title"]).split())]
    return Reply(body=json.dumps(found[:5]).encode())


@pytest.fixture
def lookup_env(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, http_server: LoopbackServer
) -> LoopbackServer:
    path = tmp_path / "config.toml"
    path.write_text(
        f'database_url = "{database_url}"\n'
        f'[sources]\nhf_base_url = "{http_server.url}"\nhf_retries = 0\n'
        "title_lookup_seconds = 0\nhf_timeout_seconds = 2\n"
    )
    monkeypatch.setenv("DIGEST_CONFIG", str(path))
    return http_server


def rows(database_url: str) -> dict[str, Paper]:
    store = open_store(database_url)
    try:
        with store.sessions() as session:
            found = session.scalars(select(Paper)).all()
            session.expunge_all()
            return {row.title: row for row in found}
    finally:
        store.dispose()


def ingest_page(cli: CliRunner, tmp_path: Path, titles: list[tuple[str, str]]) -> None:
    path = page_dump(tmp_path / "page.txt", titles)
    code, out, err = invoke(cli, "ingest", str(path), "--now", "2026-06-26T06:00:00+00:00")
    assert code == 0, out + err


def test_page_dump_papers_learn_their_ids_authors_and_links_once(
    cli: CliRunner, tmp_path: Path, database_url: str, lookup_env: LoopbackServer
) -> None:
    lookup_env.serve(SEARCH, answer_by_title)
    ingest_page(
        cli,
        tmp_path,
        [(p["title"], p["summary"]) for p in KNOWN] + [(UNKNOWN_TITLE, UNKNOWN_ABSTRACT)],
    )
    assert all(row.arxiv_id is None for row in rows(database_url).values())

    code, out, err = invoke(cli, "lookup-titles", "--now", "2026-06-26T07:00:00+00:00")
    assert code == 0, out + err
    assert "looked up 4 titles: 3 found" in out
    stored = rows(database_url)
    for paper in KNOWN:
        row = stored[paper["title"]]
        assert row.arxiv_id == paper["id"]
        assert row.key == f"arxiv:{paper['id']}"
        assert row.authors == [" ".join(a["name"].split()) for a in paper["authors"]]
    assert stored[UNKNOWN_TITLE].arxiv_id is None
    assert stored[UNKNOWN_TITLE].extra["title_lookup"]["found"] is None
    asked_for = sorted(q["q"] for _, q in lookup_env.requests)
    assert asked_for == sorted([p["title"] for p in KNOWN] + [UNKNOWN_TITLE])
    assert lookup_env.headers[0]["user-agent"].startswith("digest/")

    asked = len(lookup_env.requests)
    code, out, _ = invoke(cli, "lookup-titles")
    assert code == 0 and "no paper without an arXiv id is waiting" in out
    assert len(lookup_env.requests) == asked  # nothing asked twice
    code, out, _ = invoke(cli, "lookup-titles", "--again")
    assert code == 0 and "looked up 1 title: 0 found" in out


def test_a_near_miss_title_is_not_taken(
    cli: CliRunner, tmp_path: Path, database_url: str, lookup_env: LoopbackServer
) -> None:
    """Hugging Face's search ranks by relevance: its best result may be another paper."""
    paper = KNOWN[0]
    sequel = {**ITEMS[0], "paper": {**paper, "title": paper["title"] + " 2", "id": "2699.00001"}}
    lookup_env.serve(SEARCH, Reply(body=json.dumps([sequel]).encode()))
    ingest_page(cli, tmp_path, [(paper["title"], paper["summary"])])
    code, out, err = invoke(cli, "lookup-titles")
    assert code == 0, out + err
    assert "0 found" in out
    assert rows(database_url)[paper["title"]].arxiv_id is None


def test_a_title_already_stored_under_its_id_becomes_one_row(
    cli: CliRunner, tmp_path: Path, database_url: str, lookup_env: LoopbackServer
) -> None:
    """The arXiv row came first under a differently spelled title (a subtitle dropped):
    the lookup folds the page-dump row into it, listings and all."""
    paper = KNOWN[0]
    spelled = {**ITEMS[0], "paper": {**paper, "title": paper["title"] + ": Extended"}}
    hf_file = tmp_path / "hf.json"
    hf_file.write_text(json.dumps([spelled]))
    code, out, err = invoke(cli, "ingest", str(hf_file), "--now", "2026-06-25T06:00:00+00:00")
    assert code == 0, out + err
    ingest_page(cli, tmp_path, [(paper["title"], paper["summary"])])
    assert len(rows(database_url)) == 2
    lookup_env.serve(SEARCH, Reply(body=json.dumps([ITEMS[0]]).encode()))

    code, out, err = invoke(cli, "lookup-titles")
    assert code == 0, out + err
    stored = rows(database_url)
    assert len(stored) == 1
    (row,) = stored.values()
    assert row.arxiv_id == paper["id"]
    store = open_store(database_url)
    try:
        with store.sessions() as session:
            listed = session.scalars(select(DumpPaper.paper_id)).all()
            assert listed == [row.id, row.id]  # the HF listing and the page's
    finally:
        store.dispose()


def test_a_failing_server_stops_the_run_keeps_what_was_found_and_exits_4(
    cli: CliRunner, tmp_path: Path, database_url: str, lookup_env: LoopbackServer
) -> None:
    first, second = KNOWN[0], KNOWN[1]

    def route(query: dict[str, str]) -> Reply:
        if query["q"] == first["title"]:
            return Reply(body=json.dumps([ITEMS[0]]).encode())
        return Reply(503, b"busy", "text/plain")

    lookup_env.serve(SEARCH, route)
    # the newest first: the page with `first` is ingested last
    page_dump(tmp_path / "old.txt", [(second["title"], second["summary"])])
    code, _, _ = invoke(cli, "ingest", str(tmp_path / "old.txt"), "--now", "2026-06-25T06:00Z")
    assert code == 0
    ingest_page(cli, tmp_path, [(first["title"], first["summary"])])

    code, out, err = invoke(cli, "lookup-titles")
    assert code == 4
    assert "looked up 1 title: 1 found, 1 left for the next run" in out
    assert err.startswith("error: ") and f"{lookup_env.url}{SEARCH}" in err and "503" in err
    stored = rows(database_url)
    assert stored[first["title"]].arxiv_id == first["id"]
    assert "title_lookup" not in stored[second["title"]].extra  # asked again next run


def test_lookups_are_spaced_as_the_setting_asks(lookup_env: LoopbackServer) -> None:
    lookup_env.serve(SEARCH, Reply(body=b"[]"))
    sleeps: list[float] = []
    sources = SourceSettings(
        hf_base_url=lookup_env.url, title_lookup_seconds=1.5, hf_timeout_seconds=2
    )
    with TitleLookup(sources, sleep=sleeps.append, clock=lambda: 50.0) as lookup:
        for title in ("One paper", "Another paper", "A third paper"):
            assert lookup.find(title) is None
    assert sleeps == [1.5, 1.5]
    assert [q["q"] for _, q in lookup_env.requests] == [
        "One paper",
        "Another paper",
        "A third paper",
    ]


def test_the_daemon_looks_titles_up_only_when_the_setting_is_on() -> None:
    start = datetime(2026, 6, 26, 6, 0, tzinfo=UTC)
    assert "lookup" not in job_triggers(Settings(), start)
    on = Settings(sources=SourceSettings(title_lookup=True))
    assert "lookup" in job_triggers(on, start)


def test_the_daemons_job_looks_up_a_run_at_a_time_and_fails_loudly(
    store: Store, http_server: LoopbackServer, tmp_path: Path
) -> None:
    settings = Settings(
        web=WebSettings(secret="test-secret-0123456789abcdefghijklmnop"),
        sources=SourceSettings(
            hf_base_url=http_server.url,
            hf_retries=0,
            title_lookup=True,
            title_lookup_per_run=2,
            title_lookup_seconds=0,
        ),
    )
    now = datetime(2026, 6, 26, 7, 0, tzinfo=UTC)
    data = page_dump(tmp_path / "page.txt", [(p["title"], p["summary"]) for p in KNOWN])
    ingest_file(store, data, now=now)
    http_server.serve(SEARCH, answer_by_title)
    pipeline = Pipeline.from_settings(settings, store, mailer=MemoryMailer())
    assert pipeline.look_up_titles(now) == "looked up 2 titles: 2 found, 1 left for the next run"
    assert pipeline.look_up_titles(now) == "looked up 1 title: 1 found"
    assert pipeline.look_up_titles(now) is None  # nothing waiting: nothing to log
    with store.sessions() as session:
        assert None not in session.scalars(select(Paper.arxiv_id)).all()
    http_server.serve(SEARCH, Reply(500, b"oops", "text/plain"))
    page_dump(data, [(UNKNOWN_TITLE, UNKNOWN_ABSTRACT)])
    ingest_file(store, data, now=now)
    with pytest.raises(SourceError, match="500"):  # the daemon logs it; the next poll retries
        pipeline.look_up_titles(now)


def test_the_count_left_for_the_next_run_is_every_title_still_waiting(
    cli: CliRunner, tmp_path: Path, database_url: str, lookup_env: LoopbackServer
) -> None:
    lookup_env.serve(SEARCH, answer_by_title)
    ingest_page(cli, tmp_path, [(p["title"], p["summary"]) for p in KNOWN])
    code, out, _ = invoke(cli, "lookup-titles", "--limit", "1")
    assert code == 0 and "looked up 1 title: 1 found, 2 left for the next run" in out
    code, out, _ = invoke(cli, "lookup-titles", "--limit", "1")
    assert code == 0 and "looked up 1 title: 1 found, 1 left for the next run" in out


def test_a_title_the_search_refuses_is_recorded_and_the_run_goes_on(
    cli: CliRunner, tmp_path: Path, database_url: str, lookup_env: LoopbackServer
) -> None:
    """One odd title must not stop every later lookup: it was asked first (newest) at
    every run and failed, run after run."""
    odd, fine = KNOWN[0], KNOWN[1]

    def route(query: dict[str, str]) -> Reply:
        if query["q"] == odd["title"]:
            return Reply(400, b"bad query", "text/plain")
        return answer_by_title(query)

    lookup_env.serve(SEARCH, route)
    page_dump(tmp_path / "old.txt", [(fine["title"], fine["summary"])])
    code, _, _ = invoke(cli, "ingest", str(tmp_path / "old.txt"), "--now", "2026-06-25T06:00Z")
    assert code == 0
    ingest_page(cli, tmp_path, [(odd["title"], odd["summary"])])  # the newest: asked first
    code, out, err = invoke(cli, "lookup-titles")
    assert code == 0, out + err
    assert "looked up 2 titles: 1 found, 1 refused by the search" in out
    stored = rows(database_url)
    assert stored[fine["title"]].arxiv_id == fine["id"]
    assert "HTTP 400" in stored[odd["title"]].extra["title_lookup"]["error"]
    code, out, _ = invoke(cli, "lookup-titles")
    assert "no paper without an arXiv id is waiting" in out


def test_a_search_that_is_not_there_stops_the_run_and_marks_nothing(
    cli: CliRunner, tmp_path: Path, database_url: str, lookup_env: LoopbackServer
) -> None:
    """A 404 says hf_base_url is wrong, not that a title is: nothing is marked failed."""
    ingest_page(cli, tmp_path, [(p["title"], p["summary"]) for p in KNOWN])
    code, _, err = invoke(cli, "lookup-titles")  # no route: the server answers 404
    assert code == 4 and "HTTP 404" in err
    assert all("title_lookup" not in row.extra for row in rows(database_url).values())


def test_a_paper_withdrawn_on_hugging_face_is_marked_and_never_sent(
    cli: CliRunner, tmp_path: Path, database_url: str, lookup_env: LoopbackServer
) -> None:
    paper = KNOWN[0]
    gone = {**ITEMS[0], "paper": {**paper, "withdrawnAt": "2026-06-20T00:00:00.000Z"}}
    lookup_env.serve(SEARCH, Reply(body=json.dumps([gone]).encode()))
    ingest_page(cli, tmp_path, [(paper["title"], paper["summary"])])
    code, out, err = invoke(cli, "lookup-titles", "--now", "2026-06-26T07:00:00+00:00")
    assert code == 0, out + err
    row = rows(database_url)[paper["title"]]
    assert row.extra["withdrawn_at"] == "2026-06-26T07:00:00+00:00"


def test_a_shutdown_stops_a_run_between_titles(
    store: Store, http_server: LoopbackServer, tmp_path: Path
) -> None:
    now = datetime(2026, 6, 26, 7, 0, tzinfo=UTC)
    ingest_file(
        store, page_dump(tmp_path / "p.txt", [(p["title"], p["summary"]) for p in KNOWN]), now=now
    )
    http_server.serve(SEARCH, answer_by_title)
    sources = SourceSettings(hf_base_url=http_server.url, title_lookup_seconds=0)
    asked: list[int] = []
    report = look_up_titles(
        store,
        sources,
        now=now,
        limit=10,
        progress=lambda done, total: asked.append(done),
        should_stop=lambda: len(asked) >= 1,
    )
    assert (report.asked, report.found, report.waiting) == (1, 1, 2)
    assert len(http_server.requests) == 1


def test_a_lookup_racing_an_ingest_of_the_same_paper_loses_nothing(
    store: Store, tmp_path: Path
) -> None:
    """The daemon looks titles up while ingests run: an ingest giving the row its arXiv id
    while the lookup waits for the row must leave one paper, with its listings."""
    now = datetime(2026, 6, 26, 7, 0, tzinfo=UTC)
    paper = KNOWN[0]
    ingest_file(store, page_dump(tmp_path / "p.txt", [(paper["title"], paper["summary"])]), now=now)
    with store.sessions() as session:
        row_id = session.scalars(select(Paper.id)).one()
    found = parse_hf_json(json.dumps([ITEMS[0]]).encode(), name="search").papers[0]
    outcome: list[bool] = []
    with store.transaction() as session:  # the ingest, mid-transaction
        session.execute(
            update(Paper)
            .where(Paper.id == row_id)
            .values(key=f"arxiv:{paper['id']}", arxiv_id=paper["id"])
        )
        lookup = threading.Thread(
            target=lambda: outcome.append(learn_identity(store, row_id, found, now))
        )
        lookup.start()
        time.sleep(0.5)  # the lookup now waits on the ingest's lock
    lookup.join(timeout=20)
    assert outcome == [False]  # the ingest got there first: nothing for the lookup to do
    with store.sessions() as session:
        assert session.scalars(select(Paper.arxiv_id)).all() == [paper["id"]]
        assert session.scalars(select(DumpPaper.paper_id)).all() == [row_id]
