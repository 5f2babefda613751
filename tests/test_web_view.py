"""View in browser: GET /d/{token} shows a recorded digest as it was sent."""

from __future__ import annotations

from datetime import timedelta

from digest.config import Settings, WebSettings
from digest.email.render import Renderer
from digest.outbox import view_for_digest
from digest.store.database import Store
from digest.store.schema import DigestItem, Paper
from tests.test_web import NOW, SECRET, Client, add_digest, add_subscriber, token

SETTINGS = Settings(web=WebSettings(base_url="https://digest.example.org"))


def add_papers(store: Store, digest_id: int) -> None:
    with store.transaction() as session:
        titles = ["Flow matching for <script>alert(1)</script> fun", "KV cache eviction & you"]
        for rank, title in enumerate(titles, start=1):
            paper = Paper(
                key=f"key-{rank}",
                arxiv_id=f"2611.0000{rank}",
                title=title,
                abstract="An abstract.",
                authors=["A. Author"],
                url=None,
                first_seen=NOW - timedelta(days=1),
            )
            session.add(paper)
            session.flush()
            session.add(
                DigestItem(
                    digest_id=digest_id,
                    paper_id=paper.id,
                    rank=rank,
                    score=2.0 / rank,
                    topic_label="diffusion models",
                )
            )


def test_view_shows_the_digest_as_rendered_for_the_email(store: Store) -> None:
    client = Client(store, SETTINGS)
    sub_id = add_subscriber(store)
    digest_id = add_digest(store, sub_id, "sent", "2026-11-21")
    add_papers(store, digest_id)
    response = client.get(f"/d/{token('view', digest_id)}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "KV cache eviction &amp; you" in response.text
    assert "<script>alert(1)</script>" not in response.text
    with store.transaction() as session:
        expected = Renderer(SETTINGS).html(view_for_digest(session, digest_id, SETTINGS, SECRET))
    assert response.text == expected


def test_a_view_token_for_another_digest_or_address_is_refused(store: Store) -> None:
    client = Client(store, SETTINGS)
    ada = add_subscriber(store)
    bob = add_subscriber(store, "bob@example.org")
    adas = add_digest(store, ada, "sent", "2026-11-21")
    bobs = add_digest(store, bob, "sent", "2026-11-21")
    assert client.get(f"/d/{token('view', bobs)}").status_code == 404  # made for ada's address
    assert client.get(f"/d/{token('view', bobs, 'bob@example.org')}").status_code == 200
    assert client.get(f"/d/{token('view', adas + 100)}").status_code == 404
