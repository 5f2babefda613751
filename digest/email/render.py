"""A `DigestView` → the digest email: subject, HTML and text parts, the message bytes.

Pure: no database, no clock, no network. The same view always gives the same
bytes (the MIME boundary derives from the Message-ID), so a retried delivery
sends exactly what the first attempt would have.

Speed is designed in, because a run renders one message per subscriber:

- CSS is inlined **once**, when the HTML templates load
  (`digest.email.templates`). Per email, only the Jinja render runs.
- A card's texts, its HTML and its lines in the text part are worked out once
  per run (per position for its numbered title). The text part is written in
  Python from those lines, already quoted-printable (`_text_pieces`).
- The bytes on the wire are written by `digest.email.mime`, not by
  `EmailMessage.as_bytes()`.

Who calls what: delivery sends `message_bytes(view)`; `digest preview` writes
`html(view)` (a browser), `text(view)` (stdout) or `message_bytes(view)` (an
.eml file); view-in-browser serves `html(view)`. The tests check that the bytes
parse to the same headers and bodies as the stdlib `EmailMessage` would write.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from urllib.parse import quote_plus

from jinja2 import Template, TemplateNotFound
from markupsafe import Markup

from digest.config import Settings
from digest.email import mime
from digest.email.snippet import Segment, author_line, shorten, snippet, wrap
from digest.email.templates import html_environment
from digest.errors import BadInput, ConfigError
from digest.resources import templates_dir
from digest.values import DigestView, PaperCard

SUBJECT_MAX = 90
SUBJECT_TOPICS_MAX = 44
PREHEADER_MAX = 140
# Invisible padding after the preheader, so clients do not fill the inbox
# preview with the start of the body after it (zero-width non-joiner + CGJ).
PREHEADER_PAD = "\u034f\u200c\u00a0" * 40
HTML_TEMPLATE = "digest.html.j2"
HTML_PARTIALS = ("partials/header.html.j2", "partials/paper.html.j2", "partials/footer.html.j2")
CARD_CACHE_SIZE = 4096
EMPTY_MARKUP = Markup("")

_ARXIV_ID = re.compile(r"\d{4}\.\d{4,5}(v\d+)?|[a-z-]+(\.[A-Z]{2})?/\d{7}(v\d+)?")
_WEEK = re.compile(r"(\d{4})-W(\d{2})")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


# --- what the templates see ---


@dataclass(frozen=True, slots=True)
class CardTexts:
    """What a paper card shows, independent of the digest it is in (so it is cached)."""

    title: str
    url: str
    authors: str
    topic: str
    upvotes: str  # "12 upvotes", or "" when unknown
    why: str  # "related in meaning", "like 2 papers you liked", both, or ""
    links: tuple[tuple[str, str], ...]  # (label, URL) next to "Read more": PDF, HF, code
    snippet: tuple[Segment, ...]
    snippet_text: str
    text_meta: str
    body_html: Markup = EMPTY_MARKUP  # the card below its title, rendered by `paper_body`
    # Filled as digests use the card, for every digest after the first: its numbered
    # title (`paper_title`) by number, and in the text part its numbered title by
    # number as written (" 1. ", padded to the digest's width: up to three entries a
    # number) and the lines below it by indent width. None depends on the digest,
    # only on where the card stands in it. Only the titles are kept per number: a
    # copy of the whole card per position would multiply the cache's memory by the
    # positions a card takes (a few hundred bytes a title, up to max_papers of them).
    titles: dict[int, Markup] = field(default_factory=dict, compare=False, repr=False)
    text_titles: dict[str, TextPiece] = field(default_factory=dict, compare=False, repr=False)
    text_bodies: dict[int, TextPiece] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class CardModel:
    """One paper in one digest, every string ready for the templates."""

    number: int
    paper: CardTexts
    text_title: TextPiece  # the text part's numbered title (`CardTexts.text_titles`)
    text_body: TextPiece  # and its lines below the title (`CardTexts.text_bodies`)
    # the signed vote links: per digest, so outside the cached card texts
    more_url: str | None = None
    less_url: str | None = None
    text_votes: str = ""  # the text part's lines for them, indented, each ending in "\n"
    title_html: Markup = EMPTY_MARKUP  # the numbered title (`CardTexts.titles`)


@dataclass(frozen=True, slots=True)
class TextPiece:
    """Whole lines of the text part, each ending in "\n", and their quoted-printable
    form: worked out once for the lines of a card that every digest shares."""

    text: str
    wire: bytes

    @classmethod
    def of(cls, text: str) -> TextPiece:
        return cls(text, mime.quoted_printable(text))


@dataclass(frozen=True, slots=True)
class GroupModel:
    label: str | None  # None when the subscriber has a single topic
    papers: list[CardModel]


@dataclass(frozen=True, slots=True)
class DigestModel:
    subject: str
    preheader: str
    preheader_pad: str
    sender_name: str
    heading: str
    summary: str
    groups: list[GroupModel]
    email: str
    topics_text: str
    manage_url: str
    unsubscribe_url: str
    view_url: str | None
    postal: str


# --- template loading: CSS inlined once ---


# --- the renderer ---


class Renderer:
    """Renders digests for one configuration; build it once, render many views.

    Loading compiles the templates and inlines the CSS; raises ConfigError for
    broken templates and BadInput for sender settings that cannot go in a header.
    """

    def __init__(
        self, settings: Settings, *, templates: Path | None = None, inline_css: bool = True
    ) -> None:
        folder = templates if templates is not None else templates_dir()
        sender = settings.sender
        self.from_name = mime.header_text(sender.name, "sender.name")
        self.from_addr = mime.address(sender.address, "sender.address")
        self.postal = mime.header_text(sender.postal_address, "sender.postal_address")
        mailto_addr = mime.address(
            sender.unsubscribe_mailto or sender.address, "sender.unsubscribe_mailto"
        )
        self.default_mailto = f"mailto:{mailto_addr}?subject=unsubscribe"
        local, _, domain = self.from_addr.rpartition("@")
        label = re.sub(r"[^A-Za-z0-9-]+", "-", local).strip("-") or "digest"
        self.list_id = f"{label}.{domain}"
        self.hf_base_url = settings.sources.hf_base_url.rstrip("/")
        self._card_cache: dict[CardKey, CardTexts] = {}
        html_env = html_environment(folder, inline=inline_css)
        try:
            self._html: Template = html_env.get_template(HTML_TEMPLATE)
            for partial in HTML_PARTIALS:  # load (and inline) now, not on the first render
                html_env.get_template(partial)
            paper_module = html_env.get_template("partials/paper.html.j2").make_module()
        except TemplateNotFound as exc:
            raise ConfigError(f"template {exc.name} not found in {folder}") from None
        self._paper_body: Callable[[CardTexts], Markup] = paper_module.paper_body  # type: ignore[attr-defined]
        self._paper_title: Callable[[int, CardTexts], Markup] = paper_module.paper_title  # type: ignore[attr-defined]

    # -- public API --

    def subject(self, view: DigestView) -> str:
        """Short and specific: how many papers, on what, and the best one's title."""
        labels = _topics_in_order(view)
        for label in (*labels, *view.topics):
            mime.header_text(label, "a topic label")
        count = len(view.papers)
        topics = _topic_list(labels or list(view.topics), SUBJECT_TOPICS_MAX)
        if count == 0:
            return shorten(f"No new papers this time: {topics}", SUBJECT_MAX)
        head = f"{count} paper{'s' if count != 1 else ''}: {topics}"
        best = mime.header_text(view.papers[0].title, "the first paper's title")
        room = SUBJECT_MAX - len(head) - 3
        if room < 16:
            return shorten(head, SUBJECT_MAX)
        return f"{head} — {shorten(best, room)}"

    def html(self, view: DigestView) -> str:
        return _render(self._html, self._model(view))

    def text(self, view: DigestView) -> str:
        return "".join(
            piece if isinstance(piece, str) else piece.text
            for piece in _text_pieces(self._model(view))
        )

    def envelope(self, view: DigestView, subject: str | None = None) -> mime.Envelope:
        """The headers of `view`'s message, every value checked (BadInput if unsafe)."""
        unsubscribe = mime.url(view.unsubscribe_url, "unsubscribe_url")
        mailto = mime.mailto(view.unsubscribe_mailto or self.default_mailto, "unsubscribe_mailto")
        return mime.Envelope(
            from_name=self.from_name,
            from_addr=self.from_addr,
            to_addr=mime.address(view.email, "the recipient"),
            subject=mime.header_text(
                subject if subject is not None else self.subject(view), "Subject"
            ),
            date=mime.date_header(view.issued_at),
            message_id=mime.message_id(view.message_id),
            list_id_name=self.from_name,
            list_id=self.list_id,
            list_unsubscribe=f"<{unsubscribe}>, <{mailto}>",
        )

    def message_bytes(self, view: DigestView) -> bytes:
        """The exact bytes for the wire (CRLF line endings)."""
        model = self._model(view)
        text = b"".join(
            mime.quoted_printable(piece) if isinstance(piece, str) else piece.wire
            for piece in _text_pieces(model)
        )
        return mime.write_message(
            self.envelope(view, model.subject), text, _render(self._html, model)
        )

    # -- building the template model --

    def paper_url(self, card: PaperCard) -> str:
        """arXiv abs page when the id is known, else the card's URL, else a HF papers search."""
        if card.arxiv_id and _ARXIV_ID.fullmatch(card.arxiv_id):
            return f"https://arxiv.org/abs/{card.arxiv_id}"
        if card.url:
            try:
                return mime.url(card.url, "paper url")
            except BadInput:
                pass
        return f"{self.hf_base_url}/papers?q={quote_plus(' '.join(card.title.split()))}"

    def paper_links(self, card: PaperCard) -> tuple[tuple[str, str], ...]:
        """The other links a card offers, where known: the PDF (an arXiv id), the paper's
        Hugging Face page (listed there), its code (the source named a repository)."""
        links: list[tuple[str, str]] = []
        arxiv = card.arxiv_id if card.arxiv_id and _ARXIV_ID.fullmatch(card.arxiv_id) else None
        if arxiv:
            links.append(("PDF", f"https://arxiv.org/pdf/{arxiv}"))
            if card.on_hf:
                links.append(("Hugging Face", f"{self.hf_base_url}/papers/{arxiv}"))
        if card.code_url:
            # an http(s) URL only: a repository link we cannot put in an email safely
            # (another scheme, spaces, quotes) is left out, not rendered
            with suppress(BadInput):
                links.append(("Code", mime.url(card.code_url, "code url")))
        return tuple(links)

    def _texts(self, card: PaperCard) -> CardTexts:
        """The card's texts, from the cache when this paper (with these matches) was seen.

        One run renders the same few dozen papers into thousands of digests;
        the snippet and author line need computing once per paper and topic.
        """
        key = _card_key(card)
        texts = self._card_cache.get(key)
        if texts is None:
            segments = tuple(snippet(card.abstract, card.matched))
            upvotes = _upvotes(card.upvotes)
            topic = " ".join(card.topic_label.split())
            meta = f"Topic: {topic}"
            if card.why:
                meta += f" ({card.why})"
            texts = CardTexts(
                title=" ".join(card.title.split()),
                url=self.paper_url(card),
                authors=author_line(card.authors),
                topic=topic,
                upvotes=upvotes,
                why=card.why,
                links=self.paper_links(card),
                snippet=segments,
                snippet_text="".join(part for part, _ in segments),
                text_meta=f"{meta} · {upvotes}" if upvotes else meta,
            )
            texts = replace(texts, body_html=self._paper_body(texts))
            if len(self._card_cache) >= CARD_CACHE_SIZE:
                self._card_cache.clear()
            self._card_cache[key] = texts
        return texts

    def _text_title(self, texts: CardTexts, text_number: str) -> TextPiece:
        """The card's title in the text part, numbered: a blank line before it, and its
        lines after the first under a hanging indent as wide as the number."""
        piece = texts.text_titles.get(text_number)
        if piece is None:
            indent = " " * len(text_number)
            title = wrap(texts.title, indent=indent)[len(indent) :]
            piece = texts.text_titles[text_number] = TextPiece.of(f"\n{text_number}{title}\n")
        return piece

    def _text_body(self, texts: CardTexts, indent_width: int) -> TextPiece:
        """The card's lines below its title in the text part, wrapped at 72 columns."""
        piece = texts.text_bodies.get(indent_width)
        if piece is None:
            indent = " " * indent_width
            authors = wrap(texts.authors, indent=indent)  # "" when there are none
            snippet = wrap(texts.snippet_text, indent=indent)
            lines = [
                *([authors] if authors else []),
                wrap(texts.text_meta, indent=indent),
                *([snippet] if snippet else []),
                indent + texts.url,
                *(f"{indent}{label}: {href}" for label, href in texts.links),
            ]
            piece = texts.text_bodies[indent_width] = TextPiece.of(
                "".join(f"{line}\n" for line in lines)
            )
        return piece

    def _title(self, texts: CardTexts, number: int) -> Markup:
        html = texts.titles.get(number)
        if html is None:
            html = texts.titles[number] = self._paper_title(number, texts)
        return html

    def _model(self, view: DigestView) -> DigestModel:
        subject = self.subject(view)
        manage = mime.url(view.manage_url, "manage_url")
        unsubscribe = mime.url(view.unsubscribe_url, "unsubscribe_url")
        view_url = mime.url(view.view_url, "view_url") if view.view_url else None
        groups = _group(view)
        cards: list[GroupModel] = []
        number = 0
        width = len(str(len(view.papers)))
        for label, papers in groups:
            group_cards = []
            for card in papers:
                number += 1
                text_number = f"{number:>{width}}. "
                texts = self._texts(card)
                more = mime.url(card.more_url, "more_url") if card.more_url else None
                less = mime.url(card.less_url, "less_url") if card.less_url else None
                indent = " " * len(text_number)
                votes = (
                    f"{indent}More like this: {more}\n{indent}Less like this: {less}\n"
                    if more and less
                    else ""
                )
                group_cards.append(
                    CardModel(
                        number,
                        texts,
                        self._text_title(texts, text_number),
                        self._text_body(texts, len(text_number)),
                        more,
                        less,
                        votes,
                        self._title(texts, number),
                    )
                )
            cards.append(GroupModel(label, group_cards))
        topics_text = ", ".join(view.topics) if view.topics else "(no topics)"
        count = len(view.papers)
        summary = (
            f"{count} new paper{'s' if count != 1 else ''} on {topics_text}"
            if count
            else f"No new papers on {topics_text} this time."
        )
        return DigestModel(
            subject=subject,
            preheader=_preheader(view),
            preheader_pad=PREHEADER_PAD,
            sender_name=self.from_name,
            heading=_heading(view.period),
            summary=summary,
            groups=cards,
            email=view.email,
            topics_text=topics_text,
            manage_url=manage,
            unsubscribe_url=unsubscribe,
            view_url=view_url,
            postal=self.postal,
        )


