"""The subscriber commands, invoked as a user would, against a real database file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from digest.store.database import open_store
from digest.store.schema import Digest, Subscriber, Topic
from tests.conftest import invoke

NOW = "2026-11-22T08:00:00+00:00"


def snapshot(database_url: str) -> list[tuple[Any, ...]]:
    """Every subscriber and topic row, to show that a refused command changed nothing."""
    store = open_store(database_url)
    try:
        with store.transaction() as session:
            subscribers = [
                (
                    s.email,
                    s.status,
                    s.timezone,
                    s.send_hour,
                    s.frequency,
                    s.weekday,
                    s.max_papers,
                    s.subscribed_at,
                    s.updated_at,
                    s.confirmed_at,
                    s.unsubscribed_at,
                )
                for s in session.scalars(select(Subscriber).order_by(Subscriber.id))
            ]
            topics = [
                (t.subscriber_id, t.query, t.label)
                for t in session.scalars(select(Topic).order_by(Topic.id))
            ]
            digests = [
                (d.period, d.status) for d in session.scalars(select(Digest).order_by(Digest.id))
            ]
            return [*subscribers, *topics, *digests]
    finally:
        store.dispose()


@pytest.fixture
def alice(cli: CliRunner, config_file: Path) -> str:
    code, _out, err = invoke(
        cli, "subscribe", "alice@example.org", "--topic", "diffusion models", "--now", NOW
    )
    assert code == 0, err
    return "alice@example.org"


def test_subscribe_creates_a_pending_subscriber(cli: CliRunner, config_file: Path) -> None:
    code, out, _ = invoke(
        cli,
        "subscribe",
        "Alice@Example.org",
        "--topic",
        '"kv cache" OR llm*',
        "--topic",
        "robot* -video",
        "--label",
        "KV",
        "--timezone",
        "Europe/Berlin",
        "--hour",
        "7",
        "--weekly",
        "--day",
        "fri",
        "--max-papers",
        "5",
        "--now",
        NOW,
    )
    assert code == 0
    assert "subscribed alice@example.org (pending until confirmed" in out
    assert "weekly on fri at 07:00 Europe/Berlin, up to 5 papers" in out
    code, out, _ = invoke(cli, "show", "alice@example.org", "--json")
    data = json.loads(out)
    assert data["status"] == "pending"
    assert data["subscribed_at"] == NOW
    assert [(t["query"], t["label"]) for t in data["topics"]] == [
        ('"kv cache" OR llm*', "KV"),
        ("robot* -video", None),
    ]
    assert (data["timezone"], data["send_hour"], data["frequency"], data["weekday"]) == (
        "Europe/Berlin",
        7,
        "weekly",
        "fri",
    )
    assert data["digests"] == []


def test_defaults_come_from_the_schedule_settings(cli: CliRunner, config_file: Path) -> None:
    config_file.write_text(
        config_file.read_text()
        + '[schedule]\ndefault_timezone = "Asia/Tokyo"\ndefault_send_hour = 6\n'
        + "default_max_papers = 4\n"
    )
    assert invoke(cli, "subscribe", "bob@example.org", "-t", "llm")[0] == 0
    data = json.loads(invoke(cli, "show", "bob@example.org", "--json")[1])
    assert (data["timezone"], data["send_hour"], data["max_papers"]) == ("Asia/Tokyo", 6, 4)


def test_resubscribing_updates_never_duplicates(cli: CliRunner, alice: str) -> None:
    code, out, _ = invoke(
        cli, "subscribe", "ALICE@example.org", "-t", "robot*", "--hour", "9", "--confirmed"
    )
    assert code == 0
    assert out.splitlines() == [
        "updated alice@example.org (active):",
        "  - confirmed",
        "  - send hour: 8 -> 9",
        "  - added topic 'robot*'",
    ]
    data = json.loads(invoke(cli, "subscribers", "--json")[1])
    assert [s["email"] for s in data] == ["alice@example.org"]
    assert [t["query"] for t in data[0]["topics"]] == ["diffusion models", "robot*"]


def test_same_address_other_case_changes_nothing(
    cli: CliRunner, alice: str, database_url: str
) -> None:
    before = snapshot(database_url)
    code, _out, err = invoke(cli, "subscribe", "Alice@EXAMPLE.org", "-t", "Diffusion Models")
    assert code == 1
    assert "already subscribed" in err and "stored as alice@example.org" in err
    assert snapshot(database_url) == before


def test_confirm_unsubscribe_and_come_back(cli: CliRunner, alice: str, database_url: str) -> None:
    assert invoke(cli, "confirm", alice, "--now", NOW)[:2] == (
        0,
        f"confirmed {alice}; digests start: daily at 08:00 UTC, up to 10 papers\n",
    )
    assert invoke(cli, "confirm", alice)[1] == f"{alice} was already confirmed\n"
    store = open_store(database_url)
    with store.transaction() as session:
        subscriber_id = session.scalars(select(Subscriber.id)).one()
        session.add(
            Digest(
                subscriber_id=subscriber_id,
                period="2026-11-22",
                message_id="<1@test>",
                planned_at=datetime(2026, 11, 22, 8, tzinfo=UTC),
                window_start=datetime(2026, 11, 21, 8, tzinfo=UTC),
            )
        )
    store.dispose()
    code, out, _ = invoke(cli, "unsubscribe", "Alice@Example.org", "--now", "2026-11-22T09:00Z")
    assert (code, out) == (0, f"unsubscribed {alice}; cancelled 1 planned digest\n")
    code, out, _ = invoke(cli, "unsubscribe", alice)
    assert (code, out) == (0, f"{alice} was already unsubscribed since 2026-11-22 09:00 UTC\n")
    data = json.loads(invoke(cli, "show", alice, "--json")[1])
    assert data["status"] == "unsubscribed"
    assert data["digests"][0]["status"] == "cancelled"
    assert "topics" in data and len(data["topics"]) == 1  # the row and its topics stay

    code, out, _ = invoke(cli, "subscribe", alice, "--now", "2026-12-01T10:00Z", "--confirmed")
    assert code == 0
    assert out.startswith(f"re-subscribed {alice} (active):")
    data = json.loads(invoke(cli, "show", alice, "--json")[1])
    assert (data["status"], data["subscribed_at"], data["unsubscribed_at"]) == (
        "active",
        "2026-12-01T10:00:00+00:00",
        None,
    )


def test_topics_commands(cli: CliRunner, alice: str) -> None:
    code, out, _ = invoke(cli, "topics", "add", alice, "title:(llm OR vlm) agents", "--label", "A")
    assert code == 0 and "added topic #2" in out
    code, out, _ = invoke(cli, "topics", "list", alice)
    assert out.splitlines() == ["#1  diffusion models", "#2  title:(llm OR vlm) agents  [A]"]
    code, _, err = invoke(cli, "topics", "add", alice, "Diffusion models")
    assert code == 2 and "already has this topic: #1" in err
    assert invoke(cli, "topics", "remove", alice, "#1")[0] == 0
    code, _, err = invoke(cli, "topics", "remove", alice, "nonsense")
    assert code == 2 and "has no topic 'nonsense'" in err
    code, out, err = invoke(cli, "topics", "remove", alice, "a")
    assert code == 0 and "no topics left" in err
    assert json.loads(invoke(cli, "topics", "list", alice, "--json")[1]) == []


def test_subscribers_and_show(cli: CliRunner, alice: str) -> None:
    invoke(cli, "subscribe", "bob@example.org", "-t", "llm", "--confirmed")
    code, out, _ = invoke(cli, "subscribers")
    assert code == 0 and "alice@example.org" in out and "bob@example.org" in out
    assert "2 subscribers" in out
    active = json.loads(invoke(cli, "subscribers", "--status", "active", "--json")[1])
    assert [s["email"] for s in active] == ["bob@example.org"]
    code, _, err = invoke(cli, "subscribers", "--status", "gone")
    assert code == 2 and "unknown status 'gone'" in err
    code, out, _ = invoke(cli, "show", alice)
    assert "daily at 08:00 UTC, up to 10 papers" in out and "#1  diffusion models" in out
    code, _, err = invoke(cli, "show", "nobody@example.org")
    assert code == 2 and "no subscriber with the address nobody@example.org" in err


def test_export_then_import_round_trips(
    cli: CliRunner, config_file: Path, database_url: str, tmp_path: Path
) -> None:
    invoke(cli, "subscribe", "a@example.org", "-t", "llm", "-t", '"kv cache"', "--confirmed")
    invoke(
        cli,
        "subscribe",
        "b@example.org",
        "-t",
        "robot*",
        "--weekly",
        "--day",
        "wed",
        "--timezone",
        "America/New_York",
        "--hour",
        "18",
        "--max-papers",
        "3",
    )
    code, exported, _ = invoke(cli, "export")
    assert code == 0
    assert exported.splitlines() == [
        "email,topics,timezone,hour,frequency,weekday,max_papers,votes",
        'a@example.org,"llm; ""kv cache""",UTC,8,daily,mon,10,',
        "b@example.org,robot*,America/New_York,18,weekly,wed,3,",
    ]
    out_file = tmp_path / "list.csv"
    assert invoke(cli, "export", "--out", str(out_file))[0] == 0
    assert out_file.read_text() == exported

    # Into a fresh database: the same list comes out again.
    config_file.write_text(f'database_url = "sqlite:///{tmp_path / "other.db"}"\n')
    assert invoke(cli, "db", "upgrade")[0] == 0
    code, out, _ = invoke(cli, "import", str(out_file), "--confirmed")
    assert (code, out) == (0, "imported 2 rows: 2 new, 0 updated, 0 unchanged, 0 skipped\n")
    assert invoke(cli, "export")[1] == exported
    code, out, _ = invoke(cli, "import", str(out_file))
    assert out.startswith("imported 2 rows: 0 new, 0 updated, 2 unchanged")


