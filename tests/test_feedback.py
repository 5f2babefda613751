"""Reader feedback end to end: `digest feedback`, `digest show`, and what the next plan does."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from digest.planner import plan_due
from digest.store.database import Store, open_store
from digest.store.schema import Vote
from tests.conftest import invoke
from tests.plan_factories import T0, add_dump, add_subscriber, digests_of, settings_for

DIFFUSION = [
    ("Diffusion models for image synthesis", "2401.00001", 5),
    ("Diffusion models for graph nodes", "2401.00002", 5),
    ("Diffusion transformers for images", "2401.00003", 5),
    # the rest of the day: what makes a word distinctive is how rare it is
    *[(f"{what} study {n}", None, 1) for what in ("Speech", "Protein", "Robot") for n in range(3)],
]


def votes(store: Store) -> list[tuple[int, int, int, int]]:
    with store.sessions() as session:
        return [
            (v.subscriber_id, v.paper_id, v.topic_id, v.vote)
            for v in session.scalars(select(Vote).order_by(Vote.paper_id))
        ]


@pytest.fixture
def reader(store: Store, config_file: Path) -> int:
    add_dump(store, T0 - timedelta(hours=2), DIFFUSION)
    return add_subscriber(store, "reader@example.org", ["diffusion"])


def test_feedback_records_a_vote_by_arxiv_id_and_show_lists_it(
    cli: CliRunner, store: Store, reader: int
) -> None:
    code, out, err = invoke(cli, "feedback", "reader@example.org", "2401.00002", "down")
    assert code == 0, err
    assert "recorded: down on 'Diffusion models for graph nodes'" in out
    assert "will not be sent again" in out
    [(subscriber, _, _, vote)] = votes(store)
    assert (subscriber, vote) == (reader, -1)
    code, out, _ = invoke(cli, "show", "reader@example.org")
    assert "votes (1;" in out and "- #" in out and "2401.00002" in out
    code, out, _ = invoke(cli, "show", "reader@example.org", "--json")
    listed = json.loads(out)["votes"]
    assert [(v["paper"], v["vote"]) for v in listed] == [("2401.00002", "down")]


def test_a_second_vote_replaces_the_first_and_undo_removes_it(
    cli: CliRunner, store: Store, reader: int
) -> None:
    title = "Diffusion models for image synthesis"
    assert invoke(cli, "feedback", "reader@example.org", title, "up")[0] == 0
    assert invoke(cli, "feedback", "reader@example.org", title, "down")[0] == 0
    assert [v[3] for v in votes(store)] == [-1]
    code, out, _ = invoke(cli, "feedback", "reader@example.org", title, "down")
    assert code == 0 and "already recorded" in out
    code, out, _ = invoke(cli, "feedback", "reader@example.org", title, "--undo")
    assert code == 0 and "removed 1 vote" in out
    assert votes(store) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reader@example.org", "no such paper", "up"], "no stored paper"),
        (["nobody@example.org", "2401.00001", "up"], "no subscriber with the address"),
        (["reader@example.org", "2401.00001", "up", "--topic", "#999"], "has no topic '#999'"),
        (["reader@example.org", "2401.00001", "sideways"], "unknown vote 'sideways'"),
        (["reader@example.org", "2401.00001"], "give a vote"),
        (["reader@example.org", "2401.00001", "up", "--undo"], "give a vote"),
    ],
)
def test_bad_feedback_is_refused_with_one_line_and_writes_nothing(
    cli: CliRunner, store: Store, reader: int, args: list[str], message: str
) -> None:
    code, _, err = invoke(cli, "feedback", *args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert votes(store) == []


def test_with_several_topics_an_unsent_paper_needs_topic(
    cli: CliRunner, store: Store, config_file: Path
) -> None:
    add_dump(store, T0 - timedelta(hours=2), DIFFUSION)
    add_subscriber(store, "two@example.org", ["diffusion", "transformers"])
    code, _, err = invoke(cli, "feedback", "two@example.org", "2401.00003", "up")
    assert code == 2 and "--topic" in err
    code, out, err = invoke(
        cli, "feedback", "two@example.org", "2401.00003", "up", "--topic", "transformers"
    )
    assert code == 0, err
    assert "rank higher in 'transformers'" in out


def test_a_paper_voted_on_is_never_sent_and_others_are_unaffected(
    store: Store, database_url: str, config_file: Path, cli: CliRunner
) -> None:
    settings = settings_for(database_url)
    add_dump(store, T0 - timedelta(hours=2), DIFFUSION)
    voter = add_subscriber(store, "voter@example.org", ["diffusion"])
    other = add_subscriber(store, "other@example.org", ["diffusion"])
    assert invoke(cli, "feedback", "voter@example.org", "2401.00002", "down")[0] == 0
    assert invoke(cli, "feedback", "voter@example.org", "2401.00003", "up")[0] == 0
    with store.sessions() as session:
        plan_due(session, settings, now=T0)
    [(_, _, theirs)] = digests_of(store, voter)
    [(_, _, others)] = digests_of(store, other)
    assert theirs == ["Diffusion models for image synthesis"]
    assert sorted(others) == sorted(title for title, _, _ in DIFFUSION[:3])


def test_votes_are_kept_when_a_reader_unsubscribes_and_go_with_their_topic(
    cli: CliRunner, store: Store, reader: int
) -> None:
    assert invoke(cli, "feedback", "reader@example.org", "2401.00001", "up")[0] == 0
    assert invoke(cli, "unsubscribe", "reader@example.org")[0] == 0
    assert len(votes(store)) == 1
    assert invoke(cli, "topics", "add", "reader@example.org", "graphs")[0] == 0
    assert invoke(cli, "topics", "remove", "reader@example.org", "diffusion")[0] == 0
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Vote)) == 0


def test_match_with_email_explains_what_the_votes_did(
    cli: CliRunner, store: Store, reader: int
) -> None:
    assert invoke(cli, "feedback", "reader@example.org", "2401.00003", "up")[0] == 0
    code, out, err = invoke(
        cli, "match", "diffusion", "--all", "--email", "reader@example.org",
        "--explain", "2401.00002", "--json",
    )  # fmt: skip
    assert code == 0, err
    explained = json.loads(out)
    assert explained["parts"]["votes"] < 0  # graphs: unlike the liked paper on images
    assert explained["votes"].startswith("lowered its score by")
    code, out, _ = invoke(cli, "match", "diffusion", "--all", "--explain", "2401.00002", "--json")
    assert "votes" not in json.loads(out)["parts"]  # without --email: no one's votes
    code, _, err = invoke(cli, "match", "graphs", "--email", "reader@example.org")
    assert code == 2 and "has no topic 'graphs'" in err


def test_export_and_import_carry_votes(
    cli: CliRunner, store: Store, reader: int, tmp_path: Path, config_file: Path
) -> None:
    assert invoke(cli, "feedback", "reader@example.org", "2401.00001", "up")[0] == 0
    assert invoke(cli, "feedback", "reader@example.org", "Speech study 0", "down")[0] == 0
    code, exported, _ = invoke(cli, "export")
    assert code == 0
    header, row = exported.splitlines()
    assert header.endswith(",votes")
    assert row.endswith(",down 1 title:speech study 0; up 1 2401.00001")  # newest first
    listed = tmp_path / "list.csv"
    listed.write_text(exported)

    # Into a fresh database that holds only one of the two papers: that vote comes back,
    # the other is named and left out, and the rest of the list still imports.
    other = open_store(f"sqlite:///{tmp_path / 'other.db'}")
    add_dump(other, T0 - timedelta(hours=2), DIFFUSION[:3])
    other.dispose()
    config_file.write_text(f'database_url = "sqlite:///{tmp_path / "other.db"}"\n')
    code, out, err = invoke(cli, "import", str(listed), "--confirmed")
    assert code == 0, err
    assert "votes: 1 recorded, 1 left out" in out
    assert "no stored paper 'title:speech study 0'" in out
    code, out, _ = invoke(cli, "show", "reader@example.org", "--json")
    assert [(v["paper"], v["vote"]) for v in json.loads(out)["votes"]] == [("2401.00001", "up")]


def test_a_paper_may_be_named_by_the_start_of_its_title(
    cli: CliRunner, store: Store, reader: int
) -> None:
    code, out, err = invoke(
        cli, "match", "diffusion", "--all", "--explain", "diffusion TRANSFORMERS", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["title"] == "Diffusion transformers for images"
    code, _, err = invoke(cli, "match", "diffusion", "--all", "--explain", "Diffusion models")
    assert code == 2
    assert "--explain: 'Diffusion models' begins several titles" in err
    assert "'Diffusion models for graph nodes'" in err
    code, out, _ = invoke(cli, "feedback", "reader@example.org", "Diffusion models for gr", "up")
    assert code == 0 and "'Diffusion models for graph nodes'" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["feedback", "reader@example.org", "2401.00001", "up", "--topic", "#²"], "no topic"),
        (["match", "#²", "--email", "reader@example.org"], "has no topic"),
    ],
)
def test_a_digit_that_is_not_0_9_is_an_error_not_a_crash(
    cli: CliRunner, store: Store, reader: int, args: list[str], message: str
) -> None:
    code, _, err = invoke(cli, *args)
    assert code == 2 and message in err


def test_an_import_with_an_odd_digit_in_a_vote_is_refused_with_its_line(
    cli: CliRunner, store: Store, reader: int, tmp_path: Path
) -> None:
    listed = tmp_path / "list.csv"
    listed.write_text("new@example.org,diffusion,UTC,8,daily,mon,10,up ² 2401.00001\n")
    code, _, err = invoke(cli, "import", str(listed))
    assert code == 2 and "line 1: vote 'up ² 2401.00001'" in err


def test_two_clicks_at_once_record_one_vote(store: Store, reader: int) -> None:
    """A double-click, or the same link on two devices: both requests may find no vote
    yet; the second must not fail on the first's row (PostgreSQL: SQLite's write
    transactions begin IMMEDIATE, so there the second waits for the first)."""
    import threading

    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises write transactions")

    from digest.store.schema import Paper, Subscriber
    from digest.subscribers.votes import cast_vote

    errors: list[BaseException] = []
    for attempt in range(10):
        start = threading.Barrier(2)
        vote = "up" if attempt % 2 else "down"

        def click(vote: str = vote, start: threading.Barrier = start) -> None:
            try:
                with store.transaction() as session:
                    subscriber = session.get(Subscriber, reader)
                    paper = session.scalars(select(Paper).order_by(Paper.id)).first()
                    assert subscriber is not None and paper is not None
                    start.wait(timeout=10)
                    cast_vote(session, subscriber, paper, subscriber.topics[0], vote, now=T0)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=click) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert errors == []
    assert len(votes(store)) == 1
