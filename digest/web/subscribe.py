"""The public subscribe form: `GET /` (also `/subscribe`) and `POST /subscribe`.

Off unless `web.public_subscribe`; then the front page only says what this is.
Unlike every other route, this one has no token: anyone can type any address.
Hence:

- Every subscriber made here is `pending` and gets the double opt-in email
  (`subscribers.confirmation`), whatever `web.double_opt_in` says: only the
  owner of the mailbox can turn it into digests.
- The answer never tells whether an address is known. A new address, a
  pending one, an active one and one that left all get the same "check your
  inbox" page; what differs is only what happens behind it (a pending row
  and a mail, a mail again, nothing, nothing). The mail is
  sent after the answer (a background task), so neither the page nor how
  long it takes depends on it. Bad input is refused with the same checks as
  `digest subscribe`, and those checks never look at the database.
- A row that exists is never changed by an anonymous request, beyond asking
  its owner again: a pending row gets another confirmation mail. An active
  one, and one that had left (unsubscribed, bounced), is left as it is and
  gets nothing: leaving is the owner's choice, and comes undone only through
  "Subscribe again" behind their own link; a bounced address is not mailed.
- Rate limits keep the form from being used to mail-bomb a stranger:
  one confirmation per address per `web.subscribe_resend_minutes` (a day), and
  none once the pending row is `web.subscribe_pending_days` old, so an address
  nobody confirms gets a handful in all. Both are derived from the row (for a
  pending row, `subscribed_at` is when its confirmation was last asked for,
  `created_at` when it was first), so they hold across processes and restarts,
  and are enforced silently (a 429 would say the address was just asked for);
  and
  `web.subscribe_client_limit` requests per client per hour, a sliding window
  kept in memory by each process (`ClientWindow`), answered with a 429 page;
  and `web.subscribe_global_limit` well-formed requests per hour from all
  clients together (each process), so many clients together send a bounded
  number of confirmations; counted before the database is read, so its 429
  does not depend on the address either.
- A hidden honeypot field (`HONEYPOT`) that people never see but form-filling
  bots do: filled in, the request gets the usual page and nothing is written.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from digest.config import Settings
from digest.errors import BadInput, DeliveryError
from digest.store.schema import Subscriber
from digest.subscribers import manage as subscriptions
from digest.subscribers.confirmation import send_confirmation
from digest.web.forms import small_form, timezone_names

if TYPE_CHECKING:
    from digest.web.app import WebApp

log = logging.getLogger(__name__)

# The name of the field that only bots fill in (hidden from people and screen readers).
HONEYPOT = "website"
CLIENT_WINDOW = timedelta(hours=1)
# Clients remembered at most; past it the least recently seen is forgotten, so a flood
# from many addresses costs bounded memory (a forgotten client starts a fresh window).
MAX_CLIENTS = 10_000
# The key of the window shared by all clients (`web.subscribe_global_limit`).
EVERYONE = "*"


class ClientWindow:
    """At most `limit` requests per client in any `window` (a sliding log of times).

    In memory, per process: several `digest serve` processes each allow `limit`,
    and a restart forgets. Refused requests are not counted, so a client that
    keeps trying gets back in as its oldest requests age out of the window.
    Not thread-safe: called from the event loop only.
    """

    def __init__(self, limit: int, window: timedelta, max_clients: int = MAX_CLIENTS) -> None:
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self.seen: OrderedDict[str, deque[datetime]] = OrderedDict()

    def allow(self, client: str, now: datetime) -> bool:
        """Count a request of `client` at `now`; False (not counted) if it is one too many."""
        cutoff = now - self.window
        self._forget_before(cutoff)
        times = self.seen.get(client)
        if times is None:
            times = self.seen[client] = deque()
        while times and times[0] <= cutoff:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        self.seen.move_to_end(client)
        while len(self.seen) > self.max_clients:
            self.seen.popitem(last=False)
        return True

    def retry_after(self, client: str, now: datetime) -> timedelta:
        """How long until `client` may ask again (zero if it may now)."""
        times = self.seen.get(client)
        if not times or len(times) < self.limit:
            return timedelta(0)
        return max(times[0] + self.window - now, timedelta(0))

    def _forget_before(self, cutoff: datetime) -> None:
        # Least recently seen first: stop at the first client seen inside the window.
        while self.seen:
            oldest = next(iter(self.seen))
            times = self.seen[oldest]
            if times and times[-1] > cutoff:
                return
            del self.seen[oldest]


def client_key(host: str | None) -> str:
    """Whom to count a request against: the IP address, or the /56 of an IPv6 one.

    One IPv6 host usually has a whole /64 to pick addresses from, and a home or
    small site is commonly given a /56 (256 of them). `digest serve` takes the
    address from X-Forwarded-For only when the connection comes from one of
    `web.trusted_proxies`, so a client cannot pick its own.
    """
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/56", strict=False))
    return str(address)


@dataclass(frozen=True)
class SubscribeRequest:
    """A subscribe request that passed the checks: the address and topic as they are stored."""

    email: str
    topic: str
    timezone: str


def check_form(form: Mapping[str, str], settings: Settings) -> SubscribeRequest | dict[str, str]:
    """The checked request, or the error of each field (as `digest subscribe` words them)."""
    errors: dict[str, str] = {}
    email = topic = timezone = ""
    try:
        email = subscriptions.normalise_email(form.get("email", ""))
    except BadInput as exc:
        errors["email"] = str(exc)
    try:
        topic, _ = subscriptions.check_topic(form.get("topic", ""))
    except BadInput as exc:  # QuerySyntaxError included: its text draws the caret
        errors["topic"] = str(exc)
    try:
        timezone = subscriptions.check_timezone(
            form.get("timezone") or settings.schedule.default_timezone
        )
    except BadInput as exc:
        errors["timezone"] = str(exc)
    return errors or SubscribeRequest(email, topic, timezone)


@dataclass(frozen=True)
class ConfirmationDue:
    """A confirmation email to send once the transaction has committed."""

    subscriber_id: int
    email: str
    topics: list[str]


def record_request(
    session: Session, settings: Settings, wanted: SubscribeRequest, *, now: datetime
) -> ConfirmationDue | None:
    """Write what a public subscribe request may write; say whom to mail, if anyone.

    New address: a pending subscriber. Pending: asked again, if the last ask is
    older than `web.subscribe_resend_minutes` and the row younger than
    `web.subscribe_pending_days`. Active or left (unsubscribed, bounced):
    nothing. Never raises for a reason that depends on the row, so the page
    cannot tell one case from another.
    """
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == wanted.email))
    if subscriber is not None and subscriber.status != "pending":
        # Active, or ended (unsubscribed, bounced): not a stranger's to change. One who
        # left comes back by "Subscribe again" behind their own link; a bounced address
        # is not mailed at all.
        return None
    if subscriber is not None and subscriber.status == "pending":
        resend_after = subscriber.subscribed_at + timedelta(
            minutes=settings.web.subscribe_resend_minutes
        )
        if now < resend_after:
            return None  # mailed a moment ago: quietly once, not once per request
        # An address nobody confirms is not mailed forever: past this age of the row
        # (created_at is when it was first asked for), the form sends it nothing more.
        if now >= subscriber.created_at + timedelta(days=settings.web.subscribe_pending_days):
            return None
        # For a pending row, subscribed_at is when its confirmation was last asked for.
        subscriber.subscribed_at = subscriber.updated_at = now
        session.flush()
    else:
        outcome = subscriptions.subscribe(
            session,
            wanted.email,
            [wanted.topic],
            now=now,
            defaults=settings.schedule,
            timezone=wanted.timezone,
            confirmed=False,
        )
        subscriber = session.get_one(Subscriber, outcome.subscriber_id)
    return ConfirmationDue(subscriber.id, subscriber.email, [t.query for t in subscriber.topics])


class SubscribePages:
    """The handlers of `/` and `/subscribe`, over the app's shared `WebApp`."""

    def __init__(self, web: WebApp) -> None:
        self.web = web
        self.clients = ClientWindow(web.settings.web.subscribe_client_limit, CLIENT_WINDOW)
        # Everyone together: a cap on confirmation mails that many clients cannot get past.
        self.everyone = ClientWindow(web.settings.web.subscribe_global_limit, CLIENT_WINDOW, 1)

    @property
    def public(self) -> bool:
        return self.web.settings.web.public_subscribe

    def form_page(
        self,
        http_status: int = 200,
        *,
        values: Mapping[str, str] | None = None,
        errors: Mapping[str, str] | None = None,
    ) -> Response:
        return self.web.page(
            "home.html.j2",
            http_status=http_status,
            public=self.public,
            values=dict(values or {}),
            errors=dict(errors or {}),
            timezones=timezone_names() if self.public else (),
            default_timezone=self.web.settings.schedule.default_timezone,
            honeypot=HONEYPOT,
        )

    async def home(self, request: Request) -> Response:
        """`GET /`: what this is; the form when public subscribe is on. Never a 404."""
        return self.form_page()

    async def subscribe(self, request: Request) -> Response:
        """`GET /subscribe`: the form again; `POST /subscribe`: ask for a subscription."""
        if not self.public:
            return self.web.not_found()
        if request.method != "POST":
            return self.form_page()
        now = self.web.clock()
        client = client_key(request.client.host if request.client else None)
        if not self.clients.allow(client, now):
            return self.refused(self.clients.retry_after(client, now))
        form = await small_form(request)
        if form is None:
            return self.web.page("error.html.j2", http_status=413, status_code=413)
        if form.get(HONEYPOT):
            return self.sent_page(form.get("email", "").strip())  # a bot: pretend, write nothing
        checked = check_form(form, self.web.settings)
        if isinstance(checked, dict):
            return self.form_page(400, values=form, errors=checked)
        # Counted before the database is read, so a 429 says nothing about the address.
        if not self.everyone.allow(EVERYONE, now):
            return self.refused(self.everyone.retry_after(EVERYONE, now), everyone=True)

        def work() -> ConfirmationDue | None:
            try:
                with self.web.store.transaction() as session:
                    return record_request(session, self.web.settings, checked, now=now)
            except IntegrityError:  # the same new address twice at once: the other one mails
                return None

        due = await run_in_threadpool(work)
        # After the commit (the link's row must exist) and after the answer has gone out.
        background = BackgroundTask(self.send, due, now) if due is not None else None
        response = self.sent_page(checked.email)
        response.background = background
        return response

    def refused(self, wait: timedelta, *, everyone: bool = False) -> Response:
        """The 429 page, with when to try again (whole minutes, at least one)."""
        minutes = max(1, -(-int(wait.total_seconds()) // 60))
        refused = self.web.page(
            "rate_limited.html.j2", http_status=429, minutes=minutes, everyone=everyone
        )
        refused.headers["Retry-After"] = str(minutes * 60)
        return refused

    def sent_page(self, email: str) -> Response:
        return self.web.page("subscribe_sent.html.j2", email=email)

    def send(self, due: ConfirmationDue, now: datetime) -> None:
        """Mail the confirmation (a worker thread, after the response). A failure is logged:
        the person sees no mail and can ask again once the resend interval has passed."""
        try:
            send_confirmation(
                self.web.settings,
                subscriber_id=due.subscriber_id,
                email=due.email,
                topics=due.topics,
                now=now,
                secret=self.web.secret,
                mailer=self.web.mailer,
                # Anyone can type any address and any topic: no typed text goes to the
                # inbox (a relay for spam or phishing); the confirm page lists the topics.
                show_topics=False,
            )
        except DeliveryError as exc:
            log.warning("public subscribe: %s", exc)