def test_import_dry_run_writes_nothing(
    cli: CliRunner, config_file: Path, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "in.csv"
    path.write_text("email,topics\nx@example.org,llm\n")
    code, out, _ = invoke(cli, "import", str(path), "--dry-run")
    assert (code, out) == (0, "would import 1 rows: 1 new, 0 updated, 0 unchanged, 0 skipped\n")
    assert snapshot(database_url) == []


# -------------------------------------------------------------- bad input


# Each list runs in one test per database: the cases share one migrated database
# (a fresh one per case made these tests most of the suite's time).
BAD_COMMANDS = [
    (["subscribe", "alice(at)example.org", "-t", "llm"], "not a valid email address"),
    (
        ["subscribe", "bob@example.org", "-t", "llm", "--timezone", "Berlin"],
        "unknown timezone 'Berlin': did you mean 'Europe/Berlin'?",
    ),
    (
        ["subscribe", "bob@example.org", "-t", "llm", "--hour", "25"],
        "hour 25 is not an hour of the day",
    ),
    (["subscribe", "bob@example.org", "-t", ""], "the topic filter is empty"),
    (["subscribe", "bob@example.org"], "give at least one topic"),
    (["subscribe", "bob@example.org", "-t", "the of"], "only common words"),
    (["subscribe", "bob@example.org", "-t", "-video"], "only excludes"),
    (["subscribe", "bob@example.org", "-t", "x" * 10_240], "limit is 1000"),
    (["subscribe", "bob@example.org", "-t", "llm\nagents"], "line break"),
    (["subscribe", "bob@example.org", "-t", "llm\x1b[31m"], "control character"),
    (
        ["subscribe", "bob@example.org", "-t", "llm", "--daily", "--weekly"],
        "exclude each other",
    ),
    (["subscribe", "bob@example.org", "-t", "llm", "--day", "someday"], "unknown weekday"),
    (["subscribe", "bob@example.org", "-t", "llm", "--max-papers", "0"], "max papers 0"),
    (["subscribe", "alice@example.org", "-t", "ok", "-t", "(bad"], "unclosed parenthesis"),
    (["topics", "add", "alice@example.org", ""], "the topic filter is empty"),
    (["topics", "add", "nobody@example.org", "llm"], "no subscriber"),
    (["confirm", "nobody@example.org"], "no subscriber"),
    (["unsubscribe", "not an address"], "not a valid email address"),
    (["subscribe", "alice@example.org", "-t", "x", "--now", "yesterday"], "--now"),
]


def test_bad_input_is_refused_and_changes_nothing(
    cli: CliRunner, alice: str, database_url: str
) -> None:
    before = snapshot(database_url)
    for args, message in BAD_COMMANDS:
        code, _out, err = invoke(cli, *args)
        assert code == 2, args
        assert message in err, (args, err)
        assert err.startswith("error: ") and "Traceback" not in err
        assert snapshot(database_url) == before, args


def test_syntax_errors_show_a_caret(cli: CliRunner, config_file: Path, database_url: str) -> None:
    for topic, caret_at in [('"diffusion models', 0), ("llm (agents OR tools", 4), ("llm )", 4)]:
        code, _, err = invoke(cli, "subscribe", "bob@example.org", "-t", topic)
        assert code == 2
        lines = err.splitlines()
        assert lines[1] == f"  {topic}"
        assert lines[2] == "  " + " " * caret_at + "^"
    assert snapshot(database_url) == []


BAD_CSV = [
    ("ok@example.org,llm\nbad-address,llm\n", "line 2: not a valid email address"),
    ("ok@example.org,llm\nb@example.org,llm (x\n", "line 2: unclosed parenthesis"),
    ("ok@example.org,llm\nb@example.org,llm,Mars/Base\n", "line 2: unknown timezone"),
    ("ok@example.org,llm\nb@example.org,llm,UTC,25\n", "line 2: hour 25"),
    (
        "ok@example.org,llm\nOK@Example.org,vlm\n",
        "line 2: ok@example.org already appears on line 1",
    ),
    (
        "email,topics\nok@example.org,llm\nnew@example.org,\n",
        "line 3: new@example.org is not subscribed yet",
    ),
    ("ok@example.org,llm,UTC,8,daily,mon,10,,extra\n", "line 1: 9 cells"),
    ("ok@example.org,llm,UTC,8,daily,mon,10,up 2 x\n", "topic number 2, but the row has 1"),
    ("ok@example.org,llm,UTC,8,daily,mon,10,sideways 1 x\n", "write it as 'up|down"),
]


def test_a_bad_csv_row_refuses_the_whole_import(
    cli: CliRunner, alice: str, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "list.csv"
    before = snapshot(database_url)
    for csv_text, message in BAD_CSV:
        path.write_text(csv_text)
        code, _, err = invoke(cli, "import", str(path))
        assert code == 2, csv_text
        assert message in err, (csv_text, err)
        assert snapshot(database_url) == before, csv_text


def test_import_of_missing_or_binary_file(
    cli: CliRunner, config_file: Path, tmp_path: Path
) -> None:
    code, _, err = invoke(cli, "import", str(tmp_path / "nope.csv"))
    assert code == 2 and "no such file" in err
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    code, _, err = invoke(cli, "import", str(binary))
    assert code == 2 and "not UTF-8" in err


def test_unsubscribed_addresses_are_not_brought_back_by_import(
    cli: CliRunner, alice: str, tmp_path: Path
) -> None:
    invoke(cli, "unsubscribe", alice)
    path = tmp_path / "old.csv"
    path.write_text(f"{alice},llm\n")
    code, out, _ = invoke(cli, "import", str(path))
    assert code == 0 and f"skipped {alice}: unsubscribed" in out
    assert json.loads(invoke(cli, "show", alice, "--json")[1])["status"] == "unsubscribed"


def test_times_are_recorded_from_now(cli: CliRunner, alice: str) -> None:
    later = datetime.fromisoformat(NOW) + timedelta(days=2)
    invoke(cli, "unsubscribe", alice, "--now", later.isoformat())
    data = json.loads(invoke(cli, "show", alice, "--json")[1])
    assert data["unsubscribed_at"] == later.isoformat()


def _maildir_messages(folder: Path) -> list[str]:
    new = folder / "new"
    return [p.read_text() for p in sorted(new.iterdir())] if new.is_dir() else []


def test_double_opt_in_mails_a_confirmation_link_to_new_subscribers(
    cli: CliRunner, config_file: Path, tmp_path: Path
) -> None:
    maildir = tmp_path / "maildir"
    config_file.write_text(
        config_file.read_text()
        + '[web]\ndouble_opt_in = true\nsecret = "test-secret-0123456789abcdefghijklmnop"\n'
        + 'base_url = "https://digest.example"\n'
        f'[delivery]\nmaildir_path = "{maildir}"\n'
    )
    code, out, err = invoke(cli, "subscribe", "bob@example.org", "-t", "kv cache", "--now", NOW)
    assert code == 0, err
    assert "sent a confirmation link to bob@example.org" in out
    (message,) = _maildir_messages(maildir)
    assert "To: bob@example.org" in message
    assert "https://digest.example/confirm/" in message

    # An update of an existing pending subscriber does not send another link;
    # a subscriber added as already confirmed gets none at all.
    assert invoke(cli, "subscribe", "bob@example.org", "-t", "llm", "--now", NOW)[0] == 0
    assert invoke(cli, "subscribe", "eve@example.org", "-t", "llm", "--confirmed")[0] == 0
    assert len(_maildir_messages(maildir)) == 1


def test_without_double_opt_in_no_confirmation_is_mailed(
    cli: CliRunner, config_file: Path, tmp_path: Path
) -> None:
    maildir = tmp_path / "maildir"
    config_file.write_text(config_file.read_text() + f'[delivery]\nmaildir_path = "{maildir}"\n')
    code, out, _ = invoke(cli, "subscribe", "bob@example.org", "-t", "kv cache", "--now", NOW)
    assert code == 0
    assert "confirmation" not in out
    assert _maildir_messages(maildir) == []


def test_export_neutralises_cells_a_spreadsheet_would_run_and_import_reads_them_back(
    cli: CliRunner, config_file: Path, tmp_path: Path
) -> None:
    import csv
    import io

    risky = ['=HYPERLINK("http://evil","x") diffusion', "-video diffusion", "@sum llm", "+rag"]
    for i, topic in enumerate(risky):
        code, _, err = invoke(cli, "subscribe", f"r{i}@example.org", "-t", topic, "--confirmed")
        assert code == 0, err
    code, exported, _ = invoke(cli, "export")
    assert code == 0
    cells = [cell for row in csv.reader(io.StringIO(exported)) for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert "'=HYPERLINK" in exported
    (tmp_path / "list.csv").write_text(exported)
    config_file.write_text(f'database_url = "sqlite:///{tmp_path / "other.db"}"\n')
    assert invoke(cli, "db", "upgrade")[0] == 0
    assert invoke(cli, "import", str(tmp_path / "list.csv"), "--confirmed")[0] == 0
    assert invoke(cli, "export")[1] == exported  # the topics kept their text


def test_an_international_domain_is_stored_in_ascii_so_both_spellings_are_one_reader(
    cli: CliRunner, config_file: Path
) -> None:
    code, out, _ = invoke(cli, "subscribe", "User@Bücher.de", "-t", "llm", "--confirmed")
    assert code == 0 and "user@xn--bcher-kva.de" in out
    code, out, _ = invoke(cli, "subscribe", "user@xn--bcher-kva.de", "-t", "llm", "--confirmed")
    assert code == 1  # the same subscriber, already so
    rows = json.loads(invoke(cli, "subscribers", "--json")[1])
    assert [row["email"] for row in rows] == ["user@xn--bcher-kva.de"]


def test_an_address_that_needs_smtputf8_is_refused_at_subscribe_and_import(
    cli: CliRunner, config_file: Path, tmp_path: Path
) -> None:
    code, out, err = invoke(cli, "subscribe", "üser@example.org", "-t", "llm")
    assert (code, out) == (2, "")
    assert "non-ASCII characters before the @" in err and "SMTPUTF8" in err
    path = tmp_path / "in.csv"
    path.write_text("email,topics\nok@example.org,llm\nüser@example.org,llm\n", encoding="utf-8")
    code, out, err = invoke(cli, "import", str(path))
    assert (code, out) == (2, "")
    assert "line 3" in err and "SMTPUTF8" in err
    assert json.loads(invoke(cli, "subscribers", "--json")[1]) == []


def test_tables_piped_to_another_program_are_not_cut_at_80_columns(
    cli: CliRunner, config_file: Path
) -> None:
    long = "grace.hopper.the.admiral.of.cobol@navy-research-laboratory.example.org"
    invoke(cli, "subscribe", long, "-t", "compilers", "--timezone", "America/New_York")
    code, out, _ = invoke(cli, "subscribers")  # CliRunner's stdout is not a terminal
    assert code == 0
    assert long in out and "America/New_York" in out


def test_subscribers_can_be_searched_and_limited_and_the_count_says_how_many(
    cli: CliRunner, config_file: Path
) -> None:
    for name in ("ada", "grace", "alan", "adele"):
        invoke(cli, "subscribe", f"{name}@example.org", "-t", "llm", "--confirmed")
    code, out, _ = invoke(cli, "subscribers", "--search", "AD")
    assert code == 0
    assert "ada@example.org" in out and "adele@example.org" in out and "grace" not in out
    assert out.rstrip().endswith("2 subscribers")
    code, out, _ = invoke(cli, "subscribers", "--limit", "1")
    assert "ada@example.org" in out and "adele" not in out
    assert out.rstrip().endswith("4 subscribers (showing 1: --limit)")
    rows = json.loads(invoke(cli, "subscribers", "--search", "%", "--json")[1])
    assert rows == []  # the text is matched literally, not as a LIKE pattern


def test_an_import_with_several_bad_rows_names_every_one_and_writes_nothing(
    cli: CliRunner, config_file: Path, tmp_path: Path
) -> None:
    path = tmp_path / "people.csv"
    path.write_text(
        "email,topics,timezone,hour\n"
        "ok@example.org,llm,UTC,8\n"
        "bad(at)example.org,llm,UTC,8\n"
        "two@example.org,llm,Mars/Base,8\n"
        "three@example.org,llm,UTC,25\n"
        "OK@example.org,vlm,UTC,8\n"
    )
    code, out, err = invoke(cli, "import", str(path))
    assert (code, out) == (2, "")
    assert f"{path}: 4 rows are wrong; nothing was imported" in err
    for line in ("line 3:", "line 4:", "line 5:", "line 6:"):
        assert line in err
    assert json.loads(invoke(cli, "subscribers", "--json")[1]) == []
