"""Building the message for a claimed digest: digest row → `DigestView` → wire bytes.

`message_builder` is the `Build` the delivery loop calls for each claimed
digest. Underneath, a planned digest becomes a `DigestView`, the plain value
`digest.email.render` turns into an email: this reads the digest row (or an
unsaved plan, for previews), its papers and the subscriber, and builds paper
cards and the signed links every email carries. Everything that changes per
send attempt stays out, so the same row always gives the same view and
therefore the same message.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple
from urllib.parse import quote_plus

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from digest.config import Settings
from digest.email.render import Renderer
from digest.errors import BadInput
from digest.links import VOTE_PATHS, Signer, VoteSigner
from digest.outbox.types import Build, ClaimedDigest
from digest.planner import PlannedDigest
from digest.store.reads import chunks, latest_upvotes
from digest.store.schema import Digest, DigestItem, Explanation, Paper, Subscriber, Topic
from digest.values import DigestView, MatchedTerm, PaperCard

__all__ = [
    "MessageBuilder",
    "ViewCache",
    "message_builder",
    "paper_url",
    "view_for_digest",
    "view_for_plan",
    "views_for_digests",
]


def paper_url(arxiv_id: str | None, title: str) -> str:
    """The arXiv abstract page when the id is known, else a Hugging Face papers search."""
    if arxiv_id:
        return f"https://arxiv.org/abs/{arxiv_id}"
    return f"https://huggingface.co/papers?q={quote_plus(title)}"


def view_for_digest(
    session: Session, digest_id: int, settings: Settings, secret: bytes
) -> DigestView:
    """The view of a recorded digest (for delivery and view-in-browser)."""
    views = views_for_digests(session, [digest_id], settings, secret)
    if digest_id not in views:
        raise BadInput(f"no digest with id {digest_id}")
    return views[digest_id]


@dataclass
class ViewCache:
    """What the batches of one delivery run share: papers, their upvotes, decoded matches.

    The digests of one planning pass share a few dozen papers, and the same
    paper matched by the same topic has the same explanation: loaded and
    decoded once per run instead of once per batch (or per item), which left
    loading rows and parsing JSON as the largest part of building a message.
    Papers do not change while a run sends; a new run starts a new cache.
    """

    papers: dict[int, _PaperFields] = field(default_factory=dict)
    upvotes: dict[datetime, dict[int, int | None]] = field(default_factory=dict)
    # explanation id -> (the matched terms, the "why" line)
    matched: dict[int, tuple[tuple[MatchedTerm, ...], str]] = field(default_factory=dict)

    def load_matches(self, session: Session, ids: AbstractSet[int | None]) -> None:
        """Read and decode the explanations among `ids` not known yet."""
        known = {i for i in ids if i is not None}
        if len(self.matched) + len(known - self.matched.keys()) > MATCHED_CACHE_SIZE:
            self.matched.clear()  # (a batch's own are all read again below)
        wanted = sorted(known - self.matched.keys())
        for chunk in chunks(wanted):
            for explanation_id, raw in session.connection().execute(
                select(Explanation.id, cast(Explanation.body, Text)).where(
                    Explanation.id.in_(chunk)
                )
            ):
                decoded = json.loads(raw) or {}
                self.matched[explanation_id] = (
                    tuple(MatchedTerm.from_json(m) for m in decoded.get("matched", ())),
                    why_line(decoded.get("parts") or {}),
                )

    def matches(self, explanation_id: int | None) -> tuple[tuple[MatchedTerm, ...], str]:
        """(the matched terms, the "why" line) of a loaded explanation; none without one."""
        if explanation_id is None:
            return (), ""
        return self.matched.get(explanation_id, ((), ""))


def why_line(parts: Mapping[str, float]) -> str:
    """Why a paper is there when its words alone do not say it, for the email: "related
    in meaning" when it got in on meaning with few of the topic's words, "like 2 papers
    you liked" when the reader's votes lifted it ("" otherwise)."""
    said = []
    if parts.get("related"):
        said.append("related in meaning")
    liked = int(parts.get("liked", 0))
    if liked > 0 and parts.get("votes", 0) > 0:
        said.append(f"like {liked} paper{'s' if liked != 1 else ''} you liked")
    return "; ".join(said)


MATCHED_CACHE_SIZE = 50_000
"""Distinct explanations kept decoded (a pass has about papers × topics of them)."""


