"""The web app itself: `create_app`, the handlers of each route, the security headers.

What the routes are and why they work as they do: the package docstring (`digest.web`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import jinja2
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digest.config import Settings
from digest.email.render import Renderer
from digest.errors import BadInput, DeliveryError
from digest.health import read_health
from digest.links import (
    EPOCH,
    MAX_ROW_ID,
    VOTE_PATHS,
    Purpose,
    VoteLink,
    load_secret,
    make_token,
    token_row_id,
    verify_token,
    verify_vote_token,
    vote_token_ids,
)
from digest.mail import Mailer
from digest.outbox import view_for_digest
from digest.resources import templates_dir
from digest.store.database import Store
from digest.store.schema import Digest, DigestItem, Paper, Subscriber, Topic, Vote
from digest.subscribers import manage as subscriptions
from digest.subscribers import votes
from digest.subscribers.confirmation import send_confirmation
from digest.values import WEEKDAYS, zone_of
from digest.web.forms import small_form, timezone_names
from digest.web.subscribe import SubscribePages

Clock = Callable[[], datetime]
log = logging.getLogger(__name__)

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MAX_PAUSE_DAYS = 365

# Headers on every response (SecurityHeaders): tokens are in our URLs, so never leak them through
# Referer to the paper links of a digest, never let a cache or a search engine
# keep a page, and let nothing run but our own markup.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}

# Fixed notices after a successful change (the query string only picks one,
# so nothing a visitor types there reaches the page).
NOTICES = {
    "added": "Topic added.",
    "removed": "Topic removed.",
    "schedule": "Schedule saved.",
    "paused": "Digests paused.",
    "resumed": "Digests resumed.",
    "vote-removed": "Vote removed.",
    "votes-reset": "All votes removed.",
    "resubscribed": "You are subscribed again: digests start with the next one due.",
    "confirm-sent": (
        "We sent a confirmation link to this address: digests start again once you "
        "press the button behind it."
    ),
    "confirm-pending": (
        "This subscription is not confirmed yet: use the link in the confirmation email."
    ),
}


def utc_now() -> datetime:
    return datetime.now(UTC)


def page_environment() -> jinja2.Environment:
    """The Jinja2 environment of the web pages: autoescaped, strict about missing names."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir() / "web"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


class NotFound(Exception):
    """The token is not one of ours (or its subscriber is gone): the generic 404."""


class ChangeRejected(Exception):
    """A manage-page change was refused; `section` says which form shows `message`."""

    def __init__(self, section: str, message: str) -> None:
        super().__init__(message)
        self.section = section
        self.message = message


