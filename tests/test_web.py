"""The web app through its HTTP interface (httpx against the ASGI app, real databases)."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from digest.config import Settings, WebSettings
from digest.links import Purpose, make_token
from digest.mail import Mailer
from digest.mail.memory import MemoryMailer
from digest.store.database import Store
from digest.store.schema import Digest, Subscriber, Topic
from digest.web import create_app
from tests.conftest import invoke

SECRET = b"test-secret-0123456789abcdefghijklmnop"
NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
ONE_CLICK = {"content-type": "application/x-www-form-urlencoded"}


class Client:
    """A tiny synchronous front for httpx's async client over the ASGI app."""

    def __init__(
        self, store: Store, settings: Settings | None = None, mailer: Mailer | None = None
    ) -> None:
        settings = settings or Settings(web=WebSettings(base_url="https://digest.example.org"))
        self.app = create_app(settings, store, secret=SECRET, clock=lambda: NOW, mailer=mailer)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                return await c.request(method, url, **kwargs)

        return asyncio.run(go())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


@pytest.fixture
def client(store: Store) -> Iterator[Client]:
    yield Client(store)


def add_subscriber(
    store: Store,
    email: str = "ada@example.org",
    *,
    status: str = "active",
    topics: tuple[str, ...] = ("diffusion models",),
) -> int:
    with store.transaction() as session:
        subscriber = Subscriber(
            email=email,
            status=status,
            created_at=NOW - timedelta(days=3),
            subscribed_at=NOW - timedelta(days=3),
            updated_at=NOW - timedelta(days=3),
            confirmed_at=NOW - timedelta(days=3) if status == "active" else None,
            topics=[Topic(query=q, created_at=NOW - timedelta(days=3)) for q in topics],
        )
        session.add(subscriber)
        session.flush()
        return subscriber.id


def add_digest(store: Store, subscriber_id: int, status: str, period: str) -> int:
    with store.transaction() as session:
        digest = Digest(
            subscriber_id=subscriber_id,
            period=period,
            status=status,
            message_id=f"<{period}.{subscriber_id}@example.org>",
            planned_at=NOW - timedelta(hours=1),
            window_start=NOW - timedelta(days=1),
        )
        session.add(digest)
        session.flush()
        return digest.id


def subscriber(store: Store, subscriber_id: int) -> Subscriber:
    with store.transaction() as session:
        found = session.get(Subscriber, subscriber_id)
        assert found is not None
        session.expunge(found)
        return found


def topics_of(store: Store, subscriber_id: int) -> list[str]:
    with store.transaction() as session:
        return list(
            session.scalars(
                select(Topic.query).where(Topic.subscriber_id == subscriber_id).order_by(Topic.id)
            )
        )


def token(purpose: Purpose, row_id: int, email: str = "ada@example.org") -> str:
    return make_token(SECRET, purpose, row_id, email, issued=NOW)


# --- health and the generic 404 ---


def test_healthz_reports_ok_with_what_needs_attention(client: Client, store: Any) -> None:
    from digest.store.job_runs import record_run

    with store.transaction() as session:
        record_run(
            session, "tick", worker="mailer-01.internal:4242", started=NOW, finished=NOW,
            error='OperationalError: connection to "10.1.2.3" failed for user "digest"',
        )  # fmt: skip
    response = client.get("/healthz")
    assert response.status_code == 200
    # what `digest status` warns of, by code only: this app faces the internet
    assert response.json() == {"status": "ok", "warnings": ["no-dumps", "job-failed:tick"]}
    assert "10.1.2.3" not in response.text and "mailer-01" not in response.text


def test_healthz_reports_a_dead_database(tmp_path: Any) -> None:
    from digest.store.database import open_store

    store = open_store(f"sqlite:///{tmp_path / 'gone.db'}")
    client = Client(store)
    store.engine.dispose()
    (tmp_path / "gone.db").unlink()
    (tmp_path / "gone.db").mkdir()  # a directory where the file was: cannot open
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "error"


def _bad_tokens(sub_id: int) -> dict[str, str]:
    good = token("unsubscribe", sub_id)
    return {
        "forged mac": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        "no mac": good.split(".")[0],
        "other secret": make_token(
            b"rotated", "unsubscribe", sub_id, "ada@example.org", issued=NOW
        ),
        "other address": token("unsubscribe", sub_id, "eve@example.org"),
        "unknown id": token("unsubscribe", sub_id + 1000),
        "garbage": "%3Cscript%3E",
        "huge id": "zzzzzzzzzzzz." + good.split(".")[1],
    }