def views_for_digests(
    session: Session,
    digest_ids: Sequence[int],
    settings: Settings,
    secret: bytes,
    *,
    cache: ViewCache | None = None,
) -> dict[int, DigestView]:
    """The views of recorded digests, loaded together (ids not found are left out).

    A delivery batch is hundreds of digests that share a few dozen papers:
    a handful of queries for the batch (digests with their subscribers,
    topics, items; papers and upvotes only where `cache` lacks them) instead
    of several per digest, which made loading cost more than rendering and
    sending together.
    """
    cache = cache if cache is not None else ViewCache()
    ids = sorted(set(digest_ids))
    heads = [
        row
        for chunk in chunks(ids)
        for row in session.connection().execute(
            select(
                Digest.id,
                Digest.period,
                Digest.planned_at,
                Digest.message_id,
                Subscriber.id,
                Subscriber.email,
            )
            .join(Subscriber, Subscriber.id == Digest.subscriber_id)
            .where(Digest.id.in_(chunk))
        )
    ]
    topics = _topic_labels(session, {row[4] for row in heads})
    # plain tuples, not ORM objects or rows read by name: a batch has thousands of items
    # over a few dozen papers; these reads go through the session's connection (Core),
    # as the ORM's handling of each row is no use for plain columns
    items: dict[int, list[tuple[int, str, float, int | None]]] = {}
    for chunk in chunks(ids):
        for digest_id, paper_id, label, score, explanation_id in session.connection().execute(
            select(
                DigestItem.digest_id,
                DigestItem.paper_id,
                DigestItem.topic_label,
                DigestItem.score,
                DigestItem.explanation_id,
            )
            .where(DigestItem.digest_id.in_(chunk))
            .order_by(DigestItem.digest_id, DigestItem.rank)
        ):
            listed = items.get(digest_id)
            if listed is None:
                listed = items[digest_id] = []
            listed.append((paper_id, label, score, explanation_id))
    # decoded once per distinct explanation (see ViewCache)
    cache.load_matches(session, {item[3] for listed in items.values() for item in listed})
    papers = cache.papers
    wanted = {item[0] for listed in items.values() for item in listed}
    papers.update(_papers(session, wanted - papers.keys()))
    times = {row[2] for row in heads}  # a planning pass shares one time
    for planned_at in times:
        known = cache.upvotes.setdefault(planned_at, {})
        in_pass = (
            wanted
            if len(times) == 1
            else {
                item[0] for row in heads if row[2] == planned_at for item in items.get(row[0], ())
            }
        )
        # a paper no dump lists by then is absent from latest_upvotes: remember it as None
        missing = in_pass - known.keys()
        if missing:
            found = latest_upvotes(session, missing, as_of=planned_at)
            known.update({paper_id: found.get(paper_id) for paper_id in missing})
    views: dict[int, DigestView] = {}
    signer = Signer(secret)
    base = settings.web.base_url.rstrip("/")
    more_base, less_base = f"{base}/{VOTE_PATHS['more']}/", f"{base}/{VOTE_PATHS['less']}/"
    for digest_id, period, planned_at, message_id, subscriber_id, email in heads:
        # dated by the digest's issue time, so a re-sent message carries the same links
        votes = VoteSigner(signer, digest_id, email, issued=planned_at)
        upvotes = cache.upvotes[planned_at]
        cards: list[PaperCard] = []
        for paper_id, label, score, explanation_id in items.get(digest_id, ()):
            more, less = votes.tokens(paper_id)
            cards.append(
                _card(
                    papers[paper_id],
                    label,
                    score,
                    upvotes.get(paper_id),
                    cache.matches(explanation_id),
                    (more_base + more, less_base + less),
                )
            )
        views[digest_id] = _view(
            subscriber_id,
            email,
            topics.get(subscriber_id, ()),
            period=period,
            issued_at=planned_at,
            message_id=message_id,
            cards=tuple(cards),
            settings=settings,
            signer=signer,
            digest_id=digest_id,
        )
    return views


def view_for_plan(
    session: Session, plan: PlannedDigest, settings: Settings, secret: bytes
) -> DigestView:
    """The view of a plan not recorded (preview and dry runs). A recording pass lets its
    plans' picks go once written: the view of a recorded digest is `view_for_digest`'s."""
    email = session.scalars(
        select(Subscriber.email).where(Subscriber.id == plan.subscriber_id)
    ).one()
    ids = [pick.paper_id for pick in plan.picks]
    papers = _papers(session, ids)
    upvotes = latest_upvotes(session, ids, as_of=plan.planned_at)
    signer = Signer(secret)
    cards = tuple(
        _card(
            papers[pick.paper_id],
            plan.topic_labels.get(pick.topic_id, ""),
            pick.score,
            upvotes.get(pick.paper_id),
            (pick.matched, why_line(pick.parts)),
            (None, None),  # a plan not recorded has no digest for vote links to name
        )
        for pick in sorted(plan.picks, key=lambda p: p.rank)
    )
    return _view(
        plan.subscriber_id,
        email,
        _topic_labels(session, [plan.subscriber_id]).get(plan.subscriber_id, ()),
        period=plan.period,
        issued_at=plan.planned_at,
        message_id=plan.message_id,
        cards=cards,
        settings=settings,
        signer=signer,
        digest_id=plan.digest_id,
    )


def message_builder(settings: Settings, secret: bytes, renderer: Renderer | None = None) -> Build:
    """The `build` a delivery run takes: a claimed digest → the bytes for the wire.

    Builds the Renderer once (templates loaded, CSS inlined) for the whole run,
    and loads each claimed batch's views together (`MessageBuilder.prepare`).
    """
    return MessageBuilder(
        settings, secret, renderer if renderer is not None else Renderer(settings)
    )


