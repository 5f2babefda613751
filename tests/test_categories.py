"""`cat:` in topic filters: arXiv categories as hard rules next to words, end to end.

What a reader notices: `cat:cs.CL retrieval` sends retrieval papers of cs.CL and
no others, `cat:cs.*` takes a whole archive, a category alone sends the
category's papers, and a filter the words could never rank is refused when
typed, with the reason.
"""

from __future__ import annotations

import email
import json
import mailbox
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from digest.config import ScoringSettings
from digest.errors import BadInput, QuerySyntaxError
from digest.filters import Category, meaning_texts, parse, to_text
from digest.scoring import PaperIndex
from digest.store.database import open_store
from digest.store.schema import Paper
from digest.values import PaperText
from tests.conftest import DATA, invoke
from tests.test_arxiv import item, rss
from tests.test_send_cli import plain_text, send_config

__all__ = ["send_config"]  # a fixture, used by name

# --- the language ---


@pytest.mark.parametrize(
    "text",
    [
        "cat:cs.CL retrieval",
        "cat:cs.*",
        "(cat:cs.CL OR cat:cs.IR) retrieval -cat:cs.CV",
        "cat:hep-th strings",
        "cat:astro-ph.* transients",
        "cat:cond-mat.str-el",
    ],
)
def test_a_category_filter_reads_back_as_typed(text: str) -> None:
    assert to_text(parse(text)) == text
    assert parse(to_text(parse(text))) == parse(text)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("cat: retrieval", "cat: must be followed by an arXiv category"),
        ("cat:cs.CL.x retrieval", "not an arXiv category: 'cs.CL.x'"),
        ("cat:* retrieval", "not an arXiv category: '*'"),
        ("title:(cat:cs.CL retrieval)", "a category is not text"),
    ],
)
def test_a_malformed_category_is_a_syntax_error_with_its_place(text: str, says: str) -> None:
    with pytest.raises(QuerySyntaxError) as raised:
        parse(text)
    assert says in str(raised.value)
    assert "^" in str(raised.value)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("-cat:cs.CV", "only excludes"),
        ("cat:cs.CL -cat:cs.CL", "excludes it"),
        ("cat:cs.CL OR retrieval", "'cat:cs.CL' is an OR alternative with no words"),
        ("(cat:cs.IR -bm25) OR dense retrieval", "'cat:cs.IR -bm25' is an OR alternative"),
    ],
)
def test_a_category_filter_that_could_never_be_sent_is_refused(text: str, says: str) -> None:
    with pytest.raises(BadInput) as raised:
        parse(text)
    assert says in str(raised.value)


@pytest.mark.parametrize(
    ("typed", "spelled"),
    [
        ("cat:cs.cl x", "cat:cs.CL x"),
        ("cat:STAT.ml x", "cat:stat.ML x"),
        ("cat:cond-mat.STR-EL x", "cat:cond-mat.str-el x"),
        ("cat:Astro-Ph.* x", "cat:astro-ph.* x"),
        ("cat:HEP-TH x", "cat:hep-th x"),
    ],
)
def test_a_category_is_spelled_as_arxiv_does_so_equal_filters_are_equal(
    typed: str, spelled: str
) -> None:
    assert to_text(parse(typed)) == spelled
    assert parse(typed) == parse(spelled)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("cat:cs retrieval", "'cs' is an arXiv archive, not a category: write cs.* for all"),
        ("cat:retrieval rerank", "no arXiv archive is called 'retrieval'"),
        ("cat:llm agents", "no arXiv archive is called 'llm'"),
        ("cat:hep-th.* strings", "hep-th has no subject classes"),
    ],
)
def test_a_category_arxiv_does_not_have_is_refused_not_left_to_match_nothing(
    text: str, says: str
) -> None:
    with pytest.raises(QuerySyntaxError) as raised:
        parse(text)
    assert says in str(raised.value)


def test_a_category_is_not_part_of_what_the_topic_means() -> None:
    assert meaning_texts("cat:cs.CL dense retrieval") == ("dense retrieval",)
    assert meaning_texts("cat:cs.CL") == ()


