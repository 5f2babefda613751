""" "More like this / less like this" links and the manage page's votes, over HTTP.

Digests are planned by the real planner on a real store, and the links are the
ones the email carries (`views_for_digests`), so these tests click what a
reader would click.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import delete, func, select

from digest.config import Settings, WebSettings
from digest.links import vote_token
from digest.outbox.build import views_for_digests
from digest.planner import plan_due
from digest.store.database import Store
from digest.store.schema import Digest, DigestItem, Paper, Subscriber, Topic, Vote
from digest.subscribers.votes import cast_vote
from tests.plan_factories import T0, add_dump, add_subscriber, days, settings_for
from tests.test_web import NOW, SECRET, Client, token

BASE = "https://digest.example.org"
SETTINGS = Settings(web=WebSettings(base_url=BASE))
DIFFUSION = "Latent Diffusion with Sparse Attention"
KV_CACHE = "Eviction Policies for the KV Cache of Long Contexts"
OFF_TOPIC = "Graph Neural Networks for Molecule Property Prediction"
KV_LABEL = "Serving LLMs"


@dataclass(frozen=True)
class Sent:
    """A planned digest of ada's and the links under its papers, as the email has them."""

    subscriber_id: int
    digest_id: int
    papers: dict[str, int]  # title → paper id, the off-topic paper (not in the digest) too
    topics: dict[int, int]  # paper id → topic id of its digest item
    more: dict[str, str]  # title → "/more/<token>"
    less: dict[str, str]  # title → "/less/<token>"


def plan(store: Store, database_url: str, emails: tuple[str, ...]) -> dict[str, int]:
    """Each subscriber's digest id, planned at T0 from one dump."""
    papers = add_dump(store, T0 - days(1), [DIFFUSION, KV_CACHE, OFF_TOPIC])
    assert set(papers) == {DIFFUSION, KV_CACHE, OFF_TOPIC}
    for address in emails:
        add_subscriber(store, address, ("diffusion", "kv cache"), labels=(None, KV_LABEL))
    with store.sessions() as session:
        report = plan_due(session, settings_for(database_url), now=T0)
    ids = {p.email: p.digest_id for p in report.planned}
    assert set(ids) == set(emails) and all(ids.values())
    return {address: digest_id for address, digest_id in ids.items() if digest_id is not None}


def links_of(store: Store, digest_id: int) -> tuple[dict[str, str], dict[str, str]]:
    """(title → more path, title → less path) of a digest, from its email's view."""
    with store.sessions() as session:
        view = views_for_digests(session, [digest_id], SETTINGS, SECRET)[digest_id]
    more = {c.title: (c.more_url or "").removeprefix(BASE) for c in view.papers}
    less = {c.title: (c.less_url or "").removeprefix(BASE) for c in view.papers}
    return more, less


@pytest.fixture
def sent(store: Store, database_url: str) -> Sent:
    """ada's digest with the diffusion and the KV cache paper; bob got the same papers."""
    digests = plan(store, database_url, ("ada@example.org", "bob@example.org"))
    digest_id = digests["ada@example.org"]
    with store.sessions() as session:
        papers = dict(session.execute(select(Paper.title, Paper.id)).tuples().all())
        topics = dict(
            session.execute(
                select(DigestItem.paper_id, DigestItem.topic_id).where(
                    DigestItem.digest_id == digest_id
                )
            )
            .tuples()
            .all()
        )
        subscriber_id = session.scalars(
            select(Digest.subscriber_id).where(Digest.id == digest_id)
        ).one()
    assert set(topics) == {papers[DIFFUSION], papers[KV_CACHE]}
    more, less = links_of(store, digest_id)
    return Sent(
        subscriber_id=subscriber_id,
        digest_id=digest_id,
        papers=papers,
        topics={paper: topic for paper, topic in topics.items() if topic is not None},
        more=more,
        less=less,
    )


@pytest.fixture
def client(store: Store) -> Client:
    return Client(store, SETTINGS)


def votes_in(store: Store) -> list[tuple[int, int, int, int]]:
    """Every vote row: (subscriber, paper, topic, vote)."""
    with store.sessions() as session:
        return list(
            session.execute(
                select(Vote.subscriber_id, Vote.paper_id, Vote.topic_id, Vote.vote).order_by(
                    Vote.subscriber_id, Vote.paper_id
                )
            ).tuples()
        )


