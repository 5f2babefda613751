"""The arXiv source: its RSS feed and API listing parsed, stored, and hostile input refused."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from digest.config import Settings, SourceSettings, WebSettings
from digest.errors import BadInput, SourceError
from digest.mail import MemoryMailer
from digest.pipeline import Pipeline
from digest.planner.candidates import _listings_in_window
from digest.sources.arxiv import (
    MAX_FEED_BYTES,
    fetch_arxiv_day,
    fetch_arxiv_rss,
    parse_arxiv_feed,
)
from digest.store.database import Store
from digest.store.dumps import store_dump
from digest.store.schema import Dump, DumpPaper, Paper
from tests.conftest import DATA, invoke
from tests.http_server import LoopbackServer, Reply, http_server

__all__ = ["http_server"]

RSS = (DATA / "arxiv_rss_sample.xml").read_bytes()
API = (DATA / "arxiv_api_sample.xml").read_bytes()
NOW = datetime(2026, 9, 24, 9, 0, tzinfo=UTC)


def store_feed(store: Store, data: bytes, now: datetime = NOW) -> tuple[int, int, int]:
    parsed = parse_arxiv_feed(data, name="feed.xml")
    result = store_dump(
        store, parsed, sha256=hashlib.sha256(data).hexdigest(), source_ref="feed.xml", now=now
    )
    return result.new_papers, result.known_papers, result.skipped


def rss(*items: str, channel: str = "cs.CL updates on arXiv.org") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:arxiv="http://arxiv.org/schemas/atom" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        f"<title>{channel}</title><link>http://rss.arxiv.org/rss/cs.CL</link>"
        "<pubDate>Thu, 24 Sep 2026 00:00:00 -0400</pubDate>" + "".join(items) + "</channel></rss>"
    ).encode()


def item(arxiv_id: str, announce: str = "new", title: str = "A paper", cats: str = "cs.CL") -> str:
    categories = "".join(f"<category>{c}</category>" for c in cats.split())
    return (
        f"<item><title>{title}</title><link>https://arxiv.org/abs/{arxiv_id}</link>"
        f"<description>arXiv:{arxiv_id}v2 Announce Type: {announce} \nAbstract: Words about "
        f"{title}.</description><guid isPermaLink='false'>oai:arXiv.org:{arxiv_id}v2</guid>"
        f"{categories}<arxiv:announce_type>{announce}</arxiv:announce_type>"
        "<dc:creator>Ann Author, Bo Writer</dc:creator></item>"
    )


# --- parsing the real sample and the API's shape ---


def test_the_rss_sample_gives_ids_authors_categories_and_abstracts() -> None:
    dump = parse_arxiv_feed(RSS, name="feed.xml")
    assert dump.source == "arxiv"
    assert dump.issue_date == date(2026, 9, 24)  # the channel's pubDate, in arXiv's zone
    by_id = {p.arxiv_id: p for p in dump.papers}
    assert list(by_id) == ["2609.26811", "2609.26820", "2205.06398"]  # no version suffix
    signal = by_id["2609.26820"]
    assert signal.title.startswith("Signal2Symbol: Neuro-Symbolic Temporal Reasoning")
    assert signal.authors == ("Naser Mansour", "Sidahmed Benabderrahmane", "Ameer Rahwan")
    assert signal.extra["categories"] == ["cs.LG", "cs.AI"]  # primary first
    assert signal.extra["arxiv"] == {"announce_type": "new", "version": 1}
    assert signal.url == "https://arxiv.org/abs/2609.26820"
    assert signal.published_at == datetime(2026, 9, 24, 4, 0, tzinfo=UTC)
    assert signal.abstract.startswith("Physiological time series")  # no "arXiv:… Abstract:"
    assert "Announce Type" not in " ".join(p.abstract for p in dump.papers)
    cross = by_id["2205.06398"]
    assert cross.extra["arxiv"]["announce_type"] == "cross"  # a cross-list is a new paper
    assert cross.extra["categories"] == ["stat.ME", "stat.AP", "stat.ML"]


def test_a_replacement_is_left_out_of_the_dump_and_counted() -> None:
    dump = parse_arxiv_feed(RSS, name="feed.xml")
    assert "2009.13987" not in {p.arxiv_id for p in dump.papers}  # announced as `replace`
    assert dump.unlisted == 1
    crafted = parse_arxiv_feed(
        rss(item("2609.00001"), item("2609.00002", "replace-cross"), item("2609.00003", "cross")),
        name="f.xml",
    )
    assert [p.arxiv_id for p in crafted.papers] == ["2609.00001", "2609.00003"]


def test_the_api_listing_gives_the_same_fields() -> None:
    dump = parse_arxiv_feed(API, name="api.xml")
    assert [p.arxiv_id for p in dump.papers] == ["2609.26811", "2609.26902", "2609.26977"]
    heads = dump.papers[1]
    assert heads.title == "Sparse Retrieval Heads for Long-Context KV Cache Compression"
    assert heads.authors == ("Mei Lin", "Tomás Ferreira", "Ada K. Osei")
    assert heads.extra["categories"] == ["cs.CL", "cs.LG"]
    assert heads.extra["arxiv"]["version"] == 2
    assert heads.extra["arxiv"]["doi"] == "10.48550/arXiv.2609.26902"
    assert heads.published_at == datetime(2026, 9, 23, 12, 3, 11, tzinfo=UTC)
    assert heads.abstract.endswith("with 8x less memory & half the latency (p < 0.01).")
    assert dump.papers[0].title.endswith("Depth-Robust Local Learning")  # wrapped title joined
    assert dump.papers[2].extra["categories"] == ["stat.ML", "cs.CL"]  # primary first


def test_markup_in_an_abstract_is_kept_as_text_not_interpreted() -> None:
    entry = item("2609.00009", title="x &lt;script&gt;alert(1)&lt;/script&gt; y")
    (paper,) = parse_arxiv_feed(rss(entry), name="f.xml").papers
    assert paper.title == "x <script>alert(1)</script> y"  # the email's escaping handles it


def test_an_empty_arxiv_feed_is_an_empty_dump() -> None:
    dump = parse_arxiv_feed(rss(), name="weekend.xml")  # arXiv announces nothing on weekends
    assert dump.papers == () and dump.issue_date == date(2026, 9, 24)


# --- hostile or wrong input: refused in one line ---

ENTITIES = ['<!ENTITY lol0 "lol">'] + [
    f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
]
BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE rss [\n' + "\n".join(ENTITIES) + "\n]>\n"
    '<rss version="2.0"><channel><title>arXiv</title><item><title>&lol9;</title>'
    "<link>https://arxiv.org/abs/2609.00001</link></item></channel></rss>"
).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (BILLION_LAUGHS, "declares a DTD"),
        (
            b'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "file:///etc/passwd"><rss/>',
            "declares a DTD",
        ),
        # a DTD written in UTF-7 is invisible to a byte search; the parser would read it
        (
            b'<?xml version="1.0" encoding="utf-7"?>+ADw-+ACE-DOCTYPE rss +AFs-'
            b'+ADw-+ACE-ENTITY a +ACI-aaaa+ACI-+AD4-+AF0-+AD4-<rss version="2.0"/>',
            "declares the encoding 'utf-7'; arXiv feeds are UTF-8",
        ),
        ("\ufeff<rss/>".encode("utf-16"), "not UTF-8"),
        (b"<!DOCTYPE html>\n<html><body>arXiv</body></html>", "looks like an HTML page"),
        (b"<html><head><title>rss</title></head></html>", "looks like an HTML page"),
        (b"Get trending papers in your inbox\nA title\nAn abstract.\n", "not an RSS or Atom"),
        (b'<?xml version="1.0"?><opml version="2.0"/>', "its root element is <opml>"),
        (RSS[: len(RSS) // 2], "not well-formed XML (line"),
        (
            rss(
                "<item><title>Ten tips</title><link>https://blog.example.org/tips</link></item>",
                channel="A blog",
            ),
            "item 1 ('Ten tips') has no arXiv id: not an arXiv feed",
        ),
        (
            b'<?xml version="1.0"?><rss version="2.0"><channel><title>A blog</title>'
            b"<link>https://blog.example.org/</link></channel></rss>",
            "no items that does not say it is from arXiv",
        ),
        (
            b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>q</title>'
            b"<entry><id>http://arxiv.org/api/errors#incorrect_id_format_for_1234</id>"
            b"<title>Error</title><summary>incorrect id format for 1234</summary></entry></feed>",
            "the arXiv API answered with an error: incorrect id format for 1234",
        ),
    ],
)
def test_what_is_not_an_arxiv_feed_is_refused_in_one_line(data: bytes, message: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse_arxiv_feed(data, name="in.xml")
    text = str(caught.value)
    assert text.startswith("in.xml: ") and message in text
    assert "\n" not in text


def test_a_feed_over_the_size_bound_is_refused_before_parsing() -> None:
    huge = rss(item("2609.00001")) + b" " * MAX_FEED_BYTES
    with pytest.raises(BadInput, match=r"^big\.xml: 21\.0 MB is too big for an arXiv feed"):
        parse_arxiv_feed(huge, name="big.xml")


# --- stored: ids, dedup, and what a replacement must not do ---


def test_the_sample_is_stored_once_with_its_categories(store: Store) -> None:
    assert store_feed(store, RSS) == (3, 0, 1)  # the replacement: skipped
    assert store_feed(store, RSS) == (0, 0, 0)  # same bytes: already there
    with store.sessions() as session:
        paper = session.scalars(select(Paper).where(Paper.arxiv_id == "2205.06398")).one()
        assert paper.extra["categories"] == ["stat.ME", "stat.AP", "stat.ML"]
        assert paper.authors == ["Pritam Dey", "Zhengwu Zhang", "David B. Dunson"]
        assert session.scalars(select(Dump.source)).all() == ["arxiv"]


def test_the_same_paper_from_the_api_and_the_feed_is_one_row(store: Store) -> None:
    assert store_feed(store, API) == (3, 0, 0)
    assert store_feed(store, RSS) == (2, 1, 1)  # 2609.26811 is in both


def test_a_replacement_does_not_make_a_stored_paper_new_again(store: Store) -> None:
    first = rss(item("2609.00001", title="Old paper"), item("2609.00002", title="Other"))
    assert store_feed(store, first, NOW) == (2, 0, 0)
    later = NOW + timedelta(days=5)
    replaced = rss(item("2609.00001", "replace", title="Old paper"), item("2609.00003"))
    assert store_feed(store, replaced, later) == (1, 0, 1)
    with store.sessions() as session:
        old_id = session.scalar(select(Paper.id).where(Paper.arxiv_id == "2609.00001"))
        first_seen = session.scalar(select(Paper.first_seen).where(Paper.id == old_id))
        assert first_seen is not None and first_seen.replace(tzinfo=UTC) == NOW
        # What planning offers from that day's window: the new paper, not the replaced one.
        window = _listings_in_window(session, later - timedelta(hours=1), later)
        new_id = session.scalar(select(Paper.id).where(Paper.arxiv_id == "2609.00003"))
        assert set(window.paper_last_seen) == {new_id}
        listed = session.scalars(select(DumpPaper.paper_id)).all()
        assert sorted(listed).count(old_id) == 1  # listed by the first dump only


# --- fetching over HTTP (a real server on 127.0.0.1) ---

FEED_PATH = "/rss/cs.CL+cs.LG"
API_PATH = "/api/query"
XML = "application/xml"


def sources(server: LoopbackServer, **overrides: Any) -> SourceSettings:
    values: dict[str, Any] = {
        "arxiv_rss_url": f"{server.url}/rss",
        "arxiv_api_url": f"{server.url}{API_PATH}",
        "arxiv_timeout_seconds": 2.0,
    }
    return SourceSettings(**(values | overrides))


def atom(ids: list[str], total: int | None = None) -> bytes:
    count = (
        f'<opensearch:totalResults xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">'
        f"{total}</opensearch:totalResults>"
        if total is not None
        else ""
    )
    entries = "".join(
        f"<entry><id>http://arxiv.org/abs/{i}v1</id><title>Paper {i}</title>"
        f"<summary>About {i}.</summary><author><name>A. Author</name></author>"
        '<category term="cs.CL"/><published>2026-09-23T10:00:00Z</published></entry>'
        for i in ids
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>ArXiv Query</title><id>http://arxiv.org/api/x</id>{count}{entries}</feed>"
    ).encode()


def test_the_feed_of_the_categories_is_fetched_with_a_user_agent(
    http_server: LoopbackServer,
) -> None:
    http_server.serve(FEED_PATH, Reply(body=RSS, content_type=XML))
    fetched = fetch_arxiv_rss(sources(http_server), ("cs.CL", "cs.LG"))
    assert fetched.source_ref == f"{http_server.url}{FEED_PATH}"
    assert len(fetched.parsed.papers) == 3 and fetched.data == RSS
    assert http_server.requests == [(FEED_PATH, {})]
    assert http_server.headers[0]["user-agent"].startswith("digest/")


def test_a_day_from_the_api_is_paged_politely(http_server: LoopbackServer) -> None:
    ids = [f"2609.{n:05d}" for n in range(1, 6)]

    def route(query: dict[str, str]) -> Reply:
        start, size = int(query["start"]), int(query["max_results"])
        return Reply(body=atom(ids[start : start + size]), content_type=XML)

    http_server.serve(API_PATH, route)
    sleeps: list[float] = []
    fetched = fetch_arxiv_day(
        sources(http_server, arxiv_request_seconds=3.0),
        ("cs.CL", "cs.LG"),
        date(2026, 9, 23),
        sleep=sleeps.append,
        clock=lambda: 100.0,  # no time passes between requests: each waits the full 3 s
        page_size=2,
    )
    assert [p.arxiv_id for p in fetched.parsed.papers] == ids
    assert fetched.parsed.issue_date == date(2026, 9, 23)
    assert [q["start"] for _, q in http_server.requests] == ["0", "2", "4"]
    assert sleeps == [3.0, 3.0]
    query = http_server.requests[0][1]
    assert query["search_query"] == (
        "(cat:cs.CL OR cat:cs.LG) AND submittedDate:[202609230000 TO 202609232359]"
    )
    assert (query["sortBy"], query["sortOrder"]) == ("submittedDate", "ascending")


def test_a_page_that_comes_back_short_before_the_end_stores_nothing(
    http_server: LoopbackServer,
) -> None:
    """The API reports 5 papers but its second page stops short: a part of a day stored as
    the whole day would never be fetched again."""
    ids = [f"2609.{n:05d}" for n in range(1, 6)]
    pages = {"0": ids[0:2], "2": ids[2:3]}  # the second page should have held two

    def route(query: dict[str, str]) -> Reply:
        return Reply(body=atom(pages.get(query["start"], []), total=5), content_type=XML)

    http_server.serve(API_PATH, route)
    with pytest.raises(SourceError, match=r"listed 3 of the 5 papers it reports for 2026-09-23"):
        fetch_arxiv_day(
            sources(http_server), ("cs.CL",), date(2026, 9, 23), sleep=lambda _: None, page_size=2
        )
    # the whole day, as reported, is fine
    pages = {"0": ids[0:2], "2": ids[2:4], "4": ids[4:5]}
    fetched = fetch_arxiv_day(
        sources(http_server), ("cs.CL",), date(2026, 9, 23), sleep=lambda _: None, page_size=2
    )
    assert [p.arxiv_id for p in fetched.parsed.papers] == ids


def test_an_api_that_ignores_start_is_not_read_forever(http_server: LoopbackServer) -> None:
    http_server.serve(API_PATH, Reply(body=atom(["2609.00001", "2609.00002"]), content_type=XML))
    fetched = fetch_arxiv_day(
        sources(http_server, arxiv_request_seconds=0),
        ("cs.CL",),
        date(2026, 9, 23),
        page_size=2,
    )
    assert len(fetched.parsed.papers) == 2 and len(http_server.requests) == 2


def test_a_429_is_retried_after_what_retry_after_asks(http_server: LoopbackServer) -> None:
    replies = iter([Reply(429, b"", "text/plain", headers={"Retry-After": "2"})])
    http_server.serve(FEED_PATH, lambda _q: next(replies, Reply(body=RSS, content_type=XML)))
    sleeps: list[float] = []
    fetched = fetch_arxiv_rss(sources(http_server), ("cs.CL", "cs.LG"), sleep=sleeps.append)
    assert len(fetched.parsed.papers) == 3
    assert sleeps == [2.0]


def test_a_503_past_the_retries_gives_up_naming_the_url(http_server: LoopbackServer) -> None:
    http_server.serve(FEED_PATH, Reply(503, b"", "text/plain", headers={"Retry-After": "1"}))
    sleeps: list[float] = []
    with pytest.raises(SourceError, match=r"/rss/cs\.CL\+cs\.LG: HTTP 503 .*after 3 attempts"):
        fetch_arxiv_rss(
            sources(http_server, arxiv_retries=2), ("cs.CL", "cs.LG"), sleep=sleeps.append
        )
    assert sleeps == [1.0, 1.0]


def test_a_timeout_is_a_source_error(http_server: LoopbackServer) -> None:
    http_server.serve(FEED_PATH, Reply(body=RSS, content_type=XML, delay=3.0))
    with pytest.raises(SourceError, match=r"timed out after 0\.2s"):
        fetch_arxiv_rss(
            sources(http_server, arxiv_timeout_seconds=0.2, arxiv_retries=0), ("cs.CL", "cs.LG")
        )


def test_a_reply_past_the_size_bound_is_abandoned(http_server: LoopbackServer) -> None:
    http_server.serve(FEED_PATH, Reply(body=b"<rss>" + b" " * MAX_FEED_BYTES, content_type=XML))
    with pytest.raises(SourceError, match=r"larger than 20 MiB; refused"):
        fetch_arxiv_rss(sources(http_server, arxiv_retries=0), ("cs.CL", "cs.LG"))


# --- the CLI: digest ingest --arxiv ---


@pytest.fixture
def arxiv_env(
    http_server: LoopbackServer, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> LoopbackServer:
    monkeypatch.setenv("DIGEST_SOURCES__ARXIV_RSS_URL", f"{http_server.url}/rss")
    monkeypatch.setenv("DIGEST_SOURCES__ARXIV_API_URL", f"{http_server.url}{API_PATH}")
    monkeypatch.setenv("DIGEST_SOURCES__ARXIV_RETRIES", "0")
    return http_server


def test_ingest_arxiv_fetches_the_feed_once(cli: CliRunner, arxiv_env: LoopbackServer) -> None:
    arxiv_env.serve(FEED_PATH, Reply(body=RSS, content_type=XML))
    code, out, err = invoke(cli, "ingest", "--arxiv", "cs.CL,cs.LG", "--now", "2026-09-24T09:00Z")
    assert (code, err) == (0, "")
    assert out == (
        "arXiv cs.CL+cs.LG today's feed: 3 new papers / 0 already known / 1 skipped "
        "(dump #1, issue date 2026-09-24)\n"
    )
    code, out, _ = invoke(cli, "ingest", "--arxiv", "cs.CL,cs.LG", "--now", "2026-09-24T10:00Z")
    assert code == 0 and "already ingested" in out
    papers = json.loads(invoke(cli, "papers", "--json")[1])
    assert len(papers) == 3


def test_ingest_arxiv_with_a_date_asks_the_api(cli: CliRunner, arxiv_env: LoopbackServer) -> None:
    arxiv_env.serve(API_PATH, Reply(body=API, content_type=XML))
    code, out, err = invoke(cli, "ingest", "--arxiv", "cs.CL", "--date", "2026-09-23")
    assert (code, err) == (0, "")
    assert out.startswith("arXiv cs.CL submitted 2026-09-23: 3 new papers / 0 already known")
    assert "issue date 2026-09-23" in out
    ((path, query),) = arxiv_env.requests
    assert (
        path == API_PATH and "submittedDate:[202609230000 TO 202609232359]" in query["search_query"]
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("cs.CL,cs_LG", "--arxiv: not an arXiv category: 'cs_LG'"),
        ("cs.CL/../x", "not an arXiv category: 'cs.CL/../x'"),
        (",", "--arxiv: give one or more categories"),
    ],
)
def test_ingest_arxiv_refuses_what_is_not_a_category(
    cli: CliRunner, arxiv_env: LoopbackServer, value: str, message: str
) -> None:
    code, out, err = invoke(cli, "ingest", "--arxiv", value)
    assert (code, out) == (2, "")
    assert message in err and err.count("\n") == 1
    assert arxiv_env.requests == []


def test_ingest_arxiv_when_arxiv_is_unreachable(
    cli: CliRunner, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_SOURCES__ARXIV_RSS_URL", "http://127.0.0.1:9/rss")
    monkeypatch.setenv("DIGEST_SOURCES__ARXIV_RETRIES", "0")
    code, out, err = invoke(cli, "ingest", "--arxiv", "cs.CL")
    assert (code, out) == (4, "")
    assert err.startswith("error: http://127.0.0.1:9/rss/cs.CL: cannot connect")
    assert err.count("\n") == 1


def test_ingest_arxiv_refuses_a_reply_that_is_not_a_feed(
    cli: CliRunner, arxiv_env: LoopbackServer, database_url: str
) -> None:
    arxiv_env.serve(
        "/rss/cs.CL", Reply(body=b"<html><body>Sign in</body></html>", content_type="text/html")
    )
    code, _, err = invoke(cli, "ingest", "--arxiv", "cs.CL")
    assert code == 4 and "looks like an HTML page" in err and err.count("\n") == 1
    assert json.loads(invoke(cli, "dumps", "--json")[1]) == []


# --- the daemon's daily job (digest run) ---


def test_the_daily_job_is_done_when_the_days_feed_is_in(
    store: Store, http_server: LoopbackServer
) -> None:
    settings = Settings(
        web=WebSettings(secret="test-secret-0123456789abcdefghijklmnop"),
        sources=sources(http_server, arxiv_categories="cs.CL,cs.LG", arxiv_retries=0),
    )
    pipeline = Pipeline.from_settings(settings, store, mailer=MemoryMailer())
    at_0130 = datetime(2026, 9, 24, 1, 30, tzinfo=UTC)
    yesterday = RSS.replace(b"Thu, 24 Sep 2026", b"Wed, 23 Sep 2026")
    replies = iter([Reply(body=yesterday, content_type=XML), Reply(body=RSS, content_type=XML)])
    http_server.serve(FEED_PATH, lambda _q: next(replies))
    assert pipeline.fetch_arxiv(at_0130) is False  # still yesterday's: today's is late
    assert pipeline.fetch_arxiv(at_0130 + timedelta(hours=1)) is True
    with store.sessions() as session:
        assert session.scalars(select(Dump.issue_date).order_by(Dump.id)).all() == [
            date(2026, 9, 23),
            date(2026, 9, 24),
        ]
    http_server.serve(FEED_PATH, Reply(body=rss(), content_type=XML))  # a weekend: nothing
    assert pipeline.fetch_arxiv(datetime(2026, 9, 26, 1, 30, tzinfo=UTC)) is True
    down = replace(settings, sources=replace(settings.sources, arxiv_rss_url="http://127.0.0.1:9"))
    with pytest.raises(SourceError, match="cannot connect"):  # the daemon logs it and retries
        Pipeline.from_settings(down, store, mailer=MemoryMailer()).fetch_arxiv(at_0130)