def test_categories_compare_without_case_and_archives_by_their_dot() -> None:
    assert Category("cs.cl").matches(["cs.CL"])
    assert Category("cs.*").matches(["stat.ML", "cs.LG"])
    assert not Category("cs.*").matches(["csx.AB"])
    assert not Category("cs.CL").matches([])


# --- scoring ---


def paper(pid: int, title: str, cats: tuple[str, ...], upvotes: int | None = None) -> PaperText:
    return PaperText(pid, title, f"We study {title.lower()}.", (), upvotes, cats)


PAPERS = [
    paper(1, "Dense retrieval for question answering", ("cs.CL", "cs.IR")),
    paper(2, "Retrieval of images by sketches", ("cs.CV",)),
    paper(3, "Syntactic parsing of long sentences", ("cs.CL",), upvotes=3),
    paper(4, "Retrieval augmented generation", ()),  # a page-dump paper: no categories
    paper(5, "Learned sparse retrieval", ("cs.IR",)),
    paper(6, "Morphology in low-resource languages", ("cs.CL",), upvotes=40),
]


def found(query: str) -> list[int]:
    index = PaperIndex(PAPERS, ScoringSettings())
    return [hit.paper_id for hit in index.search(parse(query))]


def test_words_and_a_category_select_the_categorys_papers_with_the_words() -> None:
    assert set(found("retrieval")) == {1, 2, 4, 5}
    assert found("cat:cs.CL retrieval") == [1]
    assert set(found("(cat:cs.CL OR cat:cs.IR) retrieval")) == {1, 5}
    assert set(found("retrieval -cat:cs.CV")) == {1, 4, 5}


def test_a_category_alone_sends_its_papers_most_upvoted_first() -> None:
    assert found("cat:cs.CL") == [6, 3, 1]
    assert set(found("cat:cs.*")) == {1, 2, 3, 5, 6}
    assert found("cat:cs.CL -parsing") == [6, 1]


def test_a_category_keeps_a_long_topic_relaxed() -> None:
    """A long topic needs only most of its words; a category next to them narrows the
    papers without making every word strict."""
    query = "dense passage retrieval for open question answering benchmarks"
    assert found(query) == [1]
    assert found("cat:cs.CL " + query) == [1]
    assert found("cat:cs.CV " + query) == []


def test_a_group_of_categories_keeps_a_long_topic_relaxed_too() -> None:
    """docs/filters.md says to write several categories as a group: the group must narrow
    the papers as one category does, not make every word of the topic strict."""
    query = "dense passage retrieval for open question answering benchmarks"
    assert found("(cat:cs.CL OR cat:cs.IR) " + query) == [1]
    assert found("(cat:cs.CV OR cat:stat.ML) " + query) == []


def test_malformed_stored_categories_are_ignored_not_read_letter_by_letter() -> None:
    from types import SimpleNamespace

    from digest.store.reads import paper_text

    def row(categories: object) -> Any:
        extra = {"categories": categories}
        return SimpleNamespace(id=1, title="T", abstract="A", authors=[], extra=extra)

    assert paper_text(row(["cs.CL", None, 3]), None).categories == ("cs.CL",)
    assert paper_text(row("cs.CL"), None).categories == ()
    assert paper_text(row(7), None).categories == ()


def test_match_explain_names_the_category_a_paper_is_not_in() -> None:
    index = PaperIndex(PAPERS, ScoringSettings())
    why = index.explain(5, parse("cat:cs.CL retrieval"))
    assert "cat:cs.CL" in why.missing


# --- end to end: arXiv feed in, one email out ---


def ok(cli: CliRunner, *args: str) -> str:
    code, out, err = invoke(cli, *args)
    assert code == 0, out + err
    return out


