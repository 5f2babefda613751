"""The digest email: parsed back with the `email` package, as a mail client would see it."""

from __future__ import annotations

import email
import gc
import os
import re
import tracemalloc
from dataclasses import replace
from datetime import datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path

import html5lib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.config import SenderSettings, Settings
from digest.email import mime
from digest.email.render import Renderer
from digest.errors import BadInput
from digest.values import DigestView, MatchedTerm, PaperCard
from tests.render_views import sample_view
from tests.stdlib_message import html_tokens, stdlib_message

GOLDEN = Path(__file__).parent / "data" / "golden"
# Read at import: the autouse fixture clears DIGEST_* variables for each test.
REGENERATE = os.environ.get("DIGEST_REGENERATE_GOLDEN") == "1"
SETTINGS = Settings(
    sender=SenderSettings(
        address="digest@example.org",
        name="Paper digest",
        postal_address="Paper digest · 1 Example Street · 10115 Berlin · help@example.org",
    )
)
HOSTILE_TITLE = '<script>alert(1)</script> & "quotes"'


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(SETTINGS)


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> tuple[EmailMessage, EmailMessage]:
    text, html = list(message.iter_parts())
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    return text, html


def body(part: EmailMessage) -> str:
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def hrefs(html: str) -> list[str]:
    document = html5lib.parse(html, namespaceHTMLElements=False)
    return [a.get("href") for a in document.iter("a")]


def one_card(**changes: object) -> PaperCard:
    card = sample_view(1).papers[0]
    return replace(card, **changes)  # type: ignore[arg-type]


VIEWS = {
    "one paper": sample_view(1, topics=("LLM agents",)),
    "ten papers, three topics": sample_view(10),
    "twenty-five papers": sample_view(25),
    "no papers": replace(sample_view(1), papers=()),
}


# --- the message as a whole ---


@pytest.mark.parametrize("name", list(VIEWS))
def test_message_parses_back_with_both_parts_and_all_headers(renderer: Renderer, name: str) -> None:
    view = VIEWS[name]
    data = renderer.message_bytes(view)
    message = parse(data)

    assert message.get_content_type() == "multipart/alternative"
    assert message.defects == []
    text, html = parts(message)
    assert [text.get_content_type(), html.get_content_type()] == ["text/plain", "text/html"]
    assert text.get_content_charset() == html.get_content_charset() == "utf-8"
    assert body(text) == renderer.text(view)
    # 7bit: what was outside ASCII comes as character references, long lines broken
    assert html["Content-Transfer-Encoding"] == "7bit"
    assert html_tokens(body(html)) == html_tokens(renderer.html(view))

    assert message["From"].addresses[0].addr_spec == "digest@example.org"
    assert message["From"].addresses[0].display_name == "Paper digest"
    assert message["To"].addresses[0].addr_spec == view.email
    assert str(message["Subject"]) == renderer.subject(view)
    assert message["Date"].datetime == view.issued_at
    assert message["Message-ID"] == view.message_id
    assert message["List-Id"] == "Paper digest <digest.example.org>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["MIME-Version"] == "1.0"
    # Every line CRLF-terminated and within the RFC 5322 limit.
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998


@pytest.mark.parametrize("name", list(VIEWS))
def test_fast_bytes_equal_the_stdlib_message(renderer: Renderer, name: str) -> None:
    view = VIEWS[name]
    fast = parse(renderer.message_bytes(view))
    reference = stdlib_message(renderer, view)
    for candidate in (reference, parse(reference.as_bytes())):
        assert [(k, str(v)) for k, v in fast.items()] == [(k, str(v)) for k, v in candidate.items()]
        for ours, theirs in zip(fast.iter_parts(), candidate.iter_parts(), strict=True):
            assert isinstance(ours, EmailMessage) and isinstance(theirs, EmailMessage)
            assert ours.get_content_type() == theirs.get_content_type()
            assert ours["Content-Transfer-Encoding"] == theirs["Content-Transfer-Encoding"]
            assert body(ours) == body(theirs)


def test_rendering_is_deterministic(renderer: Renderer) -> None:
    view = sample_view(10)
    assert renderer.message_bytes(view) == Renderer(SETTINGS).message_bytes(view)