@pytest.mark.parametrize("path", ["/u/{}", "/confirm/{}", "/m/{}", "/d/{}"])
def test_every_bad_token_gets_the_same_404_page(client: Client, store: Store, path: str) -> None:
    sub_id = add_subscriber(store)
    add_subscriber(store, "bob@example.org")
    pages = set()
    for name, bad in _bad_tokens(sub_id).items():
        for method in ("GET", "POST") if path != "/d/{}" else ("GET",):
            response = client.request(method, path.format(bad))
            assert response.status_code == 404, (name, method)
            pages.add(response.text)
    pages.add(client.get("/no/such/page").text)
    assert len(pages) == 1
    (page,) = pages
    assert "This link is not valid" in page
    assert "ada@example.org" not in page
    assert subscriber(store, sub_id).status == "active"


@pytest.mark.parametrize(
    ("purpose", "path"),
    [
        ("manage", "/u/{}"),
        ("unsubscribe", "/m/{}"),
        ("view", "/u/{}"),
        ("unsubscribe", "/confirm/{}"),
        ("manage", "/d/{}"),
    ],
)
def test_a_token_for_one_purpose_is_useless_for_another(
    client: Client, store: Store, purpose: Purpose, path: str
) -> None:
    sub_id = add_subscriber(store, status="pending")
    digest_id = add_digest(store, sub_id, "sent", "2026-11-21")
    assert digest_id == sub_id  # same row id, so only the purpose tells them apart
    if path != "/d/{}":
        response = client.post(
            path.format(token(purpose, sub_id)), data={"List-Unsubscribe": "One-Click"}
        )
        assert response.status_code == 404
    assert client.get(path.format(token(purpose, sub_id))).status_code == 404
    assert subscriber(store, sub_id).status == "pending"


def test_a_deleted_subscriber_gets_the_generic_404(client: Client, store: Store) -> None:
    sub_id = add_subscriber(store)
    link = token("unsubscribe", sub_id)
    assert client.get(f"/u/{link}").status_code == 200
    with store.transaction() as session:
        session.delete(session.get(Subscriber, sub_id))
    response = client.get(f"/u/{link}")
    assert response.status_code == 404
    assert response.text == client.get("/u/forged.token").text