def vote_count(store: Store) -> int:
    with store.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Vote)) or 0)


def topic_of(store: Store, topic_id: int) -> str:
    with store.sessions() as session:
        topic = session.get(Topic, topic_id)
        assert topic is not None
        return topic.label or topic.query


def not_found_page(client: Client) -> str:
    page = client.get("/u/forged.token")
    assert page.status_code == 404
    return page.text


# --- GET: look, never write ---


@pytest.mark.parametrize("link", ["more", "less"])
def test_get_shows_the_paper_its_topic_and_one_button_and_writes_nothing(
    client: Client, store: Store, sent: Sent, link: str
) -> None:
    path = (sent.more if link == "more" else sent.less)[KV_CACHE]
    assert path.startswith(f"/{link}/")
    for _ in range(3):  # a link scanner prefetching, then the person looking
        response = client.get(path)
        assert response.status_code == 200
        assert KV_CACHE in response.text
        assert KV_LABEL in response.text  # the topic that brought the paper, by its label
        assert response.text.count("<button") == 1
        button = "More like this" if link == "more" else "Less like this"
        assert re.search(
            rf'<form method="post">\s*<button[^>]*>{button}</button>', response.text
        ), response.text
        assert "<script" not in response.text
    assert client.request("HEAD", path).status_code == 200
    assert vote_count(store) == 0


# --- POST: record, replace, undo ---


def test_post_records_the_vote_for_the_topic_that_brought_the_paper(
    client: Client, store: Store, sent: Sent
) -> None:
    paper = sent.papers[KV_CACHE]
    topic = sent.topics[paper]
    assert topic_of(store, topic) == KV_LABEL  # the second topic: not just "the first one"
    response = client.post(sent.less[KV_CACHE])
    assert response.status_code == 200
    assert (
        f"Papers like this will rank lower in <strong>{KV_LABEL}</strong>, "
        "and this one will not be sent again." in response.text
    )
    assert re.search(
        r'<form method="post">\s*<input type="hidden" name="undo" value="1">\s*'
        r"<button[^>]*>Undo</button>",
        response.text,
    )
    assert votes_in(store) == [(sent.subscriber_id, paper, topic, -1)]
    with store.sessions() as session:
        row = session.get(Vote, (sent.subscriber_id, paper, topic))
        assert row is not None and row.voted_at == NOW


def test_the_opposite_link_replaces_the_vote_and_undo_removes_it(
    client: Client, store: Store, sent: Sent
) -> None:
    paper = sent.papers[DIFFUSION]
    topic = sent.topics[paper]
    assert client.post(sent.less[DIFFUSION]).status_code == 200
    again = client.post(sent.less[DIFFUSION])  # a reload: harmless
    assert again.status_code == 200
    assert votes_in(store) == [(sent.subscriber_id, paper, topic, -1)]
    more = client.post(sent.more[DIFFUSION])
    assert more.status_code == 200
    assert "Papers like this will rank higher in <strong>diffusion</strong>." in more.text
    assert votes_in(store) == [(sent.subscriber_id, paper, topic, 1)]
    undone = client.post(sent.more[DIFFUSION], data={"undo": "1"})
    assert undone.status_code == 200
    assert "Vote undone" in undone.text
    assert re.search(r'<form method="post">\s*<button[^>]*>More like this</button>', undone.text)
    assert "undo" not in undone.text.lower().split("</h1>", 1)[1]  # no Undo of the Undo
    assert votes_in(store) == []


def test_votes_stay_per_paper_and_an_unsubscribed_reader_may_still_vote(
    client: Client, store: Store, sent: Sent
) -> None:
    with store.transaction() as session:
        subscriber = session.get(Subscriber, sent.subscriber_id)
        assert subscriber is not None
        subscriber.status = "unsubscribed"
    assert client.post(sent.more[DIFFUSION]).status_code == 200
    assert client.post(sent.less[KV_CACHE]).status_code == 200
    diffusion, kv = sent.papers[DIFFUSION], sent.papers[KV_CACHE]
    assert votes_in(store) == sorted(
        [
            (sent.subscriber_id, diffusion, sent.topics[diffusion], 1),
            (sent.subscriber_id, kv, sent.topics[kv], -1),
        ]
    )


# --- bad links: the generic 404, and nothing written ---