def test_links_are_absolute_and_unsubscribe_is_consistent(renderer: Renderer) -> None:
    view = sample_view(10)
    message = parse(renderer.message_bytes(view))
    text, html = (body(part) for part in parts(message))
    links = hrefs(html)
    assert links and all(re.match(r"https?://", link) for link in links), links
    assert view.unsubscribe_url in links and view.manage_url in links
    assert view.view_url in links
    for card in view.papers:
        assert f"https://arxiv.org/abs/{card.arxiv_id}" in links
        assert f"https://arxiv.org/abs/{card.arxiv_id}" in text
    assert view.unsubscribe_url in text and view.manage_url in text
    assert message["List-Unsubscribe"] == (f"<{view.unsubscribe_url}>, <{view.unsubscribe_mailto}>")
    # No remote content, no scripts, no web fonts.
    assert not re.search(r"<(script|img|link|iframe)\b|@import|@font-face|url\(", html, re.I)


def test_mailto_defaults_to_the_configured_address() -> None:
    settings = replace(
        SETTINGS, sender=replace(SETTINGS.sender, unsubscribe_mailto="leave@example.org")
    )
    view = replace(sample_view(2), unsubscribe_mailto=None)
    message = parse(Renderer(settings).message_bytes(view))
    assert message["List-Unsubscribe"].endswith("<mailto:leave@example.org?subject=unsubscribe>")


def test_long_list_unsubscribe_stays_on_one_unencoded_line(renderer: Renderer) -> None:
    """gh-85725: CPython may RFC 2047-encode a long List-Unsubscribe when folding it."""
    long_url = "https://digest.example.org/u/" + "x" * 180
    view = replace(sample_view(2), unsubscribe_url=long_url)
    data = renderer.message_bytes(view)
    lines = [line for line in data.split(b"\r\n") if line.startswith(b"List-Unsubscribe:")]
    expected = f"List-Unsubscribe: <{long_url}>, <{view.unsubscribe_mailto}>".encode()
    assert lines == [expected]
    index = data.split(b"\r\n").index(expected)
    assert not data.split(b"\r\n")[index + 1].startswith((b" ", b"\t"))  # not folded
    assert parse(data)["List-Unsubscribe"] == expected.decode().split(": ", 1)[1]


# --- header safety ---