# --- small pure helpers ---

CardKey = tuple[object, ...]


def _card_key(card: PaperCard) -> CardKey:
    """Everything a card shows; not the score, which differs between subscribers."""
    return (
        card.title,
        card.url,
        card.abstract,
        card.authors,
        card.topic_label,
        card.arxiv_id,
        card.upvotes,
        card.matched,
        card.why,
        card.code_url,
        card.on_hf,
    )


def _text_pieces(model: DigestModel) -> list[str | TextPiece]:
    """The text part: 72 columns, numbered papers, every link spelled out, so it reads
    well in mutt. Its pieces are whole lines: the cards' from the cache (`TextPiece`,
    encoded once per run), the digest's own as text.

    Written here, not by a template as the HTML is: a template gives back one string,
    which had to be encoded whole for every message, the largest single cost of
    writing one. Pieces of whole lines encode on their own to the same bytes, as
    quoted-printable is line by line.
    """
    head = f"{model.sender_name} - {model.heading}\n{wrap(model.summary)}\n"
    pieces: list[str | TextPiece] = [head]
    for group in model.groups:
        if group.label:
            pieces.append(f"\n{group.label}\n{'-' * len(group.label)}\n")
        for card in group.papers:
            pieces += (card.text_title, card.text_body)
            if card.text_votes:
                pieces.append(card.text_votes)
    lines = [
        "",
        "-- ",
        wrap(
            f"You get this email because {model.email} subscribed to new papers on: "
            f"{model.topics_text}."
        ),
        "",
        "Topics, schedule, pause, your votes:",
        f"               {model.manage_url}",
    ]
    if model.view_url:
        lines.append(f"View online:   {model.view_url}")
    lines.append(f"Unsubscribe:   {model.unsubscribe_url}")
    if model.postal:
        lines += ["", wrap(model.postal)]
    pieces.append("\n".join(lines).rstrip("\n") + "\n")
    return pieces


