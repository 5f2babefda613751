"""The arXiv source: its RSS feed and API listing parsed, stored, and hostile input refused."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from digest.errors import BadInput
from digest.planner.candidates import _listings_in_window
from digest.sources.arxiv import MAX_FEED_BYTES, parse_arxiv_feed
from digest.store.database import Store
from digest.store.dumps import store_dump
from digest.store.schema import Dump, DumpPaper, Paper
from tests.conftest import DATA

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