HOSTILE = [
    "x\r\nBcc: victim@example.com",
    "x\nBcc: victim@example.com",
    "x\rBcc: victim@example.com",
    "x\x00y",
    "x\u2028Bcc: victim@example.com",
    "x\x85Bcc: victim@example.com",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_topic_cannot_add_a_header(renderer: Renderer, hostile: str) -> None:
    card = one_card(topic_label=hostile)
    view = replace(sample_view(1), topics=(hostile,), papers=(card,))
    with pytest.raises(BadInput, match="line breaks or control characters"):
        renderer.message_bytes(view)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_title_of_the_subject_paper_is_refused(renderer: Renderer, hostile: str) -> None:
    view = replace(sample_view(1), papers=(one_card(title=hostile),))
    with pytest.raises(BadInput):
        renderer.message_bytes(view)


@pytest.mark.parametrize("hostile", HOSTILE)
@pytest.mark.parametrize("key", ["name", "address", "postal_address", "unsubscribe_mailto"])
def test_hostile_sender_settings_are_refused(key: str, hostile: str) -> None:
    value = hostile if key != "address" and key != "unsubscribe_mailto" else f"a@b.org{hostile}"
    settings = replace(SETTINGS, sender=replace(SETTINGS.sender, **{key: value}))
    with pytest.raises(BadInput, match=f"sender.{key}"):
        Renderer(settings)


@pytest.mark.parametrize(
    "field",
    ["email", "message_id", "unsubscribe_url", "manage_url", "view_url", "unsubscribe_mailto"],
)
def test_hostile_view_values_are_refused(renderer: Renderer, field: str) -> None:
    view = sample_view(1)
    value = str(getattr(view, field)) + "\r\nBcc: victim@example.com"
    with pytest.raises(BadInput):
        renderer.message_bytes(replace(view, **{field: value}))


def test_a_header_lookalike_in_a_safe_title_stays_inside_the_subject(renderer: Renderer) -> None:
    title = "Bcc: victim@example.com =?utf-8?q?=0D=0ABcc:_x?= " + "word " * 30
    view = replace(sample_view(1), papers=(one_card(title=title),))
    message = parse(renderer.message_bytes(view))
    assert message["Bcc"] is None
    assert "\n" not in str(message["Subject"])
    assert list(message.keys())[:3] == ["From", "To", "Subject"]


def test_non_ascii_names_and_subjects_are_encoded_and_decode_back() -> None:
    settings = replace(SETTINGS, sender=replace(SETTINGS.sender, name="Pâpers — Ünïcode digest"))
    renderer = Renderer(settings)
    card = one_card(topic_label="Übersetzung ✓", title="Maschinelle Übersetzung für 日本語 " * 3)
    view = replace(sample_view(1), topics=("Übersetzung ✓",), papers=(card,))
    data = renderer.message_bytes(view)
    assert data.split(b"\r\n\r\n")[0].isascii()
    message = parse(data)
    assert message["From"].addresses[0].display_name == "Pâpers — Ünïcode digest"
    assert str(message["Subject"]) == renderer.subject(view)
    assert "Übersetzung ✓" in str(message["Subject"])
    assert message["List-Id"] == "Pâpers — Ünïcode digest <digest.example.org>"
    head = data.split(b"\r\n\r\n")[0].split(b"\r\n")
    assert max(len(line) for line in head if not line.startswith(b"List-Unsubscribe:")) <= 78


def test_naive_issue_time_is_refused(renderer: Renderer) -> None:
    view = replace(sample_view(1), issued_at=datetime(2026, 11, 22, 8, 0))
    with pytest.raises(BadInput, match="timezone-aware"):
        renderer.message_bytes(view)


# --- content ---


def test_hostile_title_renders_as_text_in_both_parts(renderer: Renderer) -> None:
    view = replace(sample_view(3), papers=(one_card(title=HOSTILE_TITLE), *sample_view(3).papers))
    message = parse(renderer.message_bytes(view))
    text, html = (body(part) for part in parts(message))
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;quotes&#34;" in html
    document = html5lib.parse(html, namespaceHTMLElements=False)
    titles = [a.text for a in document.iter("a") if a.get("class") == "title-link"]
    assert titles[0] == HOSTILE_TITLE
    assert HOSTILE_TITLE in text
    assert HOSTILE_TITLE in str(message["Subject"])


@pytest.mark.parametrize("name", list(VIEWS))
def test_html_parses_without_errors_in_html5lib(renderer: Renderer, name: str) -> None:
    parser = html5lib.HTMLParser(strict=True)
    parser.parse(renderer.html(VIEWS[name]))
    assert parser.errors == []


def test_css_is_inlined_and_only_media_queries_stay_in_a_style_block(renderer: Renderer) -> None:
    html = renderer.html(sample_view(2))
    document = html5lib.parse(html, namespaceHTMLElements=False)
    links = [a for a in document.iter("a") if a.get("class") == "title-link"]
    assert links and all("color:" in (a.get("style") or "") for a in links)
    styles = [s.text or "" for s in document.iter("style")]
    assert len(styles) == 1
    assert "prefers-color-scheme: dark" in styles[0] and "max-width" in styles[0]
    without_media = re.sub(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*\s*\}", "", styles[0])
    assert without_media.strip() == ""


def test_twenty_five_papers_stay_under_gmail_clipping(renderer: Renderer) -> None:
    view = sample_view(25)
    size = len(renderer.html(view).encode("utf-8"))
    assert size < 100_000, size


def test_text_part_is_wrapped_numbered_and_lists_links(renderer: Renderer) -> None:
    view = sample_view(12)
    text = renderer.text(view)
    for line in text.splitlines():
        assert len(line) <= 72 or re.fullmatch(r"\s*(\S+:\s+)?https?://\S+", line), line
    numbers = [int(n) for n in re.findall(r"^ ?(\d+)\. ", text, re.M)]
    assert numbers == list(range(1, 13))
    # the reader's ways to act are links, never a command they do not have
    assert "digest topics" not in text and view.manage_url in text
    assert text.count("More like this: https://") == 12
    assert text.count("https://arxiv.org/abs/") == 12
    assert "<" not in text.replace("<script", "")  # plain text, no markup


# Text as sources write it: any character (line breaks, tabs, "=", spaces at the end,
# words longer than a line); a title and a topic reach the subject, so no control there.
ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=160)
HEADER_TEXT = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=100
).filter(str.strip)