@dataclass
class WebApp:
    """What the request handlers share: settings, store, link secret, clock, templates."""

    settings: Settings
    store: Store
    secret: bytes
    clock: Clock
    pages: jinja2.Environment
    renderer: Renderer
    # how confirmation emails go out; None: the configured delivery backend
    mailer: Mailer | None = None

    # --- responses ---

    def page(self, template: str, http_status: int = 200, **context: Any) -> HTMLResponse:
        html = self.pages.get_template(template).render(
            sender_name=self.settings.sender.name,
            postal_address=self.settings.sender.postal_address,
            **context,
        )
        return HTMLResponse(html, status_code=http_status)

    def not_found(self) -> HTMLResponse:
        return self.page("not_found.html.j2", http_status=404)

    # --- token lookups (run inside a session) ---

    def subscriber_for(self, session: Session, purpose: Purpose, token: str) -> Subscriber:
        """The subscriber a token was made for, or NotFound; same work either way."""
        row_id = token_row_id(token)
        subscriber = session.get(Subscriber, row_id) if row_id is not None else None
        # Verify even when there is no row, so a miss costs what a hit costs.
        email = subscriber.email if subscriber is not None else ""
        valid = self.verify(purpose, token, row_id or 0, email)
        if not valid or subscriber is None:
            raise NotFound
        return subscriber

    def digest_for(self, session: Session, token: str) -> Digest:
        """The digest a view-in-browser token was made for, or NotFound."""
        row_id = token_row_id(token)
        found = (
            session.execute(
                select(Digest, Subscriber.email)
                .join(Subscriber, Subscriber.id == Digest.subscriber_id)
                .where(Digest.id == row_id)
            ).first()
            if row_id is not None
            else None
        )
        email = found[1] if found is not None else ""
        valid = self.verify("view", token, row_id or 0, email)
        if not valid or found is None:
            raise NotFound
        digest: Digest = found[0]
        return digest

    def vote_target_for(
        self, session: Session, link: VoteLink, token: str
    ) -> tuple[Subscriber, Paper, Topic]:
        """Whose vote a "more / less like this" token is, on which paper, for which topic;
        or NotFound.

        The MAC covers the digest, the paper, the vote and the address; beyond
        it, the paper must be an item of that digest (so a link only ever votes
        on what was sent in it) and the topic that brought it must still exist.
        """
        ids = vote_token_ids(token)
        found = (
            session.execute(
                select(Subscriber, DigestItem.topic_id)
                .join(Digest, Digest.subscriber_id == Subscriber.id)
                .outerjoin(
                    DigestItem,
                    (DigestItem.digest_id == Digest.id) & (DigestItem.paper_id == ids[1]),
                )
                .where(Digest.id == ids[0])
            ).first()
            if ids is not None
            else None
        )
        # Verify even when there is no row, so a miss costs what a hit costs.
        email = found[0].email if found is not None else ""
        valid = verify_vote_token(
            self.secret,
            link,
            token,
            email,
            now=self.clock(),
            max_age_days=self.settings.web.link_max_age_days,
        )
        if not valid or ids is None or found is None or found[1] is None:
            raise NotFound  # (found[1] is None: not an item of the digest, or its topic is gone)
        subscriber: Subscriber = found[0]
        topic = session.get(Topic, found[1])
        paper = session.get(Paper, ids[1])
        if topic is None or topic.subscriber_id != subscriber.id or paper is None:
            raise NotFound
        return subscriber, paper, topic

    def verify(self, purpose: Purpose, token: str, row_id: int, email: str) -> bool:
        max_age = self.settings.web.link_max_age_days
        now = self.clock()
        return verify_token(
            self.secret, purpose, token, row_id, email, now=now, max_age_days=max_age
        )

    def token(self, purpose: Purpose, subscriber: Subscriber, *, opened_with: str = "") -> str:
        """A token for a link on a page. `opened_with`: the token that opened the page; the
        new one is dated no later than it, so an old link never yields a newer one (which
        would get past the "Subscribe again" check, `check_resubscribe`)."""
        now = self.clock()
        issued = min(now.date(), issued_on(opened_with)) if opened_with else now
        return make_token(self.secret, purpose, subscriber.id, subscriber.email, issued=issued)

    # --- page contexts ---

    def manage_context(
        self, session: Session, subscriber: Subscriber, now: datetime, opened_with: str
    ) -> dict[str, Any]:
        paused = subscriber.paused_until is not None and subscriber.paused_until > now
        return {
            "email": subscriber.email,
            "status": subscriber.status,
            "topics": [
                {"id": topic.id, "query": topic.query, "label": topic.label}
                for topic in subscriber.topics
            ],
            "schedule": {
                "timezone": subscriber.timezone,
                "send_hour": subscriber.send_hour,
                "frequency": subscriber.frequency,
                "weekday": WEEKDAYS[subscriber.weekday],
                "max_papers": subscriber.max_papers,
            },
            "paused_until": _local_text(subscriber.paused_until, subscriber.timezone)
            if paused
            else None,
            "unsubscribe_token": self.token("unsubscribe", subscriber, opened_with=opened_with),
            "manage_token": self.token("manage", subscriber, opened_with=opened_with),
            "timezones": timezone_names(),
            "weekdays": list(zip(WEEKDAYS, WEEKDAY_NAMES, strict=True)),
            "max_pause_days": MAX_PAUSE_DAYS,
            "votes": votes.list_votes(session, subscriber),
            "errors": {},
            "values": {},
            "notice": None,
        }

    # --- handlers ---

    async def healthz(self, request: Request) -> Response:
        now = self.clock()

        def ping() -> list[str]:
            with self.store.transaction() as session:
                session.execute(text("SELECT 1"))
                tick = self.settings.schedule.tick_seconds
                return read_health(session, now=now, tick_seconds=tick).codes

        try:
            warnings = await run_in_threadpool(ping)
        except Exception as exc:  # any database failure is "unhealthy", with its type
            return JSONResponse({"status": "error", "database": type(exc).__name__}, 503)
        # 200 while the app can serve its links; what else needs an operator's look is
        # named by code only: this app faces the internet, and the details (a job's
        # error names database hosts and users, workers name machines) are for
        # `digest status`, which exits 1 for them
        return JSONResponse({"status": "ok", "warnings": warnings})

    async def unsubscribe(self, request: Request) -> Response:
        token = request.path_params["token"]
        now = self.clock()
        post = request.method == "POST"

        def work() -> Response:
            with self.store.transaction() as session:
                subscriber = self.subscriber_for(session, "unsubscribe", token)
                if post:
                    changed = subscriptions.unsubscribe(session, subscriber, now=now)
                    # Right after unsubscribing: a token of today, so "Subscribe again"
                    # works; already unsubscribed: one no newer than the link used.
                    return self.page(
                        "unsubscribed.html.j2",
                        email=subscriber.email,
                        already=not changed,
                        manage_token=self.token(
                            "manage", subscriber, opened_with="" if changed else token
                        ),
                    )
                return self.page(
                    "unsubscribe.html.j2",
                    email=subscriber.email,
                    already=subscriber.status == "unsubscribed",
                    manage_token=self.token("manage", subscriber, opened_with=token),
                )

        # The body of the one-click POST (`List-Unsubscribe=One-Click`) carries
        # nothing we need, so it is not parsed: any well-meant POST unsubscribes.
        return await self.guarded(work)

    async def confirm(self, request: Request) -> Response:
        token = request.path_params["token"]
        now = self.clock()
        post = request.method == "POST"

        def work() -> Response:
            with self.store.transaction() as session:
                subscriber = self.subscriber_for(session, "confirm", token)
                context: dict[str, Any] = {
                    "email": subscriber.email,
                    "manage_token": self.token("manage", subscriber, opened_with=token),
                }
                if post and subscriber.status == "pending":
                    subscriptions.confirm(session, subscriber, now=now)
                    return self.page("confirmed.html.j2", status_now=subscriber.status, **context)
                if post or subscriber.status != "pending":
                    return self.page("confirmed.html.j2", status_now=subscriber.status, **context)
                # The topics are shown here, not in the email, which the public form
                # sends without them (see digest.web.subscribe). A GET writes nothing.
                topics = [topic.query for topic in subscriber.topics]
                return self.page("confirm.html.j2", topics=topics, **context)

        return await self.guarded(work)

    async def manage(self, request: Request) -> Response:
        token = request.path_params["token"]
        now = self.clock()
        post = request.method == "POST"
        form = await small_form(request) if post else {}
        if form is None:
            return self.page("error.html.j2", http_status=413, status_code=413)
        notice = NOTICES.get(request.query_params.get("done", ""))

        def work() -> Response:
            errors: dict[str, str] = {}
            if post:
                try:
                    with self.store.transaction() as session:
                        subscriber = self.subscriber_for(session, "manage", token)
                        done = self.apply_change(session, subscriber, form, now, token)
                        mail_to = (subscriber.id, subscriber.email)
                    # Post/redirect/get: a reload does not repeat the change. A
                    # query-only Location keeps any path prefix of a proxy.
                    redirect = RedirectResponse(f"?done={done}", status_code=303)
                    if done == "confirm-sent":  # after the commit: the link's row is pending
                        redirect.background = BackgroundTask(self.send_confirmation, *mail_to, now)
                    return redirect
                except ChangeRejected as exc:  # rolled back; show the page with the error
                    errors = {exc.section: exc.message}
            with self.store.transaction() as session:
                subscriber = self.subscriber_for(session, "manage", token)
                context = self.manage_context(session, subscriber, now, token)
            context.update(errors=errors, values=form, notice=None if post else notice)
            return self.page("manage.html.j2", http_status=400 if errors else 200, **context)

        return await self.guarded(work)

    def send_confirmation(self, subscriber_id: int, email: str, now: datetime) -> None:
        """Mail a confirmation link (a worker thread, after the response); a failure is
        logged: the subscriber stays pending."""
        with self.store.transaction() as session:
            topics = list(
                session.scalars(
                    select(Topic.query)
                    .where(Topic.subscriber_id == subscriber_id)
                    .order_by(Topic.id)
                )
            )
        try:
            send_confirmation(
                self.settings,
                subscriber_id=subscriber_id,
                email=email,
                topics=topics,
                now=now,
                secret=self.secret,
                mailer=self.mailer,
            )
        except DeliveryError as exc:
            log.warning("subscribe again: %s", exc)

    def check_resubscribe(self, subscriber: Subscriber, token: str) -> None:
        """Refuse "Subscribe again" for an unsubscribed address with a link from before it
        left: an old link (a forwarded digest, say) must not undo an opt-out."""
        left = subscriber.unsubscribed_at or subscriber.updated_at
        if subscriber.status == "unsubscribed" and issued_on(token) < left.date():
            raise BadInput(
                "this link is older than your unsubscribe, so it cannot subscribe you "
                "again: use the button on the page you saw right after unsubscribing, "
                "or ask the operator"
            )

    def apply_change(
        self,
        session: Session,
        subscriber: Subscriber,
        form: Mapping[str, str],
        now: datetime,
        token: str,
    ) -> str:
        """Make one change from the manage page; returns its notice key or raises ChangeRejected."""
        action = form.get("action", "")
        try:
            if action == "add":
                query = form.get("query", "").strip()
                if not query:
                    raise BadInput("type a topic filter, e.g. diffusion models")
                subscriptions.add_topic(session, subscriber, query, now=now)
                return "added"
            if action == "remove":
                topic_id = _whole_number(form.get("topic_id", ""), "topic")
                subscriptions.remove_topic(session, subscriber, topic_id)
                return "removed"
            if action == "schedule":
                subscriptions.update_schedule(
                    session,
                    subscriber,
                    now=now,
                    timezone=form.get("timezone") or None,
                    send_hour=_whole_number(form.get("send_hour", ""), "hour"),
                    frequency=form.get("frequency") or None,
                    weekday=form.get("weekday") or None,
                    max_papers=_whole_number(form.get("max_papers", ""), "number of papers"),
                )
                return "schedule"
            if action == "pause":
                days = _whole_number(form.get("days", ""), "number of days")
                if not 1 <= days <= MAX_PAUSE_DAYS:
                    raise BadInput(f"pause for 1 to {MAX_PAUSE_DAYS} days")
                subscriptions.pause(session, subscriber, until=now + timedelta(days=days), now=now)
                return "paused"
            if action == "resume":
                subscriptions.resume(session, subscriber, now=now)
                return "resumed"
            if action == "remove-vote":
                paper_id = _whole_number(form.get("paper_id", ""), "paper")
                topic_id = _whole_number(form.get("topic_id", ""), "topic")
                # only a vote of this subscriber's, whatever ids the form carries
                vote = session.get(Vote, (subscriber.id, paper_id, topic_id))
                paper, topic = session.get(Paper, paper_id), session.get(Topic, topic_id)
                if vote is None or paper is None or topic is None:
                    raise BadInput("that vote is not on your list (any more); reload the page")
                votes.remove_vote(session, subscriber, paper, topic)
                return "vote-removed"
            if action == "reset-votes":
                # a whole list of what the reader taught their topics goes at once: the
                # box must be ticked (a stray press removes nothing)
                if form.get("confirm") != "yes":
                    raise BadInput("tick the box to confirm; no vote was removed")
                votes.reset_votes(session, subscriber)
                return "votes-reset"
            if action == "resubscribe":
                # The "Subscribe again" button of the unsubscribed pages. `subscribe` with no
                # topics keeps topics and schedule and resets `subscribed_at` (nothing is owed
                # for the time away). Unsubscribed: confirmed, with a link from on or after
                # the day they left (`check_resubscribe`). Bounced: the mailbox may be gone or
                # someone else's now, so pending, and a confirmation is mailed. Pending: not
                # confirmed by this (only the emailed link does that). Active: no change.
                if subscriber.status == "pending":
                    return "confirm-pending"
                bounced = subscriber.status == "bounced"
                if not bounced:
                    self.check_resubscribe(subscriber, token)
                subscriptions.subscribe(
                    session,
                    subscriber.email,
                    [],
                    now=now,
                    defaults=self.settings.schedule,
                    confirmed=not bounced,
                )
                return "confirm-sent" if bounced else "resubscribed"
        except BadInput as exc:  # QuerySyntaxError included: its text draws the caret
            raise ChangeRejected(action, str(exc)) from None
        raise ChangeRejected("form", "unknown action; reload the page and try again")

    async def view(self, request: Request) -> Response:
        token = request.path_params["token"]

        def work() -> Response:
            with self.store.transaction() as session:
                digest = self.digest_for(session, token)
                html = self.render_digest(session, digest)
            return HTMLResponse(html)

        return await self.guarded(work)

    async def more(self, request: Request) -> Response:
        return await self.vote(request, "more")

    async def less(self, request: Request) -> Response:
        return await self.vote(request, "less")

    async def vote(self, request: Request, link: VoteLink) -> Response:
        """GET: the paper, its topic and one button. POST: cast the vote, or undo it."""
        token = request.path_params["token"]
        now = self.clock()
        post = request.method == "POST"
        form = await small_form(request) if post else {}
        if form is None:
            return self.page("error.html.j2", http_status=413, status_code=413)
        undo = form.get("undo") == "1"

        def work() -> Response:
            with self.store.transaction() as session:
                subscriber, paper, topic = self.vote_target_for(session, link, token)
                cast = session.get(Vote, (subscriber.id, paper.id, topic.id))
                # the vote already cast on this paper for this topic, if any: a second
                # click (or a click days later) should say so, not ask as if it were new
                earlier = None if cast is None else ("more" if cast.vote > 0 else "less")
                state = "already" if earlier == link else "ask"
                if post and undo:
                    votes.remove_vote(session, subscriber, paper, topic)
                    state = "undone"
                elif post:
                    votes.cast_vote(session, subscriber, paper, topic, link, now=now)
                    state = "done"
                return self.page(
                    "vote.html.j2",
                    link=link,
                    state=state,
                    earlier=earlier,
                    title=paper.title,
                    topic=topic.label or topic.query,
                    manage_token=self.token(
                        "manage", subscriber, opened_with=vote_token_day(token)
                    ),
                )

        return await self.guarded(work)

    def render_digest(self, session: Session, digest: Digest) -> str:
        view = view_for_digest(session, digest.id, self.settings, self.secret)
        return self.renderer.html(view)

    async def guarded(self, work: Callable[[], Response]) -> Response:
        """Run a handler's database work in a thread; an unknown token becomes the 404 page."""
        try:
            return await run_in_threadpool(work)
        except NotFound:
            return self.not_found()

    async def http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return self.not_found()
        return self.page("error.html.j2", http_status=status, status_code=status)


