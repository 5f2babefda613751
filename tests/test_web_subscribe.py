"""The public subscribe form (`/`, `POST /subscribe`) over HTTP, with a real SMTP server.

Confirmation emails go through the SMTP backend to aiosmtpd on 127.0.0.1
(tests/smtpd.py), so what is asserted is what a mail server really got.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from digest.config import DeliverySettings, Settings, SmtpSettings, WebSettings
from digest.store.database import Store
from digest.store.schema import Subscriber, Topic
from digest.web import create_app
from digest.web.subscribe import HONEYPOT, ClientWindow, client_key
from tests.smtpd import FaultyHandler, smtp_server

SECRET = b"test-secret-0123456789abcdefghijklmnop"
NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
CLIENT = "203.0.113.7"


class Web:
    """The app over httpx, with a clock the test moves and a client address it picks."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.now = NOW
        self.app = create_app(settings, store, secret=SECRET, clock=lambda: self.now)

    def request(
        self, method: str, url: str, *, client: str = CLIENT, **kwargs: Any
    ) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=(client, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                return await c.request(method, url, **kwargs)

        return asyncio.run(go())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def subscribe(
        self,
        address: str = "ada@example.org",
        topic: str = "diffusion models",
        timezone: str = "Europe/Berlin",
        *,
        client: str = CLIENT,
        **extra: str,
    ) -> httpx.Response:
        form = {"email": address, "topic": topic, "timezone": timezone, HONEYPOT: "", **extra}
        return self.request("POST", "/subscribe", client=client, data=form)


def settings_for(port: int, *, public: bool = True, **web: Any) -> Settings:
    return Settings(
        web=WebSettings(
            base_url="https://digest.example.org", public_subscribe=public, secret="", **web
        ),
        delivery=DeliverySettings(backend="smtp"),
        smtp=SmtpSettings(host="127.0.0.1", port=port, security="none", timeout_seconds=5),
    )


@pytest.fixture
def smtp() -> Iterator[tuple[FaultyHandler, int]]:
    handler = FaultyHandler()
    with smtp_server(handler) as port:
        yield handler, port


@pytest.fixture
def web(store: Store, smtp: tuple[FaultyHandler, int]) -> Web:
    return Web(store, settings_for(smtp[1], subscribe_client_limit=5))


def mails_to(handler: FaultyHandler, address: str) -> list[email.message.EmailMessage]:
    found = []
    for (rcpt, _), raw in zip(handler.received, handler.contents, strict=True):
        if rcpt == address:
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(parsed, email.message.EmailMessage)
            found.append(parsed)
    return found


def row(store: Store, address: str) -> Subscriber | None:
    with store.transaction() as session:
        found = session.scalar(select(Subscriber).where(Subscriber.email == address))
        if found is not None:
            found.topics  # noqa: B018 (load them before the session closes)
            session.expunge(found)
        return found


def count_rows(store: Store) -> tuple[int, int]:
    with store.transaction() as session:
        subscribers = session.scalar(select(func.count()).select_from(Subscriber))
        topics = session.scalar(select(func.count()).select_from(Topic))
        return subscribers or 0, topics or 0


def add_subscriber(store: Store, address: str, status: str, *, minutes_ago: int = 60 * 24) -> int:
    then = NOW - timedelta(minutes=minutes_ago)
    with store.transaction() as session:
        subscriber = Subscriber(
            email=address,
            status=status,
            timezone="Asia/Tokyo",
            created_at=then,
            subscribed_at=then,
            updated_at=then,
            confirmed_at=then if status != "pending" else None,
            unsubscribed_at=then if status == "unsubscribed" else None,
            topics=[Topic(query="kv cache", created_at=then)],
        )
        session.add(subscriber)
        session.flush()
        return subscriber.id


# --- off (the default) ---


def test_off_the_front_page_says_the_operator_manages_subscriptions(store: Store) -> None:
    web = Web(store, Settings(web=WebSettings(base_url="https://digest.example.org")))
    assert Settings().web.public_subscribe is False
    page = web.get("/")
    assert page.status_code == 200
    assert "managed by the operator" in page.text
    assert "<form" not in page.text
    not_found = web.get("/no/such/page").text
    for method in ("GET", "POST"):
        response = web.request(method, "/subscribe", data={"email": "ada@example.org"})
        assert response.status_code == 404
        assert response.text == not_found
    response = web.request(
        "POST", "/subscribe", data={"email": "ada@example.org", "topic": "diffusion models"}
    )
    assert response.status_code == 404
    assert count_rows(store) == (0, 0)


# --- on ---


def test_the_front_page_has_the_form(web: Web) -> None:
    page = web.get("/")
    assert page.status_code == 200
    assert '<form method="post" action="subscribe">' in page.text
    for field in ('name="email"', 'name="topic"', 'name="timezone"', f'name="{HONEYPOT}"'):
        assert field in page.text
    assert "<option selected>UTC</option>" in page.text  # the default time zone
    assert re.search(rf'<div class="hp" aria-hidden="true">.*name="{HONEYPOT}"', page.text, re.S)
    assert "+word" in page.text and "loosely" in page.text  # the manage page's filter hint
    assert web.get("/subscribe").text == page.text


def test_a_good_request_makes_a_pending_subscriber_and_mails_one_confirmation(
    web: Web, store: Store, smtp: tuple[FaultyHandler, int]
) -> None:
    handler, _ = smtp
    response = web.subscribe(" Ada@Example.org ", "  diffusion models -video ")
    assert response.status_code == 200
    assert "Check your inbox" in response.text
    assert "ada@example.org" in response.text
    found = row(store, "ada@example.org")
    assert found is not None
    assert (found.status, found.timezone, found.confirmed_at) == ("pending", "Europe/Berlin", None)
    assert [t.query for t in found.topics] == ["diffusion models -video"]
    (message,) = mails_to(handler, "ada@example.org")
    assert message["Subject"].startswith("Confirm your subscription")
    text = message.get_body(("plain",))
    assert text is not None and "on 1 topic (the link" in text.get_content()
    link = re.search(r"https://digest\.example\.org(/confirm/\S+)", text.get_content())
    assert link is not None
    # the topic is on the confirm page, not in the email; looking writes nothing
    page = web.get(link[1])
    assert "<code>diffusion models -video</code>" in page.text
    pending = row(store, "ada@example.org")
    assert pending is not None and pending.status == "pending"
    # the link in that email confirms it
    assert web.request("POST", link[1]).status_code == 200
    confirmed = row(store, "ada@example.org")
    assert confirmed is not None and confirmed.status == "active"


def test_the_email_never_carries_what_a_stranger_typed(
    web: Web, store: Store, smtp: tuple[FaultyHandler, int]
) -> None:
    """The form must not relay typed text to an inbox that never asked (spam, phishing)."""
    handler, _ = smtp
    lure = '"your account is locked call 555 0100 or visit evil example"'
    assert web.subscribe("victim@example.org", lure + " papers").status_code == 200
    (message,) = mails_to(handler, "victim@example.org")
    for part in ("plain", "html"):
        body = message.get_body((part,))
        assert body is not None
        content = body.get_content()
        assert "locked" not in content and "evil" not in content
        assert "1 topic" in content


def test_pending_whatever_double_opt_in_says(store: Store, smtp: tuple[FaultyHandler, int]) -> None:
    handler, port = smtp
    for double_opt_in, address in ((False, "bob@example.org"), (True, "cy@example.org")):
        web = Web(store, settings_for(port, double_opt_in=double_opt_in))
        assert web.subscribe(address).status_code == 200
        found = row(store, address)
        assert found is not None and found.status == "pending"
        assert len(mails_to(handler, address)) == 1


def test_a_filled_honeypot_is_told_the_same_and_nothing_is_written(
    web: Web, store: Store, smtp: tuple[FaultyHandler, int]
) -> None:
    handler, _ = smtp
    bot = web.subscribe("ada@example.org", **{HONEYPOT: "https://spam.example"})
    assert bot.status_code == 200
    assert count_rows(store) == (0, 0)
    assert handler.received == []
    person = web.subscribe("ada@example.org")
    assert bot.text == person.text


def test_a_bad_topic_is_refused_with_the_caret_and_the_form_keeps_what_was_typed(
    web: Web, store: Store, smtp: tuple[FaultyHandler, int]
) -> None:
    response = web.subscribe("ada@example.org", "(kv cache <b>", "Asia/Tokyo")
    assert response.status_code == 400
    error = re.search(
        r'<pre class="error" role="alert" id="topic-error">([^<]*)</pre>', response.text
    )
    assert error is not None
    assert "unclosed parenthesis" in error[1]
    assert "(kv cache &lt;b&gt;\n  ^" in error[1]  # the caret under the problem, escaped
    assert 'value="ada@example.org"' in response.text
    assert 'value="(kv cache &lt;b&gt;"' in response.text
    assert "<option selected>Asia/Tokyo</option>" in response.text
    assert "<b>" not in response.text
    assert count_rows(store) == (0, 0)
    assert smtp[0].received == []


@pytest.mark.parametrize(
    ("field", "form", "message"),
    [
        ("email", {"email": "not an address"}, "not a valid email address"),
        ("email", {"email": ""}, "the email address is empty"),
        ("email", {"email": "üser@example.org"}, "non-ASCII"),
        ("topic", {"topic": ""}, "the topic filter is empty"),
        ("topic", {"topic": "the"}, "only common words"),
        ("timezone", {"timezone": "Mars/Olympus"}, "Mars/Olympus"),
    ],
)
def test_bad_input_is_explained_next_to_its_field(
    web: Web, store: Store, field: str, form: dict[str, str], message: str
) -> None:
    values = {"address": "ada@example.org", "topic": "diffusion", "timezone": "UTC"}
    values.update({("address" if k == "email" else k): v for k, v in form.items()})
    response = web.subscribe(values["address"], values["topic"], values["timezone"])
    assert response.status_code == 400
    error = re.search(rf'id="{field}-error">([^<]*)</pre>', response.text)
    assert error is not None and message in error[1], response.text
    assert count_rows(store) == (0, 0)


def test_one_confirmation_per_address_per_interval_and_the_page_stays_the_same(
    web: Web, store: Store, smtp: tuple[FaultyHandler, int]
) -> None:
    handler, _ = smtp
    first = web.subscribe("ada@example.org")
    again = [web.subscribe("ada@example.org", client=f"198.51.100.{n}") for n in range(3)]
    assert {r.status_code for r in again} == {200}  # a 429 would say the address was just asked
    assert {r.text for r in again} == {first.text}
    assert len(mails_to(handler, "ada@example.org")) == 1
    web.now = NOW + timedelta(hours=23)  # the interval is a day by default
    assert web.subscribe("ada@example.org").status_code == 200
    assert len(mails_to(handler, "ada@example.org")) == 1
    web.now = NOW + timedelta(days=1)
    assert web.subscribe("ada@example.org").status_code == 200
    assert len(mails_to(handler, "ada@example.org")) == 2
    found = row(store, "ada@example.org")
    assert found is not None and found.subscribed_at == web.now  # the last ask, for the next
    assert [t.query for t in found.topics] == ["diffusion models"]


def test_an_address_nobody_confirms_gets_a_handful_of_confirmations_in_all(
    web: Web, store: Store, smtp: tuple[FaultyHandler, int]
) -> None:
    """Mail bombing: asking for a stranger every hour for weeks sends one a day for the
    first `web.subscribe_pending_days` (3) days, then nothing, and every page is the same."""
    handler, _ = smtp
    pages = set()
    for hour in range(24 * 21):
        web.now = NOW + timedelta(hours=hour)
        response = web.subscribe("victim@example.org", client=f"198.51.{hour // 250}.{hour % 250}")
        assert response.status_code == 200
        pages.add(response.text)
    assert len(pages) == 1
    assert len(mails_to(handler, "victim@example.org")) == 3  # days 0, 1 and 2
    found = row(store, "victim@example.org")
    assert found is not None and found.status == "pending"


def test_too_many_requests_from_one_client_get_a_429_page(
    web: Web, store: Store, smtp: tuple[FaultyHandler, int]
) -> None:
    for n in range(5):  # one a minute
        web.now = NOW + timedelta(minutes=n)
        assert web.subscribe(f"user{n}@example.org").status_code == 200
    refused = web.subscribe("user5@example.org")
    assert refused.status_code == 429
    assert "Too many subscription requests" in refused.text
    assert "try again in 56 minutes" in refused.text  # when the first one leaves the hour
    assert refused.headers["retry-after"] == str(56 * 60)
    assert row(store, "user5@example.org") is None
    # a bad request or a bot counts too; another client does not share the count
    assert web.subscribe("x", client=CLIENT).status_code == 429
    assert web.subscribe("user5@example.org", client="198.51.100.1").status_code == 200
    # the window slides: the first request is an hour old, so one more is allowed
    web.now = NOW + timedelta(hours=1, seconds=1)
    assert web.subscribe("user6@example.org").status_code == 200
    assert web.subscribe("user7@example.org").status_code == 429
    assert len(smtp[0].received) == 7


def test_an_ipv6_client_is_counted_by_its_56(web: Web) -> None:
    """A site is commonly given a /56: 256 /64s, which must not be 256 clients."""
    for n in range(5):  # five different /64s of one /56
        response = web.subscribe(f"v6-{n}@example.org", client=f"2001:db8:1:{n:x}::1")
        assert response.status_code == 200
    assert web.subscribe("v6-5@example.org", client="2001:db8:1:ff:ffff::9").status_code == 429
    assert web.subscribe("v6-5@example.org", client="2001:db8:1:100::1").status_code == 200


def test_all_clients_together_get_a_bounded_number_of_confirmations(
    store: Store, smtp: tuple[FaultyHandler, int]
) -> None:
    handler, port = smtp
    web = Web(store, settings_for(port, subscribe_global_limit=3))
    for n in range(3):
        assert web.subscribe(f"u{n}@example.org", client=f"198.51.100.{n}").status_code == 200
    # a bad request is refused as bad, not counted
    assert web.subscribe("bad", client="198.51.100.8").status_code == 400
    refused = web.subscribe("u3@example.org", client="198.51.100.9")
    assert refused.status_code == 429
    assert "came to this site in the last hour" in refused.text
    assert refused.headers["retry-after"] == str(60 * 60)
    assert row(store, "u3@example.org") is None
    # the same 429 whatever the address: known addresses are not told apart
    assert web.subscribe("u0@example.org", client="198.51.100.10").text == refused.text
    assert len(handler.received) == 3
    web.now = NOW + timedelta(hours=1, seconds=1)
    assert web.subscribe("u3@example.org", client="198.51.100.9").status_code == 200
    assert len(handler.received) == 4


def test_known_addresses_get_the_same_page_and_no_more_than_a_confirmation(
    web: Web, store: Store, smtp: tuple[FaultyHandler, int]
) -> None:
    """No enumeration: the page cannot tell new, pending, active and departed addresses apart."""
    handler, _ = smtp
    add_subscriber(store, "active@example.org", "active")
    add_subscriber(store, "pending@example.org", "pending")
    add_subscriber(store, "left@example.org", "unsubscribed")
    add_subscriber(store, "bounced@example.org", "bounced")
    pages = {}
    for name in ("new", "active", "pending", "left", "bounced"):
        response = web.subscribe(f"{name}@example.org", "llm agents")
        assert response.status_code == 200
        pages[name] = response.text.replace(f"{name}@example.org", "ADDRESS")
    assert len(set(pages.values())) == 1

    active = row(store, "active@example.org")
    assert active is not None
    assert (active.status, active.updated_at) == ("active", NOW - timedelta(days=1))
    assert [t.query for t in active.topics] == ["kv cache"]  # not changed by a stranger
    assert mails_to(handler, "active@example.org") == []

    pending = row(store, "pending@example.org")
    assert pending is not None and [t.query for t in pending.topics] == ["kv cache"]
    assert len(mails_to(handler, "pending@example.org")) == 1  # asked again, a day later

    # one that left is not brought back by a stranger, nor mailed: only by its owner's link
    for name, status in (("left", "unsubscribed"), ("bounced", "bounced")):
        ended = row(store, f"{name}@example.org")
        assert ended is not None
        assert (ended.status, ended.updated_at) == (status, NOW - timedelta(days=1))
        assert ended.subscribed_at == NOW - timedelta(days=1)
        assert [t.query for t in ended.topics] == ["kv cache"]
        assert mails_to(handler, f"{name}@example.org") == []
    left = row(store, "left@example.org")
    assert left is not None and left.unsubscribed_at == NOW - timedelta(days=1)
    assert count_rows(store)[0] == 5


def test_a_pending_address_asked_a_moment_ago_gets_no_second_mail(
    web: Web, store: Store, smtp: tuple[FaultyHandler, int]
) -> None:
    add_subscriber(store, "pending@example.org", "pending", minutes_ago=3)
    assert web.subscribe("pending@example.org").status_code == 200
    assert mails_to(smtp[0], "pending@example.org") == []


def test_a_relay_that_refuses_the_mail_still_gets_the_same_page(
    web: Web, store: Store, smtp: tuple[FaultyHandler, int]
) -> None:
    handler, _ = smtp
    handler.perm_rcpt.add("nobody@example.org")
    response = web.subscribe("nobody@example.org")
    assert response.status_code == 200 and "Check your inbox" in response.text
    found = row(store, "nobody@example.org")
    assert found is not None and found.status == "pending"


def test_subscribe_pages_are_well_formed_and_carry_the_headers(web: Web) -> None:
    import html5lib

    responses = [
        web.get("/"),
        web.subscribe("ada@example.org"),
        web.subscribe("bad", "(x"),
        *[web.subscribe(f"u{n}@example.org") for n in range(4)],
    ]
    assert [r.status_code for r in responses] == [200, 200, 400, 200, 200, 200, 429]
    for response in responses:
        html5lib.HTMLParser(strict=True).parse(response.text)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"


def test_an_oversized_form_is_refused(web: Web, store: Store) -> None:
    response = web.subscribe("ada@example.org", "x" * 20_000)
    assert response.status_code == 413
    assert count_rows(store) == (0, 0)


# --- the pieces ---


def test_client_window_slides_and_forgets_idle_clients() -> None:
    window = ClientWindow(limit=2, window=timedelta(minutes=10), max_clients=3)
    assert window.allow("a", NOW) and window.allow("a", NOW + timedelta(minutes=1))
    assert not window.allow("a", NOW + timedelta(minutes=2))
    assert window.retry_after("a", NOW + timedelta(minutes=2)) == timedelta(minutes=8)
    assert window.allow("a", NOW + timedelta(minutes=10, seconds=1))
    for name in "bcde":  # more clients than remembered: the least recently seen goes
        assert window.allow(name, NOW + timedelta(minutes=11))
    assert len(window.seen) == 3
    # and a client idle for a whole window is dropped on the next request
    assert window.allow("f", NOW + timedelta(minutes=30))
    assert list(window.seen) == ["f"]


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1::/56"),
        ("2001:db8:1:ff:3:4:5:6", "2001:db8:1::/56"),
        ("2001:db8:1:100::1", "2001:db8:1:100::/56"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        (None, "unknown"),
        ("testclient", "testclient"),
    ],
)
def test_client_key(host: str | None, key: str) -> None:
    assert client_key(host) == key