def test_pages_carry_privacy_headers(client: Client, store: Store) -> None:
    sub_id = add_subscriber(store)
    response = client.get(f"/u/{token('unsubscribe', sub_id)}")
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert "noindex" in response.headers["x-robots-tag"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


# --- unsubscribe ---


def test_get_shows_the_address_and_a_button_but_never_unsubscribes(
    client: Client, store: Store
) -> None:
    sub_id = add_subscriber(store)
    for _ in range(3):  # a link scanner prefetching, then the person looking
        response = client.get(f"/u/{token('unsubscribe', sub_id)}")
        assert response.status_code == 200
        assert "ada@example.org" in response.text
        assert re.search(
            r'<form method="post">.*<button[^>]*>Unsubscribe</button>', response.text, re.S
        )
    head = client.request("HEAD", f"/u/{token('unsubscribe', sub_id)}")
    assert head.status_code == 200
    assert subscriber(store, sub_id).status == "active"


def test_rfc8058_one_click_post_unsubscribes(client: Client, store: Store) -> None:
    sub_id = add_subscriber(store)
    pending = add_digest(store, sub_id, "pending", "2026-11-22")
    retry = add_digest(store, sub_id, "retry", "2026-11-21")
    sent = add_digest(store, sub_id, "sent", "2026-11-20")
    # Exactly what a mail provider sends: no cookies, no auth, this body.
    response = client.post(
        f"/u/{token('unsubscribe', sub_id)}",
        content=b"List-Unsubscribe=One-Click",
        headers=ONE_CLICK,
    )
    assert response.status_code == 200  # no redirect
    assert "set-cookie" not in response.headers
    assert "unsubscribed" in response.text
    found = subscriber(store, sub_id)
    assert found.status == "unsubscribed"
    assert found.unsubscribed_at == NOW
    with store.transaction() as session:
        statuses = dict(session.execute(select(Digest.id, Digest.status)).tuples().all())
    assert statuses == {pending: "cancelled", retry: "cancelled", sent: "sent"}


def test_unsubscribing_twice_is_harmless(client: Client, store: Store) -> None:
    sub_id = add_subscriber(store)
    link = f"/u/{token('unsubscribe', sub_id)}"
    assert (
        client.post(link, content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK).status_code
        == 200
    )
    again = client.post(link, content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert again.status_code == 200
    assert "already unsubscribed" in again.text
    assert subscriber(store, sub_id).unsubscribed_at == NOW
    page = client.get(link)
    assert "You are unsubscribed" in page.text
    # no second Unsubscribe button: the one button left is "Subscribe again"
    assert re.findall(r"<button[^>]*>([^<]*)</button>", page.text) == ["Subscribe again"]


def test_unsubscribe_button_form_posts_the_one_click_body(client: Client, store: Store) -> None:
    sub_id = add_subscriber(store)
    page = client.get(f"/u/{token('unsubscribe', sub_id)}").text
    assert 'name="List-Unsubscribe" value="One-Click"' in page
    response = client.post(
        f"/u/{token('unsubscribe', sub_id)}", data={"List-Unsubscribe": "One-Click"}
    )
    assert response.status_code == 200
    assert subscriber(store, sub_id).status == "unsubscribed"


def test_an_odd_or_empty_post_body_still_unsubscribes(client: Client, store: Store) -> None:
    sub_id = add_subscriber(store)
    response = client.post(
        f"/u/{token('unsubscribe', sub_id)}",
        content=b"--x\r\n",
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert response.status_code == 200
    assert subscriber(store, sub_id).status == "unsubscribed"


# --- subscribe again ---


def resubscribe_form(page: str) -> str:
    """The action URL of the page's "Subscribe again" form (which must post action=resubscribe)."""
    found = re.search(
        r'<form method="post" action="([^"]+)">\s*'
        r'<input type="hidden" name="action" value="resubscribe">\s*'
        r'<button type="submit" id="resubscribe">Subscribe again</button>',
        page,
    )
    assert found is not None, "no Subscribe again form on the page"
    return found[1]


def test_unsubscribed_page_offers_subscribe_again_which_keeps_topics_and_schedule(
    client: Client, store: Store
) -> None:
    sub_id = add_subscriber(store, topics=("diffusion models", "kv cache"))
    with store.transaction() as session:
        row = session.get_one(Subscriber, sub_id)
        row.send_hour, row.frequency, row.timezone = 18, "weekly", "Europe/Berlin"
    done = client.post(f"/u/{token('unsubscribe', sub_id)}", data={"List-Unsubscribe": "One-Click"})
    action = resubscribe_form(done.text)
    assert action == f"../m/{token('manage', sub_id)}"
    # Looking at every page that shows the button changes nothing.
    for page in (f"/u/{token('unsubscribe', sub_id)}", f"/m/{token('manage', sub_id)}"):
        assert resubscribe_form(client.get(page).text) == action
    assert subscriber(store, sub_id).status == "unsubscribed"

    response = client.post(f"/m/{token('manage', sub_id)}", data={"action": "resubscribe"})
    assert response.status_code == 303
    assert response.headers["location"] == "?done=resubscribed"
    found = subscriber(store, sub_id)
    assert (found.status, found.subscribed_at, found.unsubscribed_at) == ("active", NOW, None)
    assert (found.send_hour, found.frequency, found.timezone) == (18, "weekly", "Europe/Berlin")
    assert topics_of(store, sub_id) == ["diffusion models", "kv cache"]
    page = client.get(f"/m/{token('manage', sub_id)}?done=resubscribed").text
    assert "You are subscribed again" in page
    assert 'id="resubscribe"' not in page  # active: nothing to come back to
    # Pressing twice (or a reload that re-posts) is harmless.
    again = client.post(f"/m/{token('manage', sub_id)}", data={"action": "resubscribe"})
    assert again.status_code == 303
    assert subscriber(store, sub_id).subscribed_at == NOW


def test_subscribe_again_needs_no_new_confirmation_under_double_opt_in(store: Store) -> None:
    client = Client(
        store, Settings(web=WebSettings(base_url="https://digest.example.org", double_opt_in=True))
    )
    sub_id = add_subscriber(store, status="unsubscribed")
    response = client.post(f"/m/{token('manage', sub_id)}", data={"action": "resubscribe"})
    assert response.status_code == 303
    found = subscriber(store, sub_id)
    assert (found.status, found.confirmed_at) == ("active", NOW)


def test_a_bounced_address_comes_back_only_by_confirming_again(store: Store) -> None:
    """The mailbox that bounced may be gone, or someone else's now: a manage link from an
    old digest makes it pending and mails a confirmation, never active by itself."""
    mailer = MemoryMailer()
    settings = Settings(web=WebSettings(base_url="https://digest.example.org"))
    client = Client(store, settings, mailer=mailer)
    sub_id = add_subscriber(store, status="bounced")
    with store.transaction() as session:
        session.get_one(Subscriber, sub_id).consecutive_failures = 3
    page = client.get(f"/m/{token('manage', sub_id)}").text
    assert resubscribe_form(page) == f"../m/{token('manage', sub_id)}"
    response = client.post(f"/m/{token('manage', sub_id)}", data={"action": "resubscribe"})
    assert response.status_code == 303
    assert response.headers["location"] == "?done=confirm-sent"
    found = subscriber(store, sub_id)
    assert (found.status, found.consecutive_failures) == ("pending", 0)
    (sent,) = mailer.sent
    assert sent.recipient == "ada@example.org"
    confirm = re.search(rb"/confirm/([\w.-]+)", sent.data)
    assert confirm is not None
    notice = client.get(f"/m/{token('manage', sub_id)}?done=confirm-sent").text
    assert "We sent a confirmation link" in notice
    # pressing again (or another old link) neither confirms nor mails again
    again = client.post(f"/m/{token('manage', sub_id)}", data={"action": "resubscribe"})
    assert again.headers["location"] == "?done=confirm-pending"
    assert subscriber(store, sub_id).status == "pending" and len(mailer.sent) == 1
    # the emailed link does
    assert client.post(f"/confirm/{confirm[1].decode()}").status_code == 200
    assert subscriber(store, sub_id).status == "active"


def test_a_link_from_before_the_unsubscribe_cannot_subscribe_again(
    client: Client, store: Store
) -> None:
    """A forwarded digest's manage or unsubscribe link must not undo its owner's opt-out,
    nor lead to a page with a newer link that would."""
    sub_id = add_subscriber(store)
    old_manage = make_token(
        SECRET, "manage", sub_id, "ada@example.org", issued=NOW - timedelta(days=5)
    )
    old_unsub = make_token(
        SECRET, "unsubscribe", sub_id, "ada@example.org", issued=NOW - timedelta(days=5)
    )
    with store.transaction() as session:
        left = session.get_one(Subscriber, sub_id)
        left.status, left.unsubscribed_at = "unsubscribed", NOW - timedelta(days=1)
    refused = client.post(f"/m/{old_manage}", data={"action": "resubscribe"})
    assert refused.status_code == 400
    assert "older than your unsubscribe" in refused.text
    assert subscriber(store, sub_id).status == "unsubscribed"
    # every page an old link opens carries links no newer than it
    for page in (
        client.get(f"/m/{old_manage}").text,
        client.get(f"/u/{old_unsub}").text,
        client.post(f"/u/{old_unsub}").text,  # already unsubscribed: nothing changes
    ):
        action = resubscribe_form(page)
        assert action == f"../m/{old_manage}"
        assert client.post(action[2:], data={"action": "resubscribe"}).status_code == 400
    assert subscriber(store, sub_id).status == "unsubscribed"


def test_the_page_right_after_unsubscribing_with_an_old_link_can_undo_it(
    client: Client, store: Store
) -> None:
    sub_id = add_subscriber(store)
    old_unsub = make_token(
        SECRET, "unsubscribe", sub_id, "ada@example.org", issued=NOW - timedelta(days=30)
    )
    done = client.post(f"/u/{old_unsub}")
    assert subscriber(store, sub_id).status == "unsubscribed"
    action = resubscribe_form(done.text)
    assert action == f"../m/{token('manage', sub_id)}"  # issued today
    assert client.post(action[2:], data={"action": "resubscribe"}).status_code == 303
    assert subscriber(store, sub_id).status == "active"


def test_subscribe_again_with_a_bad_token_is_the_generic_404(client: Client, store: Store) -> None:
    sub_id = add_subscriber(store, status="unsubscribed")
    for bad in _bad_tokens(sub_id).values():
        response = client.post(f"/m/{bad}", data={"action": "resubscribe"})
        assert response.status_code == 404
    # nor does the unsubscribe token of the address work on the manage route
    wrong = client.post(f"/m/{token('unsubscribe', sub_id)}", data={"action": "resubscribe"})
    assert wrong.status_code == 404
    assert subscriber(store, sub_id).status == "unsubscribed"


# --- confirm ---


def test_confirm_get_asks_and_post_confirms(client: Client, store: Store) -> None:
    sub_id = add_subscriber(store, status="pending")
    link = f"/confirm/{token('confirm', sub_id)}"
    page = client.get(link)
    assert page.status_code == 200
    assert "ada@example.org" in page.text and "<button" in page.text
    assert subscriber(store, sub_id).status == "pending"
    response = client.post(link)
    assert response.status_code == 200
    assert "You are subscribed" in response.text
    found = subscriber(store, sub_id)
    assert (found.status, found.confirmed_at) == ("active", NOW)
    # The link keeps working, without asking again.
    again = client.get(link)
    assert "You are subscribed" in again.text and "<button" not in again.text


def test_confirming_an_unsubscribed_address_does_not_resubscribe(
    client: Client, store: Store
) -> None:
    sub_id = add_subscriber(store, status="unsubscribed")
    response = client.post(f"/confirm/{token('confirm', sub_id)}")
    assert response.status_code == 200
    assert "unsubscribed" in response.text
    assert subscriber(store, sub_id).status == "unsubscribed"
    # it offers the explicit way back instead (a button, not the confirm link itself)
    assert resubscribe_form(response.text) == f"../m/{token('manage', sub_id)}"


# --- manage ---


def manage(
    client: Client, sub_id: int, email: str = "ada@example.org", **form: str
) -> httpx.Response:
    link = f"/m/{token('manage', sub_id, email)}"
    return client.post(link, data=form) if form else client.get(link)


def test_manage_page_lists_topics_and_schedule(client: Client, store: Store) -> None:
    sub_id = add_subscriber(store, topics=("diffusion models", '"flow matching" OR rectified'))
    response = manage(client, sub_id)
    assert response.status_code == 200
    assert "ada@example.org" in response.text
    assert "<code>diffusion models</code>" in response.text
    assert "<code>&#34;flow matching&#34; OR rectified</code>" in response.text
    assert '<option value="8" selected>08:00</option>' in response.text
    assert "<option selected>UTC</option>" in response.text
    assert "<script" not in response.text


def filter_hint(page: str) -> str:
    """The text of the manage page's hint under "Add a topic", tags removed."""
    found = re.search(r'<p class="muted hint" id="filter-hint">(.*?)</p>', page, re.S)
    assert found is not None, "no filter hint on the page"
    return html.unescape(re.sub(r"<[^>]+>", "", found[1]))


def test_manage_hint_tells_the_real_matching_rules(client: Client, store: Store) -> None:
    """Bare words match loosely (docs/filters.md), so the hint must not promise otherwise,
    and must name the ways to be strict."""
    sub_id = add_subscriber(store)
    hint = filter_hint(manage(client, sub_id).text)
    assert "must all appear" not in hint.lower()
    assert "loosely" in hint
    for syntax in ('"exact phrase"', "+word", "AND", "-word", "OR", "title:", "author:", "cat:"):
        assert syntax in hint, syntax
    # what the hint shows can be typed as it is
    for typed in (
        '"exact phrase" +word',
        "word AND other -video",
        "title:word OR author:word",
        "cat:cs.CL word",
    ):
        assert manage(client, sub_id, action="add", query=typed).status_code == 303, typed


def test_add_a_topic_then_see_it(client: Client, store: Store) -> None:
    sub_id = add_subscriber(store)
    response = manage(client, sub_id, action="add", query="  kv cache  ")
    assert response.status_code == 303
    assert response.headers["location"] == "?done=added"
    assert topics_of(store, sub_id) == ["diffusion models", "kv cache"]
    page = client.get(f"/m/{token('manage', sub_id)}?done=added")
    assert "Topic added." in page.text and "<code>kv cache</code>" in page.text


def test_a_bad_topic_is_refused_inline_and_escaped(client: Client, store: Store) -> None:
    sub_id = add_subscriber(store)
    typed = '"<script>alert(1)</script>'
    response = manage(client, sub_id, action="add", query=typed)
    assert response.status_code == 400
    assert topics_of(store, sub_id) == ["diffusion models"]
    assert "<script>" not in response.text
    assert re.search(r'<pre class="error" role="alert">[^<]+</pre>', response.text)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text  # kept in the field
    assert 'value="&#34;&lt;script&gt;' in response.text


def test_a_category_alternative_without_words_is_refused_with_the_way_out(
    client: Client, store: Store
) -> None:
    sub_id = add_subscriber(store)
    response = manage(client, sub_id, action="add", query="cat:cs.CL OR retrieval")
    assert response.status_code == 400
    assert "a topic of its own" in html.unescape(response.text)
    assert topics_of(store, sub_id) == ["diffusion models"]


def test_user_supplied_topics_are_escaped_on_the_manage_page(client: Client, store: Store) -> None:
    hostile = '<img src=x onerror=alert(1)> "x" & <b>'
    sub_id = add_subscriber(store, topics=(hostile,))
    with store.transaction() as session:
        topic = session.scalars(select(Topic).where(Topic.subscriber_id == sub_id)).one()
        topic.label = "</code><script>alert(2)</script>"
    page = manage(client, sub_id).text
    assert "<img" not in page and "<script>" not in page and "<b>" not in page
    assert html.escape(hostile) in page.replace("&#34;", "&quot;").replace("&#39;", "&#x27;")
    assert "&lt;/code&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in page


def test_remove_a_topic(client: Client, store: Store) -> None:
    sub_id = add_subscriber(store, topics=("diffusion models", "kv cache"))
    with store.transaction() as session:
        topic_id = session.scalars(select(Topic.id).where(Topic.query == "kv cache")).one()
    response = manage(client, sub_id, action="remove", topic_id=str(topic_id))
    assert response.status_code == 303
    assert topics_of(store, sub_id) == ["diffusion models"]


def test_cannot_remove_another_subscribers_topic(client: Client, store: Store) -> None:
    ada = add_subscriber(store)
    bob = add_subscriber(store, "bob@example.org", topics=("kv cache",))
    with store.transaction() as session:
        bobs_topic = session.scalars(select(Topic.id).where(Topic.subscriber_id == bob)).one()
    response = manage(client, ada, action="remove", topic_id=str(bobs_topic))
    assert response.status_code == 400
    assert topics_of(store, bob) == ["kv cache"]


def test_change_the_schedule(client: Client, store: Store) -> None:
    sub_id = add_subscriber(store)
    response = manage(
        client,
        sub_id,
        action="schedule",
        frequency="weekly",
        weekday="fri",
        send_hour="18",
        timezone="Europe/Berlin",
        max_papers="5",
    )
    assert response.status_code == 303
    found = subscriber(store, sub_id)
    assert (found.frequency, found.weekday, found.send_hour, found.timezone, found.max_papers) == (
        "weekly",
        4,
        18,
        "Europe/Berlin",
        5,
    )
    page = client.get(f"/m/{token('manage', sub_id)}?done=schedule").text
    assert '<option value="fri" selected>Friday</option>' in page
    assert "<option selected>Europe/Berlin</option>" in page
    assert "Schedule saved." in page


def test_a_bad_schedule_is_refused_and_changes_nothing(client: Client, store: Store) -> None:
    sub_id = add_subscriber(store)
    response = manage(
        client,
        sub_id,
        action="schedule",
        frequency="daily",
        weekday="mon",
        send_hour="25",
        timezone="UTC",
        max_papers="10",
    )
    assert response.status_code == 400
    assert 'role="alert"' in response.text
    assert subscriber(store, sub_id).send_hour == 8


def test_pause_for_n_days_and_resume(client: Client, store: Store) -> None:
    sub_id = add_subscriber(store)
    assert manage(client, sub_id, action="pause", days="14").status_code == 303
    assert subscriber(store, sub_id).paused_until == NOW + timedelta(days=14)
    page = manage(client, sub_id).text
    assert "Paused until Sunday 6 December 2026" in page
    assert manage(client, sub_id, action="resume").status_code == 303
    found = subscriber(store, sub_id).paused_until
    assert found is None or found <= NOW
    assert "Paused until" not in manage(client, sub_id).text


@pytest.mark.parametrize("days", ["0", "-3", "1000", "soon"])
def test_pause_refuses_odd_durations(client: Client, store: Store, days: str) -> None:
    sub_id = add_subscriber(store)
    response = manage(client, sub_id, action="pause", days=days)
    assert response.status_code == 400
    assert subscriber(store, sub_id).paused_until is None


def test_unknown_action_is_refused(client: Client, store: Store) -> None:
    sub_id = add_subscriber(store)
    response = manage(client, sub_id, action="drop-tables")
    assert response.status_code == 400
    assert "unknown action" in response.text


def test_notice_comes_from_a_fixed_list(client: Client, store: Store) -> None:
    sub_id = add_subscriber(store)
    page = client.get(f"/m/{token('manage', sub_id)}?done=<script>alert(1)</script>").text
    assert "<script>" not in page and "alert(1)" not in page


def test_manage_page_links_to_unsubscribe(client: Client, store: Store) -> None:
    sub_id = add_subscriber(store)
    page = manage(client, sub_id).text
    assert f'href="../u/{token("unsubscribe", sub_id)}"' in page


def test_serve_stops_at_startup_when_the_secret_file_is_unusable(
    cli: CliRunner, config_file: Path, tmp_path: Path
) -> None:
    (tmp_path / "not-a-dir").write_text("")
    with config_file.open("a") as handle:
        handle.write(f'[web]\nsecret_file = "{tmp_path / "not-a-dir" / "secret"}"\n')
    code, _, err = invoke(cli, "serve", "--port", "1")
    assert code == 3
    assert "web.secret_file" in err


def test_serve_trusts_forwarded_headers_from_web_trusted_proxies(
    cli: CliRunner, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    seen: list[uvicorn.Config] = []

    def fake_run(server: uvicorn.Server, sockets: list[Any] | None = None) -> None:
        seen.append(server.config)
        for sock in sockets or []:
            sock.close()

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    monkeypatch.setenv("DIGEST_WEB__TRUSTED_PROXIES", "172.16.0.0/12")
    import socket

    with socket.socket() as probe:  # a port free on loopback for the moment
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, err = invoke(cli, "serve", "--port", str(port))
    assert code == 0, err
    (config,) = seen
    assert config.forwarded_allow_ips == "172.16.0.0/12"


def test_other_methods_and_oversized_forms_are_refused(client: Client, store: Store) -> None:
    sub_id = add_subscriber(store)
    put = client.request("PUT", f"/u/{token('unsubscribe', sub_id)}")
    assert put.status_code == 405
    assert "Something went wrong (405)" in put.text
    huge = manage(client, sub_id, action="add", query="x" * 20_000)
    assert huge.status_code == 413
    assert topics_of(store, sub_id) == ["diffusion models"]
    assert subscriber(store, sub_id).status == "active"


def test_every_page_is_well_formed_html(client: Client, store: Store) -> None:
    import html5lib

    sub_id = add_subscriber(store, status="pending", topics=("a <b> & c", "diffusion"))
    pages = [
        client.get(f"/u/{token('unsubscribe', sub_id)}"),
        client.get(f"/m/{token('manage', sub_id)}"),
        manage(client, sub_id, action="add", query="(unclosed"),
        client.get(f"/confirm/{token('confirm', sub_id)}"),
        client.post(f"/confirm/{token('confirm', sub_id)}"),
        client.get("/u/no.such"),
        client.request("PUT", "/m/no.such"),
        client.post(f"/u/{token('unsubscribe', sub_id)}"),
        client.get(f"/u/{token('unsubscribe', sub_id)}"),
    ]
    for response in pages:
        html5lib.HTMLParser(strict=True).parse(response.text)  # raises on a parse error
        assert '<meta name="viewport"' in response.text


def test_every_response_says_nosniff_errors_included(client: Client, store: Store) -> None:
    """Starlette's own answers (bad form bodies, wrong methods, unknown paths) too."""
    link = token("manage", add_subscriber(store))
    responses = [
        client.get("/healthz"),
        client.get("/no/such/page"),
        client.request("PUT", f"/u/{link}"),
        client.post(
            f"/m/{link}",
            content=b"--x\r\nbroken",
            headers={"content-type": "multipart/form-data; boundary=x"},
        ),
        client.post(f"/m/{link}", content=b"a" * 100_000),
    ]
    assert sorted({r.status_code for r in responses}) == [200, 400, 404, 405, 413]
    for response in responses:
        assert response.headers.get("x-content-type-options") == "nosniff", response.status_code