@settings(max_examples=120, deadline=None)
@given(
    cards=st.lists(
        st.tuples(HEADER_TEXT, ANY_TEXT, ANY_TEXT, st.sampled_from(["a", "b = c", "d\u00e9 "])),
        min_size=1,
        max_size=12,
    ),
    label=HEADER_TEXT,
)
def test_the_text_part_is_the_whole_text_quoted_printable(
    renderer: Renderer, cards: list[tuple[str, str, str, str]], label: str
) -> None:
    # The text part is encoded in pieces (each card's lines once per run): the bytes
    # must be those of the whole text encoded at once, card cache warm or cold.
    papers = tuple(
        one_card(title=title, authors=(author,), abstract=abstract, topic_label=topic, matched=())
        for title, author, abstract, topic in cards
    )
    view = replace(sample_view(1), papers=papers, topics=(label, "a", "b = c", "d\u00e9 "))
    whole = mime.quoted_printable(renderer.text(view))
    # a renderer that has not seen these cards, then the shared one, which has
    for writer in (Renderer(SETTINGS), renderer):
        data = writer.message_bytes(view)
        start = data.index(b"quoted-printable\r\n\r\n") + len(b"quoted-printable\r\n\r\n")
        assert data[start : start + len(whole)] == whole
        assert data[start + len(whole) :].startswith(b"\r\n--=_digest_")
    assert body(parts(parse(data))[0]) == renderer.text(view).replace("\r\n", "\n").replace(
        "\r", "\n"
    )


def test_snippet_is_centred_on_the_matched_words_and_highlighted(renderer: Renderer) -> None:
    abstract = (
        ("Filler words about nothing in particular. " * 20)
        + ("Here speculative decoding makes inference fast. ")
        + ("More filler text that says little. " * 20)
    )
    start = abstract.index("speculative decoding")
    matched = (MatchedTerm("speculative decoding", "abstract", start, start + 20),)
    card = one_card(abstract=abstract, matched=matched, arxiv_id=None)
    view = replace(sample_view(1), papers=(card,))
    html = renderer.html(view)
    document = html5lib.parse(html, namespaceHTMLElements=False)
    paragraph = next(p for p in document.iter("p") if p.get("class") == "abstract")
    snippet = "".join(paragraph.itertext())
    assert snippet.startswith("…") and snippet.endswith("…")
    assert 200 <= len(snippet) <= 320
    assert "speculative decoding" in snippet
    marked = [s.text for s in paragraph.iter("strong")]
    assert marked == ["speculative decoding"]
    assert "speculative decoding makes inference fast" in " ".join(renderer.text(view).split())


def test_authors_are_cut_after_three(renderer: Renderer) -> None:
    many = one_card(authors=("A. One", "B. Two", "C. Three", "D. Four"))
    few = one_card(authors=("A. One", "B. Two"))
    for card, shown in ((many, "A. One, B. Two, C. Three et al."), (few, "A. One, B. Two")):
        view = replace(sample_view(1), papers=(card,))
        assert shown in renderer.html(view)
        assert shown in renderer.text(view)


def test_paper_links_fall_back_to_a_hugging_face_search(renderer: Renderer) -> None:
    for url in ("", "javascript:alert(1)"):
        card = one_card(arxiv_id=None, url=url, title="Sparse attention & you")
        view = replace(sample_view(1), papers=(card,))
        links = hrefs(renderer.html(view))
        assert "https://huggingface.co/papers?q=Sparse+attention+%26+you" in links
        assert "javascript:alert(1)" not in renderer.html(view)
    kept = one_card(arxiv_id=None, url="https://example.org/paper")
    assert "https://example.org/paper" in hrefs(
        renderer.html(replace(sample_view(1), papers=(kept,)))
    )


def test_papers_are_grouped_by_topic_best_topic_first(renderer: Renderer) -> None:
    cards = sample_view(30).papers
    agents = [c for c in cards if c.topic_label == "LLM agents"][:2]
    multimodal = [c for c in cards if c.topic_label == "Multimodal models"][:2]
    view = replace(sample_view(1), papers=(multimodal[0], agents[0], agents[1], multimodal[1]))
    html = renderer.html(view)
    document = html5lib.parse(html, namespaceHTMLElements=False)
    headings = [p.text for p in document.iter("p") if p.get("class") == "group-label"]
    assert headings == ["Multimodal models", "LLM agents"]
    titles = [a.text for a in document.iter("a") if a.get("class") == "title-link"]
    assert titles == [multimodal[0].title, multimodal[1].title, agents[0].title, agents[1].title]

    single = replace(view, topics=("LLM agents",), papers=tuple(agents))
    assert 'class="group-label"' not in renderer.html(single)