@pytest.mark.usefixtures("send_config")
def test_a_reader_of_cs_cl_retrieval_gets_only_cs_cl_retrieval_papers_with_their_links(
    cli: CliRunner, tmp_path: Path
) -> None:
    feed = tmp_path / "cs-feed.xml"
    feed.write_bytes(
        rss(
            item("2609.00001", title="Dense Retrieval with Late Interaction", cats="cs.IR"),
            item(
                "2609.00002",
                announce="cross",
                title="Retrieval-Augmented Parsing of Clinical Notes",
                cats="cs.IR cs.CL",
            ),
            item("2609.00003", title="Syntactic Parsing at Scale", cats="cs.CL"),
        )
    )
    at = "2026-09-24T06:00:00+00:00"
    for address, topic in (
        ("ada@example.org", "cat:cs.CL retrieval"),
        ("bo@example.org", "retrieval"),
    ):
        ok(
            cli,
            *("subscribe", address, "--topic", topic),
            *("--hour", "8", "--timezone", "UTC", "--confirmed"),
            *("--now", "2026-09-01T00:00:00+00:00"),
        )
    for source in (DATA / "dumps" / "001_3c89eeafbd116431.txt", DATA / "arxiv_api_sample.xml"):
        ok(cli, "ingest", str(source), "--now", at)
    ok(cli, "ingest", str(feed), "--now", at)
    ok(cli, "send", "--now", "2026-09-24T08:00:00+00:00")

    box = mailbox.Maildir(tmp_path / "maildir", create=True)
    messages = [email.message_from_bytes(box.get_bytes(key)) for key in box.iterkeys()]
    mails = {str(m["To"]): m for m in messages}
    ada = plain_text(mails["ada@example.org"])
    assert "Sparse Retrieval Heads for Long-Context KV Cache Compression" in ada  # cs.CL
    assert "Retrieval-Augmented Parsing of Clinical Notes" in ada  # cs.CL as a cross-list
    assert "Dense Retrieval with Late Interaction" not in ada  # cs.IR only
    assert "Syntactic Parsing at Scale" not in ada  # cs.CL, not about retrieval
    assert "https://arxiv.org/abs/2609.00002" in ada
    assert "https://arxiv.org/pdf/2609.00002" in ada
    # the same words without the category also find the others, page-dump papers included
    bo = plain_text(mails["bo@example.org"])
    assert "Dense Retrieval with Late Interaction" in bo
    page_paper = "Towards Neural Synthesis for SMT-Assisted Proof-Oriented Programming"
    assert page_paper in bo
    assert page_paper not in ada


@pytest.mark.usefixtures("send_config")
def test_the_same_paper_from_hugging_face_and_arxiv_is_one_row_with_both_kinds_of_facts(
    cli: CliRunner, tmp_path: Path, database_url: str
) -> None:
    """HF knows upvotes and the code repository; arXiv knows categories."""
    listed = json.loads((DATA / "hf_daily_papers.json").read_text())
    first, second = listed[0]["paper"], listed[1]["paper"]
    feed = tmp_path / "feed.xml"
    feed.write_bytes(
        rss(
            item(f"{first['id']}", title=first["title"], cats="cs.CL cs.LG"),
            item(f"{second['id']}", title=second["title"], cats="cs.CV"),
        )
    )
    ok(cli, "ingest", str(DATA / "hf_daily_papers.json"), "--now", "2026-06-27T06:00:00+00:00")
    ok(cli, "ingest", str(feed), "--now", "2026-06-28T06:00:00+00:00")

    store = open_store(database_url)
    try:
        with store.sessions() as session:
            rows = list(
                session.scalars(
                    select(Paper).where(Paper.arxiv_id.in_([first["id"], second["id"]]))
                )
            )
            assert sorted(row.arxiv_id for row in rows) == sorted([first["id"], second["id"]])
            by_id = {row.arxiv_id: row for row in rows}
            assert by_id[first["id"]].extra["categories"] == ["cs.CL", "cs.LG"]
            assert by_id[second["id"]].extra["categories"] == ["cs.CV"]
    finally:
        store.dispose()
    # and the HF paper now answers to its arXiv category
    out = ok(cli, "match", "cat:cs.CV", "--all", "--json")
    assert [hit["title"] for hit in json.loads(out)["papers"]] == [second["title"]]
