"""Digest rows and unsaved plans → DigestView: cards, links, stable renders."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from digest.config import SenderSettings, WebSettings
from digest.errors import BadInput
from digest.links import verify_token
from digest.outbox import paper_url, view_for_digest, view_for_plan
from digest.planner import plan_due
from digest.store.database import Store
from tests.plan_factories import T0, add_dump, add_subscriber, days, settings_for

SECRET = b"test-secret-0123456789abcdefghijklmnop"
ARXIV_PAPER = "Diffusion Models for Video Generation"
TITLE_ONLY = "Latent Diffusion & Sparse Attention: 100% faster?"


def test_paper_url() -> None:
    assert paper_url("2611.00001", "x") == "https://arxiv.org/abs/2611.00001"
    assert paper_url(None, "KV cache & more") == "https://huggingface.co/papers?q=KV+cache+%26+more"


def test_view_of_a_recorded_digest(store: Store, database_url: str) -> None:
    settings = settings_for(database_url)
    settings = replace(
        settings,
        web=WebSettings(base_url="https://digest.example.org/"),
        sender=SenderSettings(address="papers@example.org"),
    )
    sub = add_subscriber(
        store, "ada@example.org", topics=("diffusion", "graph neural"), labels=("Diffusion", None)
    )
    add_dump(store, T0 - days(2), [(ARXIV_PAPER, "2611.00001", 3)])
    add_dump(store, T0 - days(1), [(ARXIV_PAPER, "2611.00001", 40), (TITLE_ONLY, None, None)])
    with store.sessions() as session:
        # the same plan, unsaved: what a preview renders (a recorded plan keeps no picks)
        unsaved = plan_due(session, settings, now=T0, dry_run=True).planned[0]
    with store.sessions() as session:
        report = plan_due(session, settings, now=T0)
    planned = report.planned[0]
    assert planned.digest_id is not None
    # A newer dump after planning must not change what a retry renders.
    add_dump(store, T0 + timedelta(hours=1), [(ARXIV_PAPER, "2611.00001", 999)])
    with store.sessions() as session:
        view = view_for_digest(session, planned.digest_id, settings, SECRET)
        again = view_for_digest(session, planned.digest_id, settings, SECRET)
        preview = view_for_plan(session, unsaved, settings, SECRET)
    assert view == again
    assert view.email == "ada@example.org"
    assert view.period == "2026-11-22"
    assert view.issued_at == T0
    assert view.message_id == planned.message_id
    assert view.topics == ("Diffusion", "graph neural")
    assert {card.title for card in view.papers} == {ARXIV_PAPER, TITLE_ONLY}
    by_title = {card.title: card for card in view.papers}
    arxiv = by_title[ARXIV_PAPER]
    assert arxiv.url == "https://arxiv.org/abs/2611.00001"
    assert arxiv.arxiv_id == "2611.00001"
    assert arxiv.upvotes == 40
    assert arxiv.topic_label == "Diffusion"
    assert arxiv.score > 0
    assert any(m.term and m.field in ("title", "abstract") for m in arxiv.matched)
    title_only = by_title[TITLE_ONLY]
    assert title_only.url.startswith("https://huggingface.co/papers?q=Latent+Diffusion+%26")
    assert title_only.upvotes is None
    assert [c.score for c in view.papers] == sorted((c.score for c in view.papers), reverse=True)

    base = "https://digest.example.org"
    token = view.unsubscribe_url.removeprefix(f"{base}/u/")
    assert verify_token(
        SECRET, "unsubscribe", token, sub, "ada@example.org", now=T0, max_age_days=400
    )
    token = view.manage_url.removeprefix(f"{base}/m/")
    assert verify_token(SECRET, "manage", token, sub, "ada@example.org", now=T0, max_age_days=400)
    assert view.view_url is not None
    token = view.view_url.removeprefix(f"{base}/d/")
    assert verify_token(
        SECRET, "view", token, planned.digest_id, "ada@example.org", now=T0, max_age_days=400
    )
    assert view.unsubscribe_mailto == "mailto:papers@example.org?subject=unsubscribe"

    # the same cards, but for the vote links: an unsaved plan has no digest for them to name
    assert preview.papers == tuple(replace(c, more_url=None, less_url=None) for c in view.papers)
    assert preview.unsubscribe_url == view.unsubscribe_url


def test_view_of_an_unsaved_plan_has_no_view_link(store: Store, database_url: str) -> None:
    settings = settings_for(database_url)
    add_subscriber(store, "ada@example.org")
    add_dump(store, T0 - days(1), [ARXIV_PAPER])
    with store.sessions() as session:
        planned = plan_due(session, settings, now=T0, dry_run=True).planned[0]
        view = view_for_plan(session, planned, settings, SECRET)
    assert view.view_url is None
    assert [card.title for card in view.papers] == [ARXIV_PAPER]
    assert view.unsubscribe_url.startswith("http://127.0.0.1:8080/u/")


def test_unknown_digest(store: Store, database_url: str) -> None:
    with store.sessions() as session, pytest.raises(BadInput, match="no digest with id 42"):
        view_for_digest(session, 42, settings_for(database_url), SECRET)


def test_message_builder_gives_the_wire_bytes(store: Store, database_url: str) -> None:
    import email
    import email.policy

    from digest.outbox import load_claimed, message_builder

    settings = settings_for(database_url)
    add_subscriber(store, "ada@example.org")
    add_dump(store, T0 - days(1), [(ARXIV_PAPER, "2611.00001", 7)])
    with store.sessions() as session:
        planned = plan_due(session, settings, now=T0).planned[0]
    build = message_builder(settings, SECRET)
    with store.sessions() as session:
        [digest] = load_claimed(session, [planned.digest_id])
        data = build(session, digest)
        assert build(session, digest) == data  # the same row renders the same message
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message["Message-ID"] == planned.message_id
    assert message["To"] == "ada@example.org"
    assert b"\r\n" in data and ARXIV_PAPER in message.get_body(("plain",)).get_content()


def _plan_readers(store: Store, database_url: str, count: int) -> list[int]:
    """`count` readers with overlapping topics, planned: their digest ids."""
    from sqlalchemy import select

    from digest.store.schema import Digest

    topics = [("diffusion",), ("graph neural",), ("diffusion", "graph neural")]
    for i in range(count):
        add_subscriber(store, f"reader{i}@example.org", topics=topics[i % 3])
    add_dump(store, T0 - days(2), [(ARXIV_PAPER, "2611.00001", 3), ("Graph Neural Nets", None, 1)])
    add_dump(store, T0 - days(1), [(ARXIV_PAPER, "2611.00001", 40), (TITLE_ONLY, None, None)])
    with store.sessions() as session:
        plan_due(session, settings_for(database_url), now=T0)
        session.commit()
        return list(session.scalars(select(Digest.id).order_by(Digest.id)))


def test_a_batch_loads_in_a_few_queries_and_renders_what_one_by_one_would(
    store: Store, database_url: str
) -> None:
    from sqlalchemy import event

    from digest.email.render import Renderer
    from digest.outbox import message_builder
    from digest.outbox.claims import load_claimed

    settings = settings_for(database_url)
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    def batch_queries(ids: list[int]) -> tuple[int, dict[int, bytes]]:
        build = message_builder(settings, SECRET, Renderer(settings))
        with store.sessions() as session:
            rows = load_claimed(session, ids)
            statements.clear()
            event.listen(store.engine, "before_cursor_execute", count)
            try:
                build.prepare(session, rows)  # type: ignore[attr-defined]
                out = {row.id: build(session, row) for row in rows}
            finally:
                event.remove(store.engine, "before_cursor_execute", count)
        return len(statements), out

    ids = _plan_readers(store, database_url, 12)
    assert len(ids) == 12
    few, _ = batch_queries(ids[:3])
    many, batched = batch_queries(ids)
    assert many == few  # the batch's size does not change how many queries it takes
    renderer = Renderer(settings)
    with store.sessions() as session:
        for digest_id in ids:
            alone = renderer.message_bytes(view_for_digest(session, digest_id, settings, SECRET))
            assert batched[digest_id] == alone


def test_a_hugging_face_paper_carries_its_page_and_code_into_the_card(
    store: Store, database_url: str
) -> None:
    from digest.ingest import ingest_file
    from tests.conftest import DATA

    settings = settings_for(database_url)
    add_subscriber(store, "ada@example.org", ["psychometric"])
    ingest_file(store, DATA / "hf_daily_papers.json", now=T0 - days(1))
    with store.sessions() as session:
        planned = plan_due(session, settings, now=T0, dry_run=True).planned[0]
        [card] = view_for_plan(session, planned, settings, SECRET).papers
    assert card.on_hf is True
    assert card.code_url == "https://github.com/psychology-of-AI/Rethinking-Pyschometric-Eval-LLMs"