def issued_on(token: str) -> date:
    """The day a (verified) subscriber token was issued; the oldest day for an undated one."""
    parts = token.split(".")
    return _day(parts[1]) if len(parts) == 3 else EPOCH


def vote_token_day(token: str) -> str:
    """A (verified) vote token's issue day, as a stand-in token `issued_on` reads."""
    parts = token.split(".")
    return f"0.{parts[2]}.x" if len(parts) == 4 else ""


def _day(text: str) -> date:
    try:
        return EPOCH + timedelta(days=int(text, 36))
    except (ValueError, OverflowError):
        return EPOCH


def _whole_number(value: str, what: str) -> int:
    """A row id from a form: a plain number within the schema's 32-bit ids (a larger one
    overflows SQLite's driver and PostgreSQL's integer, which is a 500, not a 400)."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_ROW_ID:
        raise BadInput(f"the {what} must be a whole number, got {value!r}")
    return int(text)


def _local_text(moment: datetime | None, timezone: str) -> str:
    if moment is None:
        return ""
    try:
        local = moment.astimezone(zone_of(timezone))
    except BadInput:
        local = moment
    return local.strftime("%A %-d %B %Y, %H:%M %Z")


def create_app(
    settings: Settings,
    store: Store,
    *,
    secret: bytes | None = None,
    clock: Clock = utc_now,
    mailer: Mailer | None = None,
) -> Starlette:
    """The ASGI app; `secret` defaults to `load_secret(settings.web)`, `clock` to UTC now,
    `mailer` (for confirmation emails) to the configured delivery backend."""
    web = WebApp(
        settings=settings,
        store=store,
        secret=load_secret(settings.web) if secret is None else secret,
        clock=clock,
        pages=page_environment(),
        # Built now so broken templates or sender settings stop `digest serve` at startup.
        renderer=Renderer(settings),
        mailer=mailer,
    )
    public = SubscribePages(web)
    routes = [
        Route("/", public.home, methods=["GET"]),
        Route("/subscribe", public.subscribe, methods=["GET", "POST"]),
        Route("/healthz", web.healthz, methods=["GET"]),
        Route("/u/{token}", web.unsubscribe, methods=["GET", "POST"]),
        Route("/confirm/{token}", web.confirm, methods=["GET", "POST"]),
        Route("/m/{token}", web.manage, methods=["GET", "POST"]),
        Route("/d/{token}", web.view, methods=["GET"]),
        Route(f"/{VOTE_PATHS['more']}/{{token}}", web.more, methods=["GET", "POST"]),
        Route(f"/{VOTE_PATHS['less']}/{{token}}", web.less, methods=["GET", "POST"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: web.http_error},
        middleware=[Middleware(SecurityHeaders)],
    )
    app.state.web = web
    return app


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response (a header a response sets itself wins).

    The one place they are set: pages, redirects, the JSON health check and
    what Starlette answers on its own (a malformed form body, a wrong method,
    an unknown path) all pass through here.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers.append(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)
