"""The plain-text page dump parser, on the four real dumps and the variants pages come in.

Expected counts were worked out by reading the files: after the header lines
and the date line every non-blank line alternates title, abstract (002 has no
blank lines and `Subscribe` glued to its first title).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.errors import BadInput
from digest.keys import title_key
from digest.sources.textdump import parse_text_dump, prose_score
from digest.values import ParsedDump, ParsedPaper
from tests.conftest import DATA

DUMPS = DATA / "dumps"
FILES = {
    "000_1a70928f5047d655.txt": (61, (8, 11)),
    "001_3c89eeafbd116431.txt": (75, (3, 20)),
    "002_cac33e2f8d605442.txt": (119, None),
    "003_e5fb1879c477aae7.txt": (53, (6, 26)),
}
# (file, title, abstract start, abstract end) — read off the raw files
SPOTS = [
    (
        "000_1a70928f5047d655.txt",
        "GEAR: An Efficient KV Cache Compression Recipefor Near-Lossless Generative Inference "
        "of LLM",
        "Key-value (KV) caching has become the de-facto to ",
        "t https://github.com/HaoKang-Timmy/GEAR.",
    ),
    (
        "000_1a70928f5047d655.txt",
        "Light Schrödinger Bridge",
        "Despite the recent advances in the field of comput",
        " at https://github.com/ngushchin/LightSB",
    ),
    (
        "000_1a70928f5047d655.txt",
        "An Efficient Tester-Learner for Halfspaces",
        "We give the first efficient algorithm for learning",
        "GD but in the testable learning setting.",
    ),
    (
        "001_3c89eeafbd116431.txt",
        "Error Feedback Reloaded: From Quadratic to Arithmetic Mean of Smoothness Constants",
        "Error Feedback (EF) is a highly popular and immens",
        "ical findings with suitable experiments.",
    ),
    (
        "001_3c89eeafbd116431.txt",
        "Interpretable structural model error discovery from sparse assimilation increments "
        "using spectral bias-reduced neural networks: A quasi-geostrophic turbulence test case",
        "Earth system models suffer from various structural",
        " the Earth system and real observations.",
    ),
    (
        "001_3c89eeafbd116431.txt",
        "On Penalty Methods for Nonconvex Bilevel Optimization and First-Order Stochastic "
        "Approximation",
        "In this work, we study first-order algorithms for ",
        "{-3}) and O(epsilon^{-5}), respectively.",
    ),
    (
        "002_cac33e2f8d605442.txt",
        "Differentially Private Kernelized Contextual Bandits",
        "We consider the problem of contextual kernel bandi",
        "ved dependence on the privacy parameter.",
    ),
    (
        "002_cac33e2f8d605442.txt",
        "A Proof of Learning Rate Transfer under μP",
        "We provide the first proof of learning rate transf",
        "ndings with extensive empirical results.",
    ),
    (
        "002_cac33e2f8d605442.txt",
        "DySpec: Faster Speculative Decoding with Dynamic Token Tree Structure",
        "While speculative decoding has recently appeared a",
        "than one token per step for draft model.",
    ),
    (
        "003_e5fb1879c477aae7.txt",
        "FlexRound: Learnable Rounding based on Element-wise Division for Post-Training "
        "Quantization",
        "Post-training quantization (PTQ) has been gaining ",
        "g the output in a block-by-block manner.",
    ),
    (
        "003_e5fb1879c477aae7.txt",
        "Programming Puzzles",
        "We introduce a new type of programming challenge c",
        " impact on many program synthesis areas.",
    ),
    (
        "003_e5fb1879c477aae7.txt",
        "ProcessBench: Identifying Process Errors in Mathematical Reasoning",
        "As language models regularly make mistakes when so",
        "d scalable oversight of language models.",
    ),
]


def parse_file(name: str) -> ParsedDump:
    return parse_text_dump((DUMPS / name).read_bytes(), name=name)


def parse(text: str, name: str = "dump.txt") -> ParsedDump:
    return parse_text_dump(text.encode(), name=name)


def pairs(dump: ParsedDump) -> list[tuple[str, str]]:
    return [(p.title, p.abstract) for p in dump.papers]


@pytest.mark.parametrize("name", sorted(FILES))
def test_real_dumps_parse_to_exact_counts_and_dates(name: str) -> None:
    count, month_day = FILES[name]
    dump = parse_file(name)
    assert len(dump.papers) == count
    assert dump.month_day == month_day
    assert dump.warnings == ()
    for paper in dump.papers:
        assert paper.title and not paper.title.startswith("Subscribe")
        assert len(paper.abstract) > 400, paper.title  # every listing got its abstract
        assert len(paper.title) < 200


def test_real_dumps_hold_308_listings_of_268_papers() -> None:
    listings = [p for name in FILES for p in parse_file(name).papers]
    assert len(listings) == 308
    assert len({title_key(p.title) for p in listings}) == 268


@pytest.mark.parametrize(("name", "title", "start", "end"), SPOTS)
def test_spot_checks_titles_and_abstracts(name: str, title: str, start: str, end: str) -> None:
    by_title = {p.title: p for p in parse_file(name).papers}
    assert title in by_title
    assert by_title[title].abstract.startswith(start)
    assert by_title[title].abstract.endswith(end)


def test_listing_line_numbers_point_at_titles() -> None:
    papers = parse_file("000_1a70928f5047d655.txt").papers
    assert [p.line for p in papers[:3]] == [13, 17, 21]
    assert parse_file("002_cac33e2f8d605442.txt").papers[1].line == 5


def _sample(name: str = "003_e5fb1879c477aae7.txt") -> list[tuple[str, str]]:
    return pairs(parse_file(name))


def _render(entries: list[tuple[str, str]], *, sep: str = "\n\n", header: str = "") -> str:
    return header + sep.join(f"{t}{sep}{a}" for t, a in entries) + "\n"


@pytest.mark.parametrize(
    "transform",
    [
        pytest.param(lambda s: s.replace("\n", "\r\n"), id="crlf"),
        pytest.param(lambda s: "\ufeff" + s, id="bom"),
        pytest.param(lambda s: s.replace("\n", "  \n"), id="trailing-spaces"),
        pytest.param(lambda s: s.replace("\n", " \t\r\n"), id="trailing-whitespace-crlf"),
        pytest.param(lambda s: s.replace("\n\n", "\n"), id="no-blank-lines"),
        pytest.param(lambda s: s.replace("\n\n", "\n\n\n\n"), id="many-blank-lines"),
    ],
)
def test_line_ending_and_spacing_variants_give_the_same_papers(transform: object) -> None:
    original = (DUMPS / "003_e5fb1879c477aae7.txt").read_text(encoding="utf-8")
    varied = transform(original)  # type: ignore[operator]
    assert pairs(parse(varied)) == _sample()


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Daily Papers\n",
        "Subscribe\nnew\nby AK and the research community\n",
        "Get trending papers in your email inbox once a day!\nGet trending papers in your "
        "email inbox!\n",
        "byAK and the research community\nDaily Papers\nSubscribe\nGet trending papers in your "
        "email inbox!\nnew\n",
    ],
)
def test_header_sets_and_orders(header: str) -> None:
    entries = _sample()[:5]
    dump = parse(_render(entries, header=header + "Jun 26\n"))
    assert pairs(dump) == entries
    assert dump.month_day == (6, 26)


def test_subscribe_glued_to_first_title_is_stripped() -> None:
    entries = _sample()[:3]
    text = "new\nSubscribe" + _render(entries, sep="\n")
    assert pairs(parse(text)) == entries


def test_date_line_is_optional_and_accepts_full_month_names() -> None:
    entries = _sample()[:2]
    assert parse(_render(entries)).month_day is None
    assert parse("Daily Papers\nAugust 3\n" + _render(entries)).month_day == (8, 3)


def test_final_title_without_abstract_is_kept_with_a_warning() -> None:
    entries = _sample()[:4]
    text = _render(entries) + "\nProgramming Puzzles\n"
    dump = parse(text)
    assert pairs(dump) == [*entries, ("Programming Puzzles", "")]
    assert len(dump.warnings) == 1
    assert "dump.txt: line 17: 'Programming Puzzles' has no abstract" in dump.warnings[0]


def test_short_abstract_still_pairs_with_its_title() -> None:
    # one sentence, shorter than the longest title in the real dumps
    entries = [
        ("Tiny Paper", "We show that tiny models work."),
        *_sample()[:2],
        (
            "Another: A Long Title That Goes On About Many Things In Detail For Testing",
            "Short abstracts exist too.",
        ),
    ]
    assert pairs(parse(_render(entries))) == entries


# Metadata lines as pages saved on other days carry them, around each entry.
META_AFTER = [
    ["· 5 authors", "Published on Jun 20, 2025", "42"],
    ["Google DeepMind", "12 authors", "7 upvotes"],
    ["·", "3 authors", "Submitted on 2 Jan 2025 · 128"],
    ["Shanghai AI Laboratory", "▲ 9"],
    ["2024-11-30", "1 author"],
]


def _with_meta(entries: list[tuple[str, str]], *, before: bool) -> str:
    chunks: list[str] = []
    for i, (title, abstract) in enumerate(entries):
        meta = META_AFTER[i % len(META_AFTER)]
        if before:
            chunks += [*meta, title, abstract]
        else:
            chunks += [title, abstract, *meta]
    return "new\nSubscribe\nJun 26\n" + "\n\n".join(chunks) + "\n"


@pytest.mark.parametrize("before", [False, True], ids=["meta-after-entry", "meta-before-entry"])
def test_metadata_lines_never_become_titles_or_shift_pairs(before: bool) -> None:
    entries = _sample()
    dump = parse(_with_meta(entries, before=before))
    assert pairs(dump) == entries
    assert dump.warnings == ()
    upvotes = [p.upvotes for p in dump.papers[:5]]
    assert upvotes == [42, 7, 128, 9, None]
    published = [p.published_at for p in dump.papers[:5]]
    assert published == [
        datetime(2025, 6, 20, tzinfo=UTC),
        None,
        datetime(2025, 1, 2, tzinfo=UTC),
        None,
        datetime(2024, 11, 30, tzinfo=UTC),
    ]
    assert dump.papers[1].extra["meta_lines"] == ["Google DeepMind", "12 authors", "7 upvotes"]


def test_metadata_between_title_and_abstract() -> None:
    entries = _sample()[:6]
    chunks: list[str] = []
    for title, abstract in entries:
        chunks += [title, "· 4 authors", "Meta AI", "15", abstract]
    dump = parse("\n".join(chunks) + "\n")
    assert pairs(dump) == entries
    assert [p.upvotes for p in dump.papers] == [15] * 6


def test_conflicting_upvotes_are_not_guessed() -> None:
    entries = _sample()[:2]
    text = "\n".join([entries[0][0], entries[0][1], "12", "30", entries[1][0], entries[1][1]])
    dump = parse(text)
    assert pairs(dump) == entries
    assert dump.papers[0].upvotes is None


def test_prose_score_separates_every_real_title_from_every_real_abstract() -> None:
    papers: list[ParsedPaper] = [p for name in FILES for p in parse_file(name).papers]
    assert (
        max(prose_score(p.title) for p in papers) < 0 < min(prose_score(p.abstract) for p in papers)
    )


# --- bad input: clear messages naming file and line ---


def test_empty_file() -> None:
    with pytest.raises(BadInput, match=r"^x\.txt: empty file"):
        parse_text_dump(b"", name="x.txt")
    with pytest.raises(BadInput, match="empty file"):
        parse_text_dump(b"\n \r\n\t\n", name="x.txt")


def test_only_headers() -> None:
    text = "new\n\nGet trending papers in your email inbox!\n\nSubscribe\n\nAug 11\n"
    with pytest.raises(BadInput, match=r"x\.txt: no papers found: only page headers.*lines 1-7"):
        parse(text, "x.txt")


def test_binary_file_names_the_line() -> None:
    data = b"Daily Papers\nA Title\n\x89PNG\x00\x01\x02"
    with pytest.raises(BadInput, match=r"^bin\.txt: line 3: binary data"):
        parse_text_dump(data, name="bin.txt")


def test_latin1_file_names_line_and_column() -> None:
    data = "Daily Papers\n\nLight Schrödinger Bridge\n".encode("latin-1")
    with pytest.raises(
        BadInput, match=r"^l1\.txt: line 3, column 11: not UTF-8 text \(byte 0xf6\)"
    ):
        parse_text_dump(data, name="l1.txt")


def test_two_abstracts_in_a_row_is_an_error_naming_the_line() -> None:
    (t1, a1), (_, a2) = _sample()[:2]
    text = "\n\n".join([t1, a1, a2]) + "\n"
    with pytest.raises(BadInput, match=r"^d\.txt: line 5: an abstract with no title before it"):
        parse(text, "d.txt")


def test_too_big_is_refused_before_parsing(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="too big for a page dump"):
        parse_text_dump(b"x" * (33 * 2**20), name="big.txt")


def test_a_title_missing_its_abstract_mid_page_is_kept_and_does_not_shift_the_rest() -> None:
    entries = _sample()[:4]
    lonely = "A Perfectly Ordinary Paper Title Whose Abstract Was Lost in Saving"
    text = _render([entries[0]]) + f"\n{lonely}\n\n" + _render(entries[1:])
    dump = parse(text)
    assert pairs(dump) == [entries[0], (lonely, ""), *entries[1:]]
    assert "has no abstract" in dump.warnings[0]