def _render(template: Template, model: DigestModel) -> str:
    """The template's output, ending in exactly one newline (as a MIME body does)."""
    return template.render(m=model).rstrip("\n") + "\n"


def _topics_in_order(view: DigestView) -> list[str]:
    """The topic labels of the papers, in order of each topic's best paper."""
    seen: dict[str, None] = {}
    for card in view.papers:
        seen.setdefault(card.topic_label, None)
    return list(seen)


def _group(view: DigestView) -> list[tuple[str | None, list[PaperCard]]]:
    """Papers by topic (best topic first) when the subscriber has several topics."""
    if len(view.topics) <= 1 and len(_topics_in_order(view)) <= 1:
        return [(None, list(view.papers))] if view.papers else []
    groups: dict[str, list[PaperCard]] = {}
    for card in view.papers:
        groups.setdefault(card.topic_label, []).append(card)
    return list(groups.items())


def _topic_list(labels: list[str], limit: int) -> str:
    """ "a, b +2 more", fitting in about `limit` characters."""
    if not labels:
        return "your topics"
    shown: list[str] = []
    for i, label in enumerate(labels):
        rest = len(labels) - i - 1
        candidate = ", ".join([*shown, label])
        suffix = f" +{rest} more" if rest else ""
        if len(candidate) + len(suffix) > limit and shown:
            return ", ".join(shown) + f" +{len(labels) - len(shown)} more"
        shown.append(label)
    text = ", ".join(shown)
    return text if len(text) <= limit or len(shown) > 1 else shorten(text, limit)


def _upvotes(upvotes: int | None) -> str:
    if upvotes is None or upvotes <= 0:
        return ""
    return f"{upvotes} upvote{'s' if upvotes != 1 else ''}"


def _preheader(view: DigestView) -> str:
    if not view.papers:
        return "No new papers matched your topics this time."
    titles = [" ".join(card.title.split()) for card in view.papers[:2]]
    text = " · ".join(titles)
    more = len(view.papers) - len(titles)
    if more > 0:
        text += f" and {more} more"
    return shorten(text, PREHEADER_MAX)


def _heading(period: str) -> str:
    """ "Sunday, 22 November 2026" for a daily period, "Week 47, from 16 November 2026"."""
    match = _WEEK.fullmatch(period)
    try:
        if match:
            monday = date.fromisocalendar(int(match[1]), int(match[2]), 1)
            return f"Week {int(match[2])}, from {_day_name(monday)}"
        day = date.fromisoformat(period)
    except ValueError:
        return period
    return f"{_DAYS[day.weekday()]}, {_day_name(day)}"


def _day_name(day: date) -> str:
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"