def _with_part(path: str, index: int, value: str) -> str:
    head, _, tok = path.rpartition("/")
    parts = tok.split(".")
    parts[index] = value
    return f"{head}/{'.'.join(parts)}"


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if number == 0:
            return out


def bad_links(sent: Sent, bobs_digest: int) -> dict[str, str]:
    good = sent.less[KV_CACHE]
    tok = good.rpartition("/")[2]
    kv, diffusion, off = (sent.papers[t] for t in (KV_CACHE, DIFFUSION, OFF_TOPIC))
    day = int(tok.split(".")[2], 36)
    max_age = SETTINGS.web.link_max_age_days
    return {
        "forged mac": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        # bob's digest holds the same paper: only the MAC tells the ids apart
        "altered digest id": _with_part(good, 0, _base36(bobs_digest)),
        "altered paper id": _with_part(good, 1, _base36(diffusion)),
        "altered day": _with_part(good, 2, _base36(day - 1)),
        "more token on the less path": "/less/" + sent.more[KV_CACHE].rpartition("/")[2],
        "less token on the more path": "/more/" + tok,
        "paper not in the digest": "/less/"
        + vote_token(SECRET, "less", sent.digest_id, off, "ada@example.org", issued=T0),
        "another subscriber's address": "/less/"
        + vote_token(SECRET, "less", sent.digest_id, kv, "bob@example.org", issued=T0),
        "expired": "/less/"
        + vote_token(
            SECRET,
            "less",
            sent.digest_id,
            kv,
            "ada@example.org",
            issued=NOW - timedelta(days=max_age + 1),
        ),
        "other secret": "/less/"
        + vote_token(b"rotated", "less", sent.digest_id, kv, "ada@example.org", issued=T0),
        "unknown digest": "/less/"
        + vote_token(SECRET, "less", sent.digest_id + 1000, kv, "ada@example.org", issued=T0),
        "a manage token": f"/less/{token('manage', sent.subscriber_id)}",
        "non-canonical id": _with_part(good, 0, "0" + tok.split(".")[0]),
        "non-canonical day": _with_part(good, 2, "0" + tok.split(".")[2]),
        "upper-case day": _with_part(good, 2, tok.split(".")[2].upper()),
        "huge id": _with_part(good, 0, "zzzzzzzzzzzz"),
        "garbage": "/less/%3Cscript%3E",
        "too many parts": good + ".x",
    }


BAD_LINKS = (
    "forged mac",
    "altered digest id",
    "altered paper id",
    "altered day",
    "more token on the less path",
    "less token on the more path",
    "paper not in the digest",
    "another subscriber's address",
    "expired",
    "other secret",
    "unknown digest",
    "a manage token",
    "non-canonical id",
    "non-canonical day",
    "upper-case day",
    "huge id",
    "garbage",
    "too many parts",
)


@pytest.mark.parametrize("name", BAD_LINKS)
def test_a_bad_vote_link_gets_the_generic_404_and_writes_nothing(
    client: Client, store: Store, sent: Sent, name: str
) -> None:
    with store.sessions() as session:
        bobs = session.scalars(
            select(Digest.id).join(Subscriber).where(Subscriber.email == "bob@example.org")
        ).one()
    links = bad_links(sent, bobs)
    assert sorted(links) == sorted(BAD_LINKS)
    generic = not_found_page(client)
    assert client.get(sent.less[KV_CACHE]).status_code == 200  # the link itself is good
    for method, form in (("GET", None), ("POST", None), ("POST", {"undo": "1"})):
        response = client.request(method, links[name], data=form)
        assert (response.status_code, response.text) == (404, generic), (method, form)
    assert vote_count(store) == 0


def test_a_link_at_the_age_limit_still_works(client: Client, store: Store, sent: Sent) -> None:
    """So the expired case above fails on the age alone."""
    kv = sent.papers[KV_CACHE]
    oldest = NOW - timedelta(days=SETTINGS.web.link_max_age_days)
    tok = vote_token(SECRET, "less", sent.digest_id, kv, "ada@example.org", issued=oldest)
    assert client.post(f"/less/{tok}").status_code == 200
    assert votes_in(store) == [(sent.subscriber_id, kv, sent.topics[kv], -1)]


