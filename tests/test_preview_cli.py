"""`digest preview`: what a subscriber would get, rendered, with nothing written or sent."""

from __future__ import annotations

import email
import email.policy
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from digest.store.database import Store
from digest.store.schema import Digest
from tests.conftest import invoke
from tests.plan_factories import T0, add_dump, add_subscriber, days

NOW = "2026-11-22T08:00:00Z"
TITLE = "Diffusion Models for Video Generation"


def digest_count(store: Store) -> int:
    with store.sessions() as session:
        return session.scalar(select(func.count()).select_from(Digest)) or 0


def test_preview_text_html_and_eml(
    cli: CliRunner, config_file: Path, store: Store, tmp_path: Path
) -> None:
    add_subscriber(store, "ada@example.org", labels=("Diffusion",))
    add_dump(store, T0 - days(1), [(TITLE, "2611.00001", 12), "Graph Neural Networks"])

    code, out, _ = invoke(cli, "preview", "ada@example.org", "--now", NOW, "--format", "text")
    assert code == 0, out
    assert TITLE in out and "https://arxiv.org/abs/2611.00001" in out
    assert "Graph Neural Networks" not in out

    code, out, err = invoke(cli, "preview", "ada@example.org", "--now", NOW)
    assert code == 0, err
    html_file = Path(out.strip())
    assert html_file.suffix == ".html" and html_file.is_file()
    assert TITLE in html_file.read_text("utf-8")
    assert "1 paper(s) for ada@example.org (2026-11-22)" in err
    html_file.unlink()

    target = tmp_path / "digest.eml"
    code, out, _ = invoke(
        cli, "preview", "ada@example.org", "--now", NOW, "--format", "eml", "--out", str(target)
    )
    assert code == 0
    message = email.message_from_bytes(target.read_bytes(), policy=email.policy.default)
    assert message["To"] == "ada@example.org"
    assert message.get_content_type() == "multipart/alternative"
    assert "List-Unsubscribe" in message
    assert digest_count(store) == 0


def test_preview_when_not_due_shows_what_a_digest_now_would_hold(
    cli: CliRunner, config_file: Path, store: Store
) -> None:
    add_subscriber(store, "ada@example.org", send_hour=20)
    add_dump(store, T0 - days(1), [TITLE])
    code, out, err = invoke(cli, "preview", "ada@example.org", "--now", NOW, "--format", "text")
    assert code == 0
    assert "note: not due: next digest at 2026-11-22 20:00 UTC" in err
    assert TITLE in out
    assert digest_count(store) == 0


def test_preview_says_why_nothing_would_be_sent(
    cli: CliRunner, config_file: Path, store: Store
) -> None:
    add_subscriber(store, "ada@example.org", topics=("diffusion transformers",))
    code, out, _ = invoke(cli, "preview", "ada@example.org", "--now", NOW)
    assert code == 0
    assert "nothing would be sent to ada@example.org: no new dumps since" in out

    add_dump(
        store,
        T0 - timedelta(hours=5),
        ["Vision Transformers at Scale", "Sparse Transformers for Long Video", "Protein Folding"],
    )
    code, out, _ = invoke(cli, "preview", "ada@example.org", "--now", NOW)
    assert code == 0
    assert "no new paper matched your topics (of 3 new)" in out
    assert "closest papers" in out
    assert "Vision Transformers at Scale" in out and "missing diffusion" in out
    assert digest_count(store) == 0


def test_preview_of_a_reader_not_due_also_shows_the_closest_papers(
    cli: CliRunner, config_file: Path, store: Store
) -> None:
    add_subscriber(store, "ada@example.org", topics=("diffusion transformers",), send_hour=20)
    add_dump(store, T0 - timedelta(hours=5), ["Vision Transformers at Scale", "Protein Folding"])
    code, out, err = invoke(cli, "preview", "ada@example.org", "--now", NOW)
    assert code == 0
    assert "note: not due" in err
    assert "no new paper matched your topics (of 2 new)" in out
    assert "closest papers" in out and "Vision Transformers at Scale" in out