class MessageBuilder:
    """The production `Build`: views loaded a batch at a time, rendered one by one.

    The delivery loop calls `prepare` with a claimed batch before building
    its messages; a digest it did not prepare (a caller that builds one by
    one) is loaded on its own.
    """

    def __init__(self, settings: Settings, secret: bytes, renderer: Renderer) -> None:
        self.settings = settings
        self.secret = secret
        self.renderer = renderer
        self._views: dict[int, DigestView] = {}
        self._cache = ViewCache()

    def prepare(self, session: Session, digests: Sequence[ClaimedDigest]) -> None:
        self._views = views_for_digests(
            session,
            [digest.id for digest in digests],
            self.settings,
            self.secret,
            cache=self._cache,
        )

    def __call__(self, session: Session, digest: ClaimedDigest) -> bytes:
        view = self._views.pop(digest.id, None)
        if view is None:
            view = view_for_digest(session, digest.id, self.settings, self.secret)
        return self.renderer.message_bytes(view)


def _topic_labels(session: Session, subscriber_ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
    """Per subscriber, their topics as the email names them (label, else query), in order."""
    labels: dict[int, list[str]] = {}
    for chunk in chunks(sorted(set(subscriber_ids))):
        for subscriber_id, label, query in session.connection().execute(
            select(Topic.subscriber_id, Topic.label, Topic.query)
            .where(Topic.subscriber_id.in_(chunk))
            .order_by(Topic.id)
        ):
            labels.setdefault(subscriber_id, []).append(label or query)
    return {subscriber_id: tuple(names) for subscriber_id, names in labels.items()}


class _PaperFields(NamedTuple):
    """What a card shows of a paper whatever the digest, worked out once per paper (the
    URL, and a Hugging Face search when there is no arXiv id, is the same every time)."""

    title: str
    url: str
    abstract: str
    authors: tuple[str, ...]
    arxiv_id: str | None
    code_url: str | None
    on_hf: bool


def _papers(session: Session, paper_ids: Iterable[int]) -> dict[int, _PaperFields]:
    """What a paper card shows of each paper, by id."""
    return {
        paper.id: _PaperFields(
            title=paper.title,
            url=paper_url(paper.arxiv_id, paper.title),
            abstract=paper.abstract or "",
            authors=tuple(str(a) for a in paper.authors or ()),
            arxiv_id=paper.arxiv_id,
            code_url=paper.code_url or None,
            on_hf=bool(paper.hf_id),
        )
        for chunk in chunks(sorted(set(paper_ids)))
        for paper in session.execute(
            select(
                Paper.id,
                Paper.title,
                Paper.abstract,
                Paper.authors,
                Paper.arxiv_id,
                # only what the card links to, not the whole stored source object
                Paper.extra[("hf", "paper", "githubRepo")].as_string().label("code_url"),
                Paper.extra[("hf", "paper", "id")].as_string().label("hf_id"),
            ).where(Paper.id.in_(chunk))
        )
    }


def _card(
    paper: _PaperFields,
    topic_label: str,
    score: float,
    upvotes: int | None,
    explained: tuple[tuple[MatchedTerm, ...], str],
    links: tuple[str | None, str | None],
) -> PaperCard:
    """One paper's card in one digest (positional: called for every item of a batch)."""
    matched, why = explained
    return PaperCard(
        title=paper.title,
        url=paper.url,
        abstract=paper.abstract,
        authors=paper.authors,
        topic_label=topic_label,
        score=score,
        arxiv_id=paper.arxiv_id,
        upvotes=upvotes,
        matched=matched,
        why=why,
        more_url=links[0],
        less_url=links[1],
        code_url=paper.code_url,
        on_hf=paper.on_hf,
    )


def _view(
    subscriber_id: int,
    email: str,
    topics: tuple[str, ...],
    *,
    period: str,
    issued_at: datetime,
    message_id: str,
    cards: tuple[PaperCard, ...],
    settings: Settings,
    signer: Signer,
    digest_id: int | None,
) -> DigestView:
    base = settings.web.base_url.rstrip("/")
    # dated by the digest's issue time, so a re-sent message carries the same links
    unsubscribe = signer.token("unsubscribe", subscriber_id, email, issued=issued_at)
    manage = signer.token("manage", subscriber_id, email, issued=issued_at)
    view_url = None
    if digest_id is not None:
        view_url = f"{base}/d/{signer.token('view', digest_id, email, issued=issued_at)}"
    mailto = settings.sender.unsubscribe_mailto or settings.sender.address
    return DigestView(
        email=email,
        period=period,
        issued_at=issued_at,
        message_id=message_id,
        topics=topics,
        papers=cards,
        unsubscribe_url=f"{base}/u/{unsubscribe}",
        manage_url=f"{base}/m/{manage}",
        view_url=view_url,
        unsubscribe_mailto=f"mailto:{mailto}?subject=unsubscribe",
    )