def test_header_shows_date_count_topics_and_footer_the_why(renderer: Renderer) -> None:
    view = sample_view(7)
    for part in (renderer.html(view), renderer.text(view)):
        flat = " ".join(re.sub(r"<[^>]+>", " ", part).split())
        assert "Sunday, 22 November 2026" in flat
        assert "7 new papers on LLM agents, Multimodal models, Efficient inference" in flat
        assert "subscribed to new papers on: LLM agents, Multimodal models" in flat
        assert "digest topics" not in flat
        assert "manage your subscription" in flat or "Topics, schedule, pause" in flat
        assert "1 Example Street" in flat
    weekly = replace(view, period="2026-W47")
    assert "Week 47, from 16 November 2026" in renderer.text(weekly)


# --- subject ---


def test_subject_is_short_and_specific(renderer: Renderer) -> None:
    view = sample_view(7)
    subject = renderer.subject(view)
    assert subject.startswith("7 papers: LLM agents")
    assert len(subject) <= 90
    assert " — " in subject
    best = view.papers[0].title
    assert best.startswith(subject.split(" — ", 1)[1].rstrip("…"))


def test_subject_variants(renderer: Renderer) -> None:
    one = sample_view(1, topics=("LLM agents",))
    assert renderer.subject(one).startswith("1 paper: LLM agents — ")
    many_topics = tuple(f"topic number {i}" for i in range(8))
    cards = tuple(
        replace(card, topic_label=many_topics[i % 8])
        for i, card in enumerate(sample_view(8).papers)
    )
    crowded = replace(sample_view(8), topics=many_topics, papers=cards)
    subject = renderer.subject(crowded)
    assert re.match(r"8 papers: topic number 0, topic number 1.* \+\d more", subject), subject
    assert len(subject) <= 90
    empty = replace(one, papers=())
    assert renderer.subject(empty) == "No new papers this time: LLM agents"


# --- golden file ---


def test_golden_digest(renderer: Renderer) -> None:
    """The whole message for one digest, byte for byte.

    After an intended change, regenerate with DIGEST_REGENERATE_GOLDEN=1 and
    review the diff of tests/data/golden/ before committing.
    """
    view = sample_view(5)
    # and a digest with what is optional left out: a card without authors, abstract,
    # links or vote links; no view-in-browser link; no postal address
    bare = replace(one_card(), authors=(), abstract="", arxiv_id=None, on_hf=False, code_url=None)
    bare = replace(bare, more_url=None, less_url=None)
    sparse = replace(sample_view(1, topics=("LLM agents",)), papers=(bare,), view_url=None)
    plain = Renderer(Settings(sender=replace(SETTINGS.sender, postal_address="")))
    outputs = {
        "digest.html": renderer.html(view).encode(),
        "digest.txt": renderer.text(view).encode(),
        "digest.eml": renderer.message_bytes(view),
        "sparse.txt": plain.text(sparse).encode(),
    }
    if REGENERATE:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for name, content in outputs.items():
            (GOLDEN / name).write_bytes(content)
    for name, content in outputs.items():
        expected = (GOLDEN / name).read_bytes()
        assert content == expected, f"{name} changed; see test_golden_digest's docstring"


def test_view_with_digest_view_type(renderer: Renderer) -> None:
    """The contract's signatures: every public method takes a DigestView."""
    view: DigestView = sample_view(2)
    assert isinstance(renderer.message_bytes(view), bytes)
    assert isinstance(renderer.subject(view), str)


def test_cached_paper_cards_render_like_fresh_ones(renderer: Renderer) -> None:
    """Cards are cached per paper across digests; position and score must not leak."""
    first = sample_view(6)
    renderer.message_bytes(first)
    reordered = tuple(replace(card, score=-card.score) for card in reversed(first.papers))
    second = replace(first, topics=("LLM agents",), papers=reordered)
    fresh = Renderer(SETTINGS)
    assert renderer.message_bytes(second) == fresh.message_bytes(second)
    assert renderer.text(second) == fresh.text(second)