def test_a_vote_link_is_useless_elsewhere(client: Client, store: Store, sent: Sent) -> None:
    tok = sent.less[KV_CACHE].rpartition("/")[2]
    for path in ("/u/{}", "/confirm/{}", "/m/{}", "/d/{}"):
        assert client.get(path.format(tok)).status_code == 404, path
    assert client.post(f"/u/{tok}").status_code == 404
    with store.sessions() as session:
        subscriber = session.get(Subscriber, sent.subscriber_id)
        assert subscriber is not None and subscriber.status == "active"


def test_a_removed_topic_or_subscriber_turns_the_link_into_a_404(
    client: Client, store: Store, sent: Sent
) -> None:
    generic = not_found_page(client)
    kv = sent.papers[KV_CACHE]
    with store.transaction() as session:
        topic = session.get(Topic, sent.topics[kv])
        assert topic is not None
        session.delete(topic)  # the digest item keeps the paper, with no topic
    for method in ("GET", "POST"):
        response = client.request(method, sent.less[KV_CACHE])
        assert (response.status_code, response.text) == (404, generic), method
    assert client.get(sent.less[DIFFUSION]).status_code == 200  # its topic is still there
    with store.transaction() as session:
        session.execute(delete(Subscriber).where(Subscriber.id == sent.subscriber_id))
    response = client.post(sent.less[DIFFUSION])
    assert (response.status_code, response.text) == (404, generic)
    assert vote_count(store) == 0


def test_an_oversized_vote_form_is_refused(client: Client, store: Store, sent: Sent) -> None:
    response = client.post(sent.less[KV_CACHE], data={"undo": "0", "pad": "x" * 20_000})
    assert response.status_code == 413
    assert vote_count(store) == 0


def test_titles_are_escaped_on_the_vote_pages(client: Client, store: Store, sent: Sent) -> None:
    with store.transaction() as session:
        paper = session.get(Paper, sent.papers[KV_CACHE])
        assert paper is not None
        paper.title = "KV <script>alert(1)</script> & you"
    for response in (client.get(sent.less[KV_CACHE]), client.post(sent.less[KV_CACHE])):
        assert "<script>" not in response.text
        assert "KV &lt;script&gt;alert(1)&lt;/script&gt; &amp; you" in response.text


def test_vote_pages_are_well_formed_html(client: Client, store: Store, sent: Sent) -> None:
    import html5lib

    pages = [
        client.get(sent.more[DIFFUSION]),
        client.post(sent.more[DIFFUSION]),
        client.post(sent.more[DIFFUSION], data={"undo": "1"}),
        client.get(sent.less[KV_CACHE]),
        client.post(sent.less[KV_CACHE]),
        client.get(f"/m/{token('manage', sent.subscriber_id)}"),
    ]
    for response in pages:
        assert response.status_code == 200
        html5lib.HTMLParser(strict=True).parse(response.text)  # raises on a parse error


# --- the manage page's votes ---


def manage(client: Client, sub_id: int, **form: str) -> httpx.Response:
    link = f"/m/{token('manage', sub_id)}"
    return client.post(link, data=form) if form else client.get(link)


def test_manage_page_lists_votes_with_remove_and_reset(
    client: Client, store: Store, sent: Sent
) -> None:
    empty = manage(client, sent.subscriber_id).text
    assert "Your votes" in empty and "No votes yet" in empty and "reset-votes" not in empty
    client.post(sent.more[DIFFUSION])
    client.post(sent.less[KV_CACHE])
    page = manage(client, sent.subscriber_id).text
    assert "No votes yet" not in page
    assert re.search(r"More like this · diffusion</span>\s*" + re.escape(DIFFUSION), page)
    assert re.search(rf"Less like this · {KV_LABEL}</span>\s*" + re.escape(KV_CACHE), page)
    assert page.count('value="remove-vote"') == 2
    assert 'value="reset-votes"' in page


def test_remove_one_vote_then_reset_all(client: Client, store: Store, sent: Sent) -> None:
    diffusion, kv = sent.papers[DIFFUSION], sent.papers[KV_CACHE]
    client.post(sent.more[DIFFUSION])
    client.post(sent.less[KV_CACHE])
    response = manage(
        client,
        sent.subscriber_id,
        action="remove-vote",
        paper_id=str(diffusion),
        topic_id=str(sent.topics[diffusion]),
    )
    assert response.status_code == 303
    assert response.headers["location"] == "?done=vote-removed"
    assert votes_in(store) == [(sent.subscriber_id, kv, sent.topics[kv], -1)]
    page = client.get(f"/m/{token('manage', sent.subscriber_id)}?done=vote-removed").text
    assert "Vote removed." in page and DIFFUSION not in page and KV_CACHE in page
    response = manage(client, sent.subscriber_id, action="reset-votes", confirm="yes")
    assert response.status_code == 303
    assert response.headers["location"] == "?done=votes-reset"
    assert votes_in(store) == []
    page = client.get(f"/m/{token('manage', sent.subscriber_id)}?done=votes-reset").text
    assert "All votes removed." in page and "No votes yet" in page


