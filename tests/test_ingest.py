"""Ingest into a real store: dumps whole and once, papers deduplicated, dates inferred."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from digest.errors import BadInput
from digest.ingest import IngestResult, infer_issue_date, ingest_bytes, ingest_file
from digest.store.database import Store
from digest.store.schema import (
    Digest,
    DigestItem,
    Dump,
    DumpPaper,
    Paper,
    Subscriber,
    Topic,
    Vote,
)
from tests.conftest import DATA

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
DUMPS = sorted((DATA / "dumps").glob("*.txt"))


def counts(store: Store) -> tuple[int, int, int]:
    with store.sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(Dump)) or 0,
            session.scalar(select(func.count()).select_from(Paper)) or 0,
            session.scalar(select(func.count()).select_from(DumpPaper)) or 0,
        )


def hf_item(arxiv_id: str, title: str, **paper: Any) -> dict[str, Any]:
    return {
        "paper": {
            "id": arxiv_id,
            "title": title,
            "summary": f"Summary of {title}.",
            "authors": [{"_id": "x", "name": "Ada Lovelace", "hidden": False}],
            "upvotes": 3,
            "publishedAt": "2026-06-10T00:00:00.000Z",
            "submittedOnDailyAt": "2026-06-12T00:00:00.000Z",
            **paper,
        },
        "numComments": 0,
        "thumbnail": "https://example.org/t.png",
    }


def json_bytes(items: list[dict[str, Any]]) -> bytes:
    return json.dumps(items).encode()


def test_four_sample_dumps_give_268_papers_and_reingesting_changes_nothing(
    store: Store,
) -> None:
    results = [ingest_file(store, path, now=NOW) for path in DUMPS]
    assert [(r.new_papers, r.known_papers, r.skipped) for r in results] == [
        (61, 0, 0),
        (63, 12, 0),
        (110, 9, 0),
        (34, 19, 0),
    ]
    assert [r.issue_date for r in results] == [
        date(2026, 8, 11),
        date(2026, 3, 20),
        NOW.date(),  # 002 has no date line: the ingest date
        date(2026, 6, 26),
    ]
    assert counts(store) == (4, 268, 308)

    again = [ingest_file(store, path, now=NOW) for path in DUMPS]
    assert all(r.already_ingested for r in again)
    assert [r.dump_id for r in again] == [r.dump_id for r in results]
    assert counts(store) == (4, 268, 308)


def test_dump_rows_record_counts_positions_and_source(store: Store) -> None:
    ingest_file(store, DUMPS[0], now=NOW)
    result = ingest_file(store, DUMPS[1], now=NOW)
    with store.sessions() as session:
        dump = session.get(Dump, result.dump_id)
        assert dump is not None
        assert (dump.source, dump.paper_count, dump.new_paper_count) == ("text", 75, 63)
        assert dump.source_ref == str(DUMPS[1]) and dump.ingested_at == NOW
        first = dump.entries[0]
        assert first.position == 1
        assert first.paper.title.startswith("Error Feedback Reloaded")


def test_renamed_copy_is_recognised_by_content(store: Store, tmp_path: Path) -> None:
    first = ingest_file(store, DUMPS[0], now=NOW)
    copy = tmp_path / "renamed.txt"
    copy.write_bytes(DUMPS[0].read_bytes())
    second = ingest_file(store, copy, now=NOW)
    assert second.already_ingested and second.dump_id == first.dump_id


def test_a_later_source_fills_in_the_arxiv_id_of_a_title_only_paper(store: Store) -> None:
    ingest_file(store, DUMPS[3], now=NOW)  # has "Programming Puzzles", no arXiv ids
    before = counts(store)
    result = ingest_bytes(
        store,
        json_bytes([hf_item("2106.05784v2", "Programming   puzzles")]),
        source_ref="hf.json",
        now=NOW,
    )
    assert (result.new_papers, result.known_papers) == (0, 1)
    assert counts(store)[1] == before[1]
    with store.sessions() as session:
        paper = session.scalars(select(Paper).where(Paper.arxiv_id == "2106.05784")).one()
        assert paper.key == "arxiv:2106.05784"
        assert paper.title == "Programming Puzzles"  # the first title stays
        assert paper.abstract.startswith("We introduce a new type of programming challenge")
        assert paper.authors == ["Ada Lovelace"]
        assert paper.url == "https://arxiv.org/abs/2106.05784"
        assert paper.extra["hf"]["paper"]["id"] == "2106.05784v2"
        assert len(paper.listings) == 2


def test_a_title_only_listing_finds_the_arxiv_paper(store: Store) -> None:
    ingest_bytes(
        store,
        json_bytes([hf_item("2106.05784", "Programming Puzzles")]),
        source_ref="hf.json",
        now=NOW,
    )
    result = ingest_file(store, DUMPS[3], now=NOW)
    assert (result.new_papers, result.known_papers) == (52, 1)
    assert counts(store)[1] == 53


def two_rows_of_one_paper(session: Session) -> tuple[int, int, Subscriber]:
    """A page dump's title-only "Programming Puzzles" beside an arXiv-keyed row of the same
    paper written without a title key (as older code might), and a subscriber:
    (title-only row id, arXiv row id, subscriber). The next listing with the id merges them."""
    session.execute(
        insert(Paper).values(
            key="arxiv:2106.05784",
            arxiv_id="2106.05784",
            title="Programming Puzzles",
            abstract="",
            authors=[],
            extra={},
            first_seen=datetime(2026, 12, 1, tzinfo=UTC),
        )
    )
    old_id = session.scalar(select(Paper.id).where(Paper.key == "title:programming puzzles"))
    new_id = session.scalar(select(Paper.id).where(Paper.key == "arxiv:2106.05784"))
    assert old_id is not None and new_id is not None
    subscriber = Subscriber(
        email="a@example.org",
        status="active",
        created_at=NOW,
        subscribed_at=NOW,
        updated_at=NOW,
    )
    session.add(subscriber)
    session.flush()
    return old_id, new_id, subscriber


def list_the_paper_with_its_id(store: Store) -> None:
    ingest_bytes(
        store,
        json_bytes([hf_item("2106.05784", "Programming Puzzles")]),
        source_ref="hf.json",
        now=NOW,
    )


def test_title_only_row_is_merged_into_an_existing_arxiv_row(store: Store) -> None:
    ingest_file(store, DUMPS[3], now=NOW)
    with store.transaction() as session:
        old_id, _, subscriber = two_rows_of_one_paper(session)
        digest = Digest(
            subscriber_id=subscriber.id,
            period="2026-11-22",
            message_id="<m@x>",
            planned_at=NOW,
            window_start=NOW,
        )
        session.add(digest)
        session.flush()
        session.add(DigestItem(digest_id=digest.id, paper_id=old_id, rank=1, score=1.0))
    list_the_paper_with_its_id(store)
    with store.sessions() as session:
        papers = session.scalars(select(Paper).where(Paper.title == "Programming Puzzles")).all()
        assert len(papers) == 1
        paper = papers[0]
        assert paper.key == "arxiv:2106.05784"
        assert paper.abstract.startswith("We introduce")  # taken from the title-only row
        assert paper.first_seen == NOW  # the earlier sighting
        assert len(paper.listings) == 2
        item = session.scalars(select(DigestItem)).one()
        assert item.paper_id == paper.id


def test_a_readers_vote_on_a_title_only_row_survives_its_merge(store: Store) -> None:
    """A vote cast on a page-dump paper is the reader's word about that paper: folding
    the row into its arXiv row must carry the vote along, not drop it."""
    ingest_file(store, DUMPS[3], now=NOW)
    with store.transaction() as session:
        old_id, new_id, subscriber = two_rows_of_one_paper(session)
        topics = [
            Topic(subscriber_id=subscriber.id, query=q, created_at=NOW) for q in ("code", "llm")
        ]
        session.add_all(topics)
        session.flush()
        votes = [  # on the second topic the reader voted on both rows: the later vote wins
            (old_id, topics[0].id, -1, NOW),
            (old_id, topics[1].id, -1, NOW + timedelta(hours=1)),
            (new_id, topics[1].id, 1, NOW),
        ]
        for paper_id, topic_id, vote, at in votes:
            session.add(
                Vote(
                    subscriber_id=subscriber.id,
                    paper_id=paper_id,
                    topic_id=topic_id,
                    vote=vote,
                    voted_at=at,
                )
            )
    list_the_paper_with_its_id(store)
    with store.sessions() as session:
        kept = session.execute(select(Vote.paper_id, Vote.topic_id, Vote.vote)).all()
        assert sorted(kept) == sorted([(new_id, topics[0].id, -1), (new_id, topics[1].id, -1)])


def test_repeats_and_withdrawn_papers_in_one_dump_are_skipped(store: Store) -> None:
    items = [
        hf_item("2601.00001", "One"),
        hf_item("2601.00001v2", "One again"),
        hf_item("2601.00002", "Two", withdrawnAt="2026-06-11T00:00:00Z"),
        hf_item("2601.00003", "Three"),
    ]
    result = ingest_bytes(store, json_bytes(items), source_ref="hf.json", now=NOW)
    assert (result.new_papers, result.known_papers, result.skipped) == (2, 0, 2)
    assert result.issue_date == date(2026, 6, 12)  # the day the list says
    with store.sessions() as session:
        assert session.scalars(select(DumpPaper.upvotes)).all() == [3, 3]


def test_a_parse_error_stores_nothing(store: Store, tmp_path: Path) -> None:
    lines = DUMPS[3].read_text().splitlines()
    broken = tmp_path / "broken.txt"
    abstract_twice = [*[line for line in lines if line][:13], lines[12]]
    broken.write_text("\n\n".join(abstract_twice) + "\n")
    with pytest.raises(BadInput, match=r"broken\.txt: line \d+: an abstract with no title"):
        ingest_file(store, broken, now=NOW)
    assert counts(store) == (0, 0, 0)


@pytest.mark.parametrize(
    ("month", "day", "now", "expected"),
    [
        (12, 31, datetime(2027, 1, 2, tzinfo=UTC), date(2026, 12, 31)),
        (1, 1, datetime(2026, 12, 31, 23, 59, tzinfo=UTC), date(2026, 1, 1)),
        (1, 2, datetime(2027, 1, 2, 0, 1, tzinfo=UTC), date(2027, 1, 2)),
        (2, 29, datetime(2027, 3, 1, tzinfo=UTC), date(2024, 2, 29)),
    ],
)
def test_issue_date_is_the_latest_such_date_not_after_ingest(
    month: int, day: int, now: datetime, expected: date
) -> None:
    assert infer_issue_date(month, day, now=now) == expected


def test_issue_date_around_new_year_on_the_system_clock(store: Store, tmp_path: Path) -> None:
    dump = tmp_path / "dec31.txt"
    body = DUMPS[3].read_text().replace("Jun 26", "Dec 31")
    dump.write_text(body)
    with freeze_time("2027-01-02 09:00:00"):
        now = datetime.now(UTC)
        result = ingest_file(store, dump, now=now)
    assert result.issue_date == date(2026, 12, 31)
    with store.sessions() as session:
        assert session.scalar(select(Dump.ingested_at)) == datetime(2027, 1, 2, 9, tzinfo=UTC)


def test_explicit_issue_date_wins(store: Store) -> None:
    result = ingest_file(store, DUMPS[0], now=NOW, issue_date=date(2025, 1, 5))
    assert result.issue_date == date(2025, 1, 5)


def _race(store: Store, run: list[Any]) -> list[IngestResult]:
    barrier = threading.Barrier(len(run))
    results: list[IngestResult] = []
    errors: list[BaseException] = []

    def worker(job: Any) -> None:
        barrier.wait()
        try:
            results.append(job())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(job,)) for job in run]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


def test_same_file_twice_concurrently_is_stored_once(store: Store) -> None:
    results = _race(store, [lambda: ingest_file(store, DUMPS[0], now=NOW)] * 2)
    assert sorted(r.already_ingested for r in results) == [False, True]
    assert counts(store) == (1, 61, 61)


def test_overlapping_dumps_concurrently_share_papers(store: Store) -> None:
    results = _race(
        store,
        [
            lambda: ingest_file(store, DUMPS[0], now=NOW),
            lambda: ingest_file(store, DUMPS[1], now=NOW),
        ],
    )
    assert sum(r.new_papers for r in results) == 124
    assert counts(store) == (2, 124, 136)