def test_a_card_seen_at_many_positions_is_not_kept_once_per_position() -> None:
    """The renderer of a long-running `digest run` keeps its card cache between runs:
    a card that lands at every position of the digests it is in must cost its body
    once, not once per position (up to max_papers of them)."""
    renderer = Renderer(SETTINGS)
    view = sample_view(20)
    renderer.html(view)  # every card cached, at its first position
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        papers = list(view.papers)
        for shift in range(1, len(papers)):  # each card at each of the 20 positions
            renderer.html(replace(view, papers=tuple(papers[shift:] + papers[:shift])))
        gc.collect()
        grown = sum(
            stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(before, "filename")
        )
    finally:
        tracemalloc.stop()
    # 19 more positions of 20 cards: a numbered title is a few hundred bytes kept per
    # position; a whole card (authors, snippet, links) is several KB
    positions = 19 * len(papers)
    assert grown < positions * 600, (grown, positions)


def test_cards_link_the_pdf_the_hugging_face_page_and_the_code_where_known(
    renderer: Renderer,
) -> None:
    view = sample_view(2)
    first, second = view.papers
    known = replace(first, arxiv_id="2606.12730", on_hf=True, code_url="https://github.com/a/b")
    hostile = replace(second, arxiv_id=None, on_hf=True, code_url="javascript:alert(1)")
    html = renderer.html(replace(view, papers=(known, hostile)))
    text = renderer.text(replace(view, papers=(known, hostile)))
    for part in (html, text):
        assert "https://arxiv.org/pdf/2606.12730" in part
        assert "https://huggingface.co/papers/2606.12730" in part
        assert "https://github.com/a/b" in part
        assert "javascript:" not in part  # a link we cannot send safely is left out
    # a paper without an arXiv id has no PDF or Hugging Face page to link
    assert text.count("PDF: ") == 1 and text.count("Hugging Face: ") == 1


# --- the HTML page in ASCII ---


def test_the_page_is_ascii_and_reads_as_the_characters(renderer: Renderer) -> None:
    """Everything outside ASCII (a title's letters, the template's arrows and dots)
    is written as a character reference while the page renders, so the 7bit HTML part
    is the page as it is; a parser reads the same characters."""
    card = one_card(title="Schrödinger’s Diffusion — naïve 𝔼-steps", authors=("Zoë Ångström",))
    view = replace(sample_view(2), papers=(card, *sample_view(2).papers[1:]))
    page = renderer.html(view)
    assert page.isascii()
    document = html5lib.parse(page, namespaceHTMLElements=False)
    titles = [a.text for a in document.iter("a") if a.get("class") == "title-link"]
    assert titles[0] == "Schrödinger’s Diffusion — naïve 𝔼-steps"
    assert "Zoë Ångström" in "".join(document.find("body").itertext())
    assert "Read more →" in "".join(document.find("body").itertext())
    assert "Zoë Ångström" in renderer.text(view)  # the text part keeps its characters
    message = parse(renderer.message_bytes(view))
    assert parts(message)[1]["Content-Transfer-Encoding"] == "7bit"


def test_a_c1_control_in_a_card_is_left_for_the_base64_part(renderer: Renderer) -> None:
    """HTML reads &#128; as "€" (Windows-1252), not the control: a value holding one is
    left as it is, and its message's HTML part goes in base64 with the page unchanged.
    (A title with one is refused: it reaches the Subject.)"""
    card = one_card(authors=("Odd\x80name",))
    view = replace(sample_view(1), papers=(card,))
    page = renderer.html(view)
    assert "\x80" in page and "&#128;" not in page
    html = parts(parse(renderer.message_bytes(view)))[1]
    assert html["Content-Transfer-Encoding"] == "base64"
    assert body(html) == page


def test_a_template_with_an_expression_in_a_script_is_refused(tmp_path: Path) -> None:
    """Its output would be written with character references inside <script> (or
    <style>, where CSS inlining already refuses expressions), which are read as
    written, and the all-ASCII page would go as 7bit with them: refused when the
    templates load, with what to change."""
    import shutil

    from digest.errors import ConfigError
    from digest.resources import templates_dir

    folder = tmp_path / "templates"
    shutil.copytree(templates_dir(), folder)
    page = folder / "digest.html.j2"
    script = "<script>var from = {{ m.sender_name }};</script></body>"
    page.write_text(page.read_text().replace("</body>", script))
    with pytest.raises(ConfigError, match=r"digest.html.j2: an expression inside <script>"):
        Renderer(SETTINGS, templates=folder).html(sample_view(1))
    Renderer(SETTINGS, templates=templates_dir()).html(sample_view(1))  # the shipped ones load