def test_reset_leaves_other_subscribers_votes(client: Client, store: Store, sent: Sent) -> None:
    with store.transaction() as session:
        bob = session.scalars(select(Subscriber).where(Subscriber.email == "bob@example.org")).one()
        paper = session.get(Paper, sent.papers[KV_CACHE])
        assert paper is not None
        cast_vote(session, bob, paper, bob.topics[1], "down", now=NOW)
        bob_id = bob.id
    client.post(sent.less[KV_CACHE])
    reset = manage(client, sent.subscriber_id, action="reset-votes", confirm="yes")
    assert reset.status_code == 303
    assert [row[0] for row in votes_in(store)] == [bob_id]


def test_reset_without_the_box_ticked_removes_nothing(
    client: Client, store: Store, sent: Sent
) -> None:
    """Reset takes every vote at once; a press without the confirming tick is refused."""
    client.post(sent.more[DIFFUSION])
    client.post(sent.less[KV_CACHE])
    page = manage(client, sent.subscriber_id).text
    assert re.search(r'<input type="checkbox" name="confirm" value="yes" required', page)
    assert "remove all 2 votes" in page
    response = manage(client, sent.subscriber_id, action="reset-votes")
    assert response.status_code == 400
    assert "tick the box to confirm; no vote was removed" in response.text
    assert len(votes_in(store)) == 2


def test_a_vote_link_opened_again_says_the_vote_is_in_and_offers_undo(
    client: Client, store: Store, sent: Sent
) -> None:
    client.post(sent.less[KV_CACHE])
    again = client.get(sent.less[KV_CACHE])  # days later, from the same email
    assert again.status_code == 200
    assert "Already noted" in again.text
    assert re.search(r'name="undo" value="1">\s*<button[^>]*>Undo</button>', again.text)
    assert "Less like this</button>" not in again.text
    other = client.get(sent.more[KV_CACHE])  # the opposite link: asks, and says what it replaces
    assert "More papers like this?" in other.text
    assert 'You said "Less like this" about it before; this replaces it.' in other.text
    assert len(votes_in(store)) == 1


@pytest.mark.parametrize(
    "case",
    [
        "another subscriber's vote",
        "a paper not voted on",
        "not a number",
        "a number too large for an id",
        "a digit that is not 0-9",
        "no paper",
    ],
)
def test_removing_a_vote_that_is_not_yours_is_refused(
    client: Client, store: Store, sent: Sent, case: str
) -> None:
    kv, diffusion = sent.papers[KV_CACHE], sent.papers[DIFFUSION]
    with store.transaction() as session:
        bob = session.scalars(select(Subscriber).where(Subscriber.email == "bob@example.org")).one()
        paper = session.get(Paper, kv)
        assert paper is not None
        cast_vote(session, bob, paper, bob.topics[1], "down", now=NOW)
        bobs_topic = bob.topics[1].id
    client.post(sent.less[KV_CACHE])
    before = votes_in(store)
    form = {
        "another subscriber's vote": {"paper_id": str(kv), "topic_id": str(bobs_topic)},
        "a paper not voted on": {"paper_id": str(diffusion), "topic_id": str(sent.topics[kv])},
        "not a number": {"paper_id": "x", "topic_id": str(sent.topics[kv])},
        "a number too large for an id": {
            "paper_id": "99999999999999999999",
            "topic_id": str(sent.topics[kv]),
        },
        "a digit that is not 0-9": {"paper_id": "²", "topic_id": str(sent.topics[kv])},
        "no paper": {"topic_id": str(sent.topics[kv])},
    }[case]
    response = manage(client, sent.subscriber_id, action="remove-vote", **form)
    assert response.status_code == 400
    assert re.search(r'id="votes".*<pre class="error" role="alert">', response.text, re.S)
    assert votes_in(store) == before
