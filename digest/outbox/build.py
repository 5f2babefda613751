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

from datetime import datetime
from urllib.parse import quote_plus

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from digest.config import Settings
from digest.email.render import Renderer
from digest.errors import BadInput
from digest.links import make_token
from digest.outbox.types import Build, ClaimedDigest
from digest.planner import PlannedDigest
from digest.store.reads import latest_upvotes
from digest.store.schema import Digest, DigestItem, Paper, Subscriber
from digest.values import DigestView, MatchedTerm, PaperCard

__all__ = ["message_builder", "paper_url", "view_for_digest", "view_for_plan"]


def paper_url(arxiv_id: str | None, title: str) -> str:
    """The arXiv abstract page when the id is known, else a Hugging Face papers search."""
    if arxiv_id:
        return f"https://arxiv.org/abs/{arxiv_id}"
    return f"https://huggingface.co/papers?q={quote_plus(title)}"


def view_for_digest(
    session: Session, digest_id: int, settings: Settings, secret: bytes
) -> DigestView:
    """The view of a recorded digest (for delivery and view-in-browser)."""
    digest = session.scalars(
        select(Digest)
        .where(Digest.id == digest_id)
        .options(
            selectinload(Digest.items).selectinload(DigestItem.paper),
            selectinload(Digest.subscriber).selectinload(Subscriber.topics),
        )
    ).one_or_none()
    if digest is None:
        raise BadInput(f"no digest with id {digest_id}")
    items = sorted(digest.items, key=lambda item: item.rank)
    upvotes = latest_upvotes(session, [item.paper_id for item in items], as_of=digest.planned_at)
    cards = tuple(
        _card(
            item.paper,
            topic_label=item.topic_label,
            score=item.score,
            upvotes=upvotes.get(item.paper_id),
            matched=tuple(
                MatchedTerm.from_json(m) for m in (item.explanation or {}).get("matched", ())
            ),
        )
        for item in items
    )
    return _view(
        digest.subscriber,
        period=digest.period,
        issued_at=digest.planned_at,
        message_id=digest.message_id,
        cards=cards,
        settings=settings,
        secret=secret,
        digest_id=digest.id,
    )


def view_for_plan(
    session: Session, plan: PlannedDigest, settings: Settings, secret: bytes
) -> DigestView:
    """The view of a plan, recorded or not (for preview and dry runs)."""
    subscriber = session.scalars(
        select(Subscriber)
        .where(Subscriber.id == plan.subscriber_id)
        .options(selectinload(Subscriber.topics))
    ).one()
    ids = [pick.paper_id for pick in plan.picks]
    papers = {p.id: p for p in session.scalars(select(Paper).where(Paper.id.in_(ids)))}
    upvotes = latest_upvotes(session, ids, as_of=plan.planned_at)
    cards = tuple(
        _card(
            papers[pick.paper_id],
            topic_label=plan.topic_labels.get(pick.topic_id, ""),
            score=pick.score,
            upvotes=upvotes.get(pick.paper_id),
            matched=pick.matched,
        )
        for pick in sorted(plan.picks, key=lambda p: p.rank)
    )
    return _view(
        subscriber,
        period=plan.period,
        issued_at=plan.planned_at,
        message_id=plan.message_id,
        cards=cards,
        settings=settings,
        secret=secret,
        digest_id=plan.digest_id,
    )


def message_builder(settings: Settings, secret: bytes, renderer: Renderer | None = None) -> Build:
    """The `build` a delivery run takes: a claimed digest → the bytes for the wire.

    Builds the Renderer once (templates loaded, CSS inlined) for the whole run.
    """
    chosen = renderer if renderer is not None else Renderer(settings)

    def build(session: Session, digest: ClaimedDigest) -> bytes:
        return chosen.message_bytes(view_for_digest(session, digest.id, settings, secret))

    return build


def _card(
    paper: Paper,
    *,
    topic_label: str,
    score: float,
    upvotes: int | None,
    matched: tuple[MatchedTerm, ...],
) -> PaperCard:
    return PaperCard(
        title=paper.title,
        url=paper_url(paper.arxiv_id, paper.title),
        abstract=paper.abstract or "",
        authors=tuple(str(a) for a in paper.authors or ()),
        topic_label=topic_label,
        score=score,
        arxiv_id=paper.arxiv_id,
        upvotes=upvotes,
        matched=matched,
    )


def _view(
    subscriber: Subscriber,
    *,
    period: str,
    issued_at: datetime,
    message_id: str,
    cards: tuple[PaperCard, ...],
    settings: Settings,
    secret: bytes,
    digest_id: int | None,
) -> DigestView:
    base = settings.web.base_url.rstrip("/")
    email = subscriber.email
    unsubscribe = make_token(secret, "unsubscribe", subscriber.id, email)
    manage = make_token(secret, "manage", subscriber.id, email)
    view_url = None
    if digest_id is not None:
        view_url = f"{base}/d/{make_token(secret, 'view', digest_id, email)}"
    mailto = settings.sender.unsubscribe_mailto or settings.sender.address
    return DigestView(
        email=email,
        period=period,
        issued_at=issued_at,
        message_id=message_id,
        topics=tuple(t.label or t.query for t in subscriber.topics),
        papers=cards,
        unsubscribe_url=f"{base}/u/{unsubscribe}",
        manage_url=f"{base}/m/{manage}",
        view_url=view_url,
        unsubscribe_mailto=f"mailto:{mailto}?subject=unsubscribe",
    )
